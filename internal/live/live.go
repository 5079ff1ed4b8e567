// Package live shows a device's camera channels in a browser with no
// plugin and no transcoding. camgate pulls a channel's RTSP stream from the
// device on the LAN once, however many viewers there are, and repackages
// its H.264 frames as fragmented MP4 that the page feeds to Media Source
// Extensions (MSE) from one streaming HTTP response (docs/LIVE.md says why
// this, and what was measured).
//
//	hub := live.New(live.Config{Locate: devices.StreamURL, Logger: log})
//	defer hub.Close()
//	mux.HandleFunc("GET /live/{dev}/{ch}", func(w http.ResponseWriter, r *http.Request) {
//		hub.ServeFMP4(w, r, r.PathValue("dev"), ch) // until the viewer leaves or r's context ends
//	})
//
// A pull starts with its first viewer and stops when its last viewer
// leaves. The hub keeps the frames since the last key frame, so a new
// viewer starts on a key frame at once instead of waiting for the next.
// A viewer that falls too far behind is dropped (its page reconnects),
// never allowed to slow the others.
//
// The package does not authenticate anyone: its callers decide who may
// watch what (package admin for the owner, share links for others), and
// end a viewing by cancelling the request's context. It does not handle
// H.265 (browsers' MSE support for it is patchy) or audio.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"
)

// Locator returns the RTSP URL, with the device's credentials in it, of a
// device's stream channel (Hikvision style: 101 is camera 1's main stream).
type Locator func(device string, channel int) (*url.URL, error)

// Config configures a Hub.
type Config struct {
	// Locate finds a channel's RTSP URL. Required.
	Locate Locator
	// Logger receives pull starts, stops and failures. Nil discards.
	Logger *slog.Logger
	// StartTimeout bounds how long a viewer waits for the first frame.
	// Zero means 10 s.
	StartTimeout time.Duration
}

func (c *Config) startTimeout() time.Duration {
	if c.StartTimeout <= 0 {
		return 10 * time.Second
	}
	return c.StartTimeout
}

// Limits of what the hub holds per stream and per viewer.
const (
	// maxGOP caps the frames kept since the last key frame (a camera with
	// a 4 s I-frame interval at 30 fps sends 120); it must stay below
	// viewerQueue.
	maxGOP = 200
	// viewerQueue is how many frames a viewer may lag before it is
	// dropped: about 10 s at 25 fps, enough for the cached GOP plus a
	// network hiccup.
	viewerQueue = 256
)

// ErrNoVideo means the device sent no frame in time.
var ErrNoVideo = errors.New("no video from the device")

// key names one pulled stream.
type key struct {
	device  string
	channel int
}

// frame is one H.264 access unit, shared by every viewer.
type frame struct {
	p   *params
	dts int64  // decoding time, 90 kHz, from the stream's start
	cto uint32 // presentation time minus decoding time (B frames)
	key bool
	// avcc is the access unit's NAL units, each with a 4-byte length
	// prefix, as an MP4 sample carries them.
	avcc []byte
}

// Hub owns the pulls and their viewers.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // guards following
	streams map[key]*stream
	closed  bool
	wg      sync.WaitGroup // the pulls
}

// stream is one pull and its viewers. Its fields are guarded by Hub.mu.
type stream struct {
	key     key
	cancel  context.CancelFunc
	viewers map[*viewer]struct{}
	gop     []*frame
}

// viewer receives a stream's frames.
type viewer struct {
	ch  chan *frame // closed when the stream ends or drops the viewer
	err error       // why ch was closed; guarded by Hub.mu
}

// New returns a Hub.
func New(c Config) *Hub {
	if c.Locate == nil {
		panic("live: Config.Locate is required")
	}
	h := &Hub{cfg: c, log: c.Logger, streams: map[key]*stream{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// Close stops every pull and ends every viewer, and waits for the pulls.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for _, s := range h.streams {
		h.endLocked(s, errors.New("live view is shutting down"))
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Stats is a snapshot of the hub.
type Stats struct {
	// Pulls is the number of RTSP pulls running; Viewers the number of
	// viewers over all of them.
	Pulls, Viewers int
}

// Stats returns the current pulls and viewers.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	var st Stats
	for _, s := range h.streams {
		st.Pulls++
		st.Viewers += len(s.viewers)
	}
	return st
}

// join adds a viewer to the channel's stream, starting the pull if it is
// the first, and queues the cached frames since the last key frame.
func (h *Hub) join(device string, channel int) (*viewer, *stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errors.New("live view is shutting down")
	}
	k := key{device, channel}
	s := h.streams[k]
	if s == nil {
		u, err := h.cfg.Locate(device, channel)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		s = &stream{key: k, cancel: cancel, viewers: map[*viewer]struct{}{}}
		h.streams[k] = s
		h.wg.Add(1)
		go h.pull(ctx, s, u)
	}
	v := &viewer{ch: make(chan *frame, viewerQueue)}
	for _, f := range s.gop {
		v.ch <- f
	}
	s.viewers[v] = struct{}{}
	return v, s, nil
}

// leave removes a viewer; the last one out stops the pull.
func (h *Hub) leave(s *stream, v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := s.viewers[v]; !ok {
		return
	}
	delete(s.viewers, v)
	close(v.ch)
	if len(s.viewers) == 0 {
		h.endLocked(s, nil)
	}
}

// endLocked stops s's pull and ends its viewers with err.
func (h *Hub) endLocked(s *stream, err error) {
	if h.streams[s.key] == s {
		delete(h.streams, s.key)
	}
	s.cancel()
	for v := range s.viewers {
		v.err = err
		close(v.ch)
		delete(s.viewers, v)
	}
	s.gop = nil
}

// publish hands a frame to the stream's viewers and keeps it for
// newcomers.
func (h *Hub) publish(s *stream, f *frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[s.key] != s {
		return
	}
	switch {
	case f.key:
		s.gop = append(s.gop[:0:0], f)
	case len(s.gop) > 0 && len(s.gop) < maxGOP:
		s.gop = append(s.gop, f)
	default:
		s.gop = nil // too long: newcomers wait for the next key frame
	}
	for v := range s.viewers {
		select {
		case v.ch <- f:
		default:
			v.err = errors.New("viewer too slow: dropped")
			close(v.ch)
			delete(s.viewers, v)
		}
	}
	if len(s.viewers) == 0 {
		h.endLocked(s, nil)
	}
}

// fail ends the stream after its pull failed.
func (h *Hub) fail(s *stream, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[s.key] == s {
		h.endLocked(s, err)
	}
}

// channelName is how logs and errors name a stream.
func (k key) String() string { return fmt.Sprintf("%s/%d", k.device, k.channel) }
