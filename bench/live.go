package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/share"
)

// The live measure: camgate's browser live view (internal/live) with a
// simulated DVR (`camgate sim`, its own process) on loopback. Viewers are
// HTTP clients reading the fMP4 stream of a share link, not browsers (16
// Chromium instances would measure Chromium); the browser's own figures,
// time to first frame and glass-to-glass latency, come from
// cmd/camgate/live_e2e_test.go (docs/BENCHMARKS.md has both).
//
//	live_ttfb_cold  first viewer of a channel: RTSP connect, DESCRIBE,
//	                SETUP, PLAY and the first key frame, to its first byte
//	live_ttfb_warm  a second viewer of a running pull (the cached GOP)
//	live_cpu_4      camgate's CPU with 4 channels, 1 viewer each (4 pulls)
//	live_cpu_16     the same 4 pulls with 16 viewers (4 per channel)
//	live_cpu_viewer (live_cpu_16 - live_cpu_4) / 12: one more viewer
//	live_kb_viewer  camgate's RSS growth from 4 to 16 viewers, per viewer
const (
	liveChannels   = 4
	livePerChannel = 4
)

func (h *harness) measureLive(ctx context.Context) {
	if !slices.Contains(h.opts.peers, peerCamgate) {
		return
	}
	if err := h.liveRun(ctx); err != nil {
		h.recordErr("live_cpu_16", peerCamgate, err)
	}
}

