package live

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// startSim runs a simulated DVR on loopback for the test.
func startSim(t *testing.T) *sim.Device {
	t.Helper()
	d, err := sim.New(sim.Config{Listen: netip.MustParseAddr("127.0.0.1"), Password: "Sim-Pass-2024"})
	if err != nil {
		t.Fatalf("sim: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// newTestHub serves the hub on loopback: GET /{ch} streams that channel
// of the simulator.
func newTestHub(t *testing.T, d *sim.Device) (*Hub, *httptest.Server) {
	t.Helper()
	h := New(Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Locate: func(dev string, ch int) (*url.URL, error) {
		return url.Parse(fmt.Sprintf("rtsp://%s:%s@%s/Streaming/Channels/%d", d.User(), d.Password(), d.DialAddr(sim.ServiceRTSP), ch))
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err := h.ServeFMP4(w, r, "dvr", ch); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(func() { srv.Close(); h.Close() })
	return h, srv
}

// TestServeFMP4ffprobe has ffprobe read the fragmented MP4 camgate makes
// of each stream: it must find H.264 at the device's picture size.
func TestServeFMP4ffprobe(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("needs ffprobe (apt-get install ffmpeg)")
	}
	d := startSim(t)
	_, srv := newTestHub(t, d)
	for _, tc := range []struct{ ch, want string }{{"101", "width=640|height=360"}, {"102", "width=352|height=288"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
			"-of", "compact", srv.URL+"/"+tc.ch).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", tc.ch, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "stream|codec_name=h264|"+tc.want {
			t.Fatalf("channel %s: got %q, want h264 %s", tc.ch, got, tc.want)
		}
	}
}

// TestOnePullForManyViewers opens four viewers of one channel: the
// simulator must see exactly one RTSP PLAY, and the pull must stop once
// the last viewer leaves.
func TestOnePullForManyViewers(t *testing.T) {
	d := startSim(t)
	h, srv := newTestHub(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	got := make([]int, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/101", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer res.Body.Close()
			buf := make([]byte, 64<<10)
			for got[i] < 200<<10 {
				n, err := res.Body.Read(buf)
				got[i] += n
				if err != nil {
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.Stats().Viewers < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := h.Stats(); st.Pulls != 1 || st.Viewers != 4 {
		t.Errorf("got %+v, want 1 pull and 4 viewers", st)
	}
	wg.Wait()
	cancel()
	for i, n := range got {
		if n < 200<<10 {
			t.Errorf("viewer %d got %d bytes, want at least 200 KiB", i, n)
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for h.Stats().Pulls > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := h.Stats(); st.Pulls != 0 {
		t.Errorf("after the viewers left: got %+v, want no pull", st)
	}
	plays := 0
	for _, r := range d.Requests() {
		if r.Service == sim.ServiceRTSP && r.Method == "PLAY" && r.Status == 200 {
			plays++
		}
	}
	if plays != 1 {
		t.Errorf("the simulator answered %d PLAY requests, want 1", plays)
	}
}
