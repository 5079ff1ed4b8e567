package live

import (
	"context"
	"net/http"
	"time"
)

// writeTimeout bounds one frame's write to a viewer: a viewer that takes
// longer is gone or hopeless, and is dropped.
const writeTimeout = 5 * time.Second

// ServeFMP4 streams device's channel to w as fragmented MP4 until the
// viewer leaves, r's context ends (a caller revoking access cancels it),
// or the stream ends. The Content-Type carries the codecs parameter the
// page passes to MediaSource.addSourceBuffer. It returns an error, and has
// written nothing, when no frame arrives in time; after the first write it
// returns nil, whatever ended the stream: the page reconnects.
func (h *Hub) ServeFMP4(w http.ResponseWriter, r *http.Request, device string, channel int) error {
	v, s, err := h.join(device, channel)
	if err != nil {
		return err
	}
	defer h.leave(s, v)
	ctx := r.Context()

	first, err := h.firstFrame(ctx, v)
	if err != nil {
		return err
	}
	p := first.p
	hd := w.Header()
	hd.Set("Content-Type", `video/mp4; codecs="`+p.codec()+`"`)
	hd.Set("X-Content-Codecs", p.codec())
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.Write(p.initSegment()); err != nil {
		return nil
	}
	base := first.dts
	lastDur := uint32(timescale / 25)
	var seq uint32
	f := first
	for {
		// The sample's duration is not known until the next frame comes;
		// the previous interval is the best guess, and each fragment's
		// tfdt keeps the timeline exact.
		seq++
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := w.Write(fragmentHeader(seq, uint64(f.dts-base), f.cto, lastDur, len(f.avcc), f.key))
		if err == nil {
			_, err = w.Write(f.avcc)
		}
		// Frames already queued (the cached GOP of a new viewer) go out
		// in one flush, so the page gets them in one piece and starts at
		// the newest instead of playing the backlog.
		if err == nil && len(v.ch) == 0 {
			err = rc.Flush()
		}
		if err != nil {
			return nil // the viewer went away
		}
		var next *frame
		select {
		case <-ctx.Done():
			return nil
		case n, ok := <-v.ch:
			if !ok {
				h.log.Debug("live viewer ends", "stream", s.key.String(), "err", h.viewerErr(v))
				return nil
			}
			next = n
		}
		if next.p != p || next.dts < f.dts {
			// New parameter sets need a new initialization segment: end
			// the response, and the page reconnects.
			return nil
		}
		if d := next.dts - f.dts; d > 0 && d < timescale*10 {
			lastDur = uint32(d)
		}
		f = next
	}
}

// firstFrame waits for the viewer's first key frame.
func (h *Hub) firstFrame(ctx context.Context, v *viewer) (*frame, error) {
	t := time.NewTimer(h.cfg.startTimeout())
	defer t.Stop()
	for {
		f, err := h.nextFrame(ctx, t.C, v)
		if err != nil || f.key {
			return f, err
		}
	}
}

func (h *Hub) nextFrame(ctx context.Context, timeout <-chan time.Time, v *viewer) (*frame, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timeout:
		return nil, ErrNoVideo
	case f, ok := <-v.ch:
		if !ok {
			if err := h.viewerErr(v); err != nil {
				return nil, err
			}
			return nil, ErrNoVideo
		}
		return f, nil
	}
}

func (h *Hub) viewerErr(v *viewer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return v.err
}