func (h *harness) liveRun(ctx context.Context) error {
	window := 10 * time.Second
	if h.opts.quick {
		window = 4 * time.Second
	}
	const pw = "Bench-Live-Quartz-2024"
	sim, err := h.procs.start("live-sim", []string{"CAMGATE_SIM_PASSWORD=" + pw}, nil, h.camgate, "sim",
		"--listen", "127.0.0.1", "--free-ports", "--sadp-port", "-1", "--wsd-port", "-1")
	if err != nil {
		return err
	}
	defer h.procs.stopChild(sim)
	rtspPort, err := waitLog(ctx, sim, regexp.MustCompile(`rtsp://127\.0\.0\.1:(\d+)/`), 15*time.Second)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}

	state := filepath.Join(h.dir, "live-state")
	if err := credstore.New(state).Put("dvr", pw); err != nil {
		return err
	}
	links, err := share.Open(state)
	if err != nil {
		return err
	}
	var secrets []string
	for i := 1; i <= liveChannels; i++ {
		_, s, err := links.Create(share.Spec{Device: "dvr", Channel: i*100 + 1}, "bench", time.Now())
		if err != nil {
			return err
		}
		secrets = append(secrets, s)
	}
	port, err := h.ports.get()
	if err != nil {
		return err
	}
	cfg := filepath.Join(h.dir, "live-camgate.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
listen_address: 127.0.0.1
state_dir: %s
rules: []
devices:
  - name: dvr
    address: 127.0.0.1
    rtsp_port: %s
    channels: [101, 201, 301, 401]
admin:
  listen: "http://127.0.0.1:%d"
`, state, rtspPort, port), 0o600); err != nil {
		return err
	}
	gw, err := h.procs.start("live-camgate", nil, nil, h.camgate, "serve", "--config", cfg)
	if err != nil {
		return err
	}
	defer h.procs.stopChild(gw)
	base := fmt.Sprintf("http://127.0.0.1:%d/s/", port)
	if err := waitHTTP(ctx, base+secrets[0]+"/info", 15*time.Second); err != nil {
		return fmt.Errorf("camgate: %w\n%s", err, gw.logTail())
	}

	vctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var viewers []*liveViewer
	join := func(ch int) (*liveViewer, error) {
		v := &liveViewer{}
		ttfb, err := v.start(vctx, &wg, base+secrets[ch]+"/stream")
		if err != nil {
			return nil, err
		}
		v.ttfb = ttfb
		viewers = append(viewers, v)
		return v, nil
	}
	first, err := join(0)
	if err != nil {
		return err
	}
	second, err := join(0)
	if err != nil {
		return err
	}
	for ch := 1; ch < liveChannels; ch++ {
		if _, err := join(ch); err != nil {
			return err
		}
	}
	h.record(Result{Metric: "live_ttfb_cold", Peer: peerCamgate, Value: ms(first.ttfb)})
	h.record(Result{Metric: "live_ttfb_warm", Peer: peerCamgate, Value: ms(second.ttfb)})
	// Phase one: 4 pulls, 5 viewers (channel 1 has two); drop the extra
	// so each channel has one.
	second.cancel()
	viewers = slices.DeleteFunc(viewers, func(v *liveViewer) bool { return v == second })
	served := func() int64 {
		var n int64
		for _, v := range viewers {
			n += v.bytes.Load()
		}
		return n
	}
	b0 := served()
	cpu4, rss4, err := sampleLive(ctx, gw.pid(), window)
	mbps4 := float64(served()-b0) * 8 / 1e6 / (window + time.Second).Seconds()
	if err != nil {
		return err
	}
	for ch := range liveChannels {
		for range livePerChannel - 1 {
			if _, err := join(ch); err != nil {
				return err
			}
		}
	}
	b0 = served()
	cpu16, rss16, err := sampleLive(ctx, gw.pid(), window)
	mbps16 := float64(served()-b0) * 8 / 1e6 / (window + time.Second).Seconds()
	if err != nil {
		return err
	}
	var slow int
	for _, v := range viewers {
		if v.bytes.Load() == 0 || v.err.Load() != nil {
			slow++
		}
	}
	if slow > 0 {
		return fmt.Errorf("%d of %d viewers got nothing or failed", slow, len(viewers))
	}
	n := float64(len(viewers) - liveChannels)
	h.record(Result{Metric: "live_cpu_4", Peer: peerCamgate, Value: cpu4, Detail: map[string]float64{"rss_kb": float64(rss4), "served_mbps": mbps4}})
	h.record(Result{Metric: "live_cpu_16", Peer: peerCamgate, Value: cpu16, Detail: map[string]float64{"rss_kb": float64(rss16), "served_mbps": mbps16}})
	h.logf("served %.1f Mbit/s to 4 viewers, %.1f Mbit/s to 16", mbps4, mbps16)
	h.record(Result{Metric: "live_cpu_viewer", Peer: peerCamgate, Value: (cpu16 - cpu4) / n})
	h.record(Result{Metric: "live_kb_viewer", Peer: peerCamgate, Value: float64(rss16-rss4) / n})
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sampleLive waits a second for the viewers to settle, then returns the
// process tree's CPU use over window (percent of one core) and its RSS.
func sampleLive(ctx context.Context, pid int, window time.Duration) (cpuPct float64, rssKB int64, err error) {
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(time.Second):
	}
	t0, c0 := time.Now(), treeTicks(pid)
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(window):
	}
	c1 := treeTicks(pid)
	u, err := treeUsage(pid)
	if err != nil {
		return 0, 0, err
	}
	return 100 * (c1 - c0) / clockTicks / time.Since(t0).Seconds(), u.RSSKB, nil
}

// liveViewer reads one fMP4 stream and counts its bytes.
type liveViewer struct {
	ttfb   time.Duration
	bytes  atomic.Int64
	err    atomic.Pointer[error]
	cancel context.CancelFunc
}

// start opens the stream and returns the time to its first body byte; a
// goroutine (in wg) reads the rest until ctx or cancel ends it.
func (v *liveViewer) start(ctx context.Context, wg *sync.WaitGroup, url string) (time.Duration, error) {
	ctx, v.cancel = context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	t0 := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		return 0, fmt.Errorf("GET %s: %s: %s", url, res.Status, b)
	}
	var one [1]byte
	if _, err := io.ReadFull(res.Body, one[:]); err != nil {
		res.Body.Close()
		return 0, err
	}
	ttfb := time.Since(t0)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer res.Body.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := res.Body.Read(buf)
			v.bytes.Add(int64(n))
			if err != nil {
				if ctx.Err() == nil {
					v.err.Store(&err)
				}
				return
			}
		}
	}()
	return ttfb, nil
}

// waitLog waits for re to match c's log and returns its first group.
func waitLog(ctx context.Context, c *child, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, _ := os.ReadFile(c.logPath)
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", errors.New("not found in its log: " + c.logTail())
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
}
