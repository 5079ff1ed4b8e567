package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// receiver is a webhook on loopback that keeps what it got.
type receiver struct {
	mu  sync.Mutex // guards following
	got []*http.Request
	bod []string
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	rc := &receiver{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.bod = append(rc.bod, string(b))
		rc.mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	return rc, ts
}

func (rc *receiver) wait(t *testing.T, n int) ([]*http.Request, []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		if len(rc.got) >= n {
			defer rc.mu.Unlock()
			return rc.got, rc.bod
		}
		rc.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the webhook got fewer than %d messages", n)
	return nil, nil
}

type clock struct {
	mu sync.Mutex // guards following
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestNtfyRateLimited posts a burst of events to a real HTTP receiver in
// ntfy's format: the first Burst go out with ntfy's headers and a bearer
// token, the rest are held back, a ban still goes out (each kind has
// its own limit), and after Every one more block goes out and says how
// many were held back.
func TestNtfyRateLimited(t *testing.T) {
	rc, ts := newReceiver(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ntfy.token"), []byte("tk_secret\n"), 0o600)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n := New(Config{BaseDir: dir, Now: clk.now})
	n.SetSettings(config.Notify{URL: ts.URL + "/camgate-alerts", TokenFile: "ntfy.token", Burst: 2, Every: config.Duration(time.Minute)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	for i := 0; i < 10; i++ {
		n.Publish(Event{Kind: config.EventBlock, Title: "Blocked an exploit", Message: "blocked " + string(rune('a'+i))})
	}
	got, bodies := rc.wait(t, 2)
	time.Sleep(100 * time.Millisecond)
	if len(got) != 2 {
		t.Fatalf("got %d messages from a burst of 10, want 2", len(got))
	}
	r := got[0]
	if r.URL.Path != "/camgate-alerts" || r.Header.Get("Title") != "Blocked an exploit" || r.Header.Get("Priority") != "3" ||
		r.Header.Get("Authorization") != "Bearer tk_secret" || !strings.Contains(r.Header.Get("Tags"), "shield") || bodies[0] != "blocked a" {
		t.Fatalf("got %s %v %q, want ntfy's headers and the message as the body", r.URL.Path, r.Header, bodies[0])
	}
	// The flood of blocks does not hold back a ban.
	n.Publish(Event{Kind: config.EventBan, Title: "Banned", Message: "banned x"})
	_, bodies = rc.wait(t, 3)
	if bodies[2] != "banned x" {
		t.Fatalf("got %q, want the ban", bodies[2])
	}
	clk.add(time.Minute)
	n.Publish(Event{Kind: config.EventBlock, Title: "Blocked", Message: "blocked k"})
	_, bodies = rc.wait(t, 4)
	if want := "blocked k (8 earlier events were not sent"; !strings.HasPrefix(bodies[3], want) {
		t.Fatalf("got %q, want %q...", bodies[3], want)
	}
	if st := n.Status(); st.Sent != 4 || st.HeldBack != 8 {
		t.Fatalf("status: got %+v, want 4 sent, 8 held back", st)
	}
	if rec := n.Recent(); len(rec) != 12 || rec[0].Message != "blocked k" {
		t.Fatalf("recent: got %d, newest %+v; want all 12, newest first", len(rec), rec[0])
	}
}

// TestJSONAndFilter checks the json format and the events filter.
func TestJSONAndFilter(t *testing.T) {
	rc, ts := newReceiver(t)
	n := New(Config{})
	n.SetSettings(config.Notify{URL: ts.URL, Format: "json", Events: []string{config.EventBan}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	n.Publish(Event{Kind: config.EventBlock, Message: "not wanted"})
	n.Publish(Event{Kind: config.EventBan, Title: "Banned", Message: "banned 198.18.0.10", Rule: "dvr-web", Source: "198.18.0.10/32"})
	got, bodies := rc.wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	if len(got) != 1 {
		t.Fatalf("got %d messages, want only the ban", len(got))
	}
	var m jsonMessage
	if err := json.Unmarshal([]byte(bodies[0]), &m); err != nil || m.Kind != "ban" || m.Rule != "dvr-web" || m.Priority != 4 {
		t.Fatalf("got %s (%v), want the ban as JSON", bodies[0], err)
	}
}
