package forward

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Why a poller of our own (measured; see docs/PERFORMANCE.md):
//
// With a goroutine per direction, an idle connection costs two parked
// goroutines: their stacks (one grown by the dial) and the heap they keep
// alive were ~12 of the 15 KB of RSS per held connection. Here a direction
// that has been quiet for linger (tcp.go) is an entry in an epoll set and
// nothing else. The set is armed one-shot per direction: when a source
// becomes readable, the poller's single goroutine starts a goroutine for
// that direction (Conn.pump), which moves the data, lingers, and re-arms
// the direction when it goes quiet again.
//
// Directions do not start here: a request's answer or a stream's next
// segment usually arrives within linger, and a wait in the runtime poller
// is one goroutine wake-up where this set costs two (its goroutine, then
// the direction's). Measured on short connections, sending every
// direction through the set at once cost a third of their rate.
//
// The epoll descriptor itself is non-blocking and registered with the Go
// runtime's network poller, so the poller goroutine parks like any socket
// reader instead of pinning an OS thread in epoll_wait.
//
// A socket is in two epoll sets: the runtime's (edge-triggered, used while
// a direction lingers or waits for its destination to drain) and this one
// (level-triggered, one-shot). Closing the socket removes it from both.

// poller is a rule's epoll set of idle TCP directions.
type poller struct {
	ep int
	f  *os.File // ep, registered with the runtime poller
	rc syscall.RawConn

	done chan struct{} // closed when run returns

	mu    sync.Mutex // guards following
	slots []*pslot   // token → direction
	free  []uint32   // free slot indexes
}

// pslot is a registered direction. gen tells a stale event (for a slot
// freed and reused since epoll_wait returned it) from a live one.
type pslot struct {
	h   *half // nil while free
	gen uint32
}

func newPoller() (*poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("epoll: set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(ep), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &poller{ep: ep, f: f, rc: rc, done: make(chan struct{})}, nil
}

// arm asks for one event when h's source is readable (or at end of
// stream, or on an error). The first arm registers h: a direction enters
// the set only once something has been tried on it, so that an error
// reported at registration cannot start a burst that is already running.
// The caller owns h and holds its connection's lock.
func (p *poller) arm(h *half) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	if h.registered {
		ev.Fd, ev.Pad = int32(h.slot), int32(h.gen)
		return p.ctl(h, unix.EPOLL_CTL_MOD, &ev)
	}
	p.mu.Lock()
	var idx uint32
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		idx = uint32(len(p.slots))
		p.slots = append(p.slots, &pslot{})
	}
	s := p.slots[idx]
	s.gen++
	s.h = h
	h.slot, h.gen = idx, s.gen
	p.mu.Unlock()
	ev.Fd, ev.Pad = int32(h.slot), int32(h.gen)
	if err := p.ctl(h, unix.EPOLL_CTL_ADD, &ev); err != nil {
		p.remove(h.slot, h.gen)
		return err
	}
	h.registered = true
	return nil
}

// ctl runs epoll_ctl on h's source while holding it open, so that a
// concurrent Close cannot hand its number to another socket meanwhile.
func (p *poller) ctl(h *half, op int, ev *unix.EpollEvent) error {
	var cerr error
	err := h.srcRC.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(p.ep, op, int(fd), ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// remove frees a slot. The socket leaves the epoll set when it is closed.
func (p *poller) remove(idx, gen uint32) {
	p.mu.Lock()
	if s := p.slots[idx]; s.gen == gen && s.h != nil {
		s.h = nil
		p.free = append(p.free, idx)
	}
	p.mu.Unlock()
}

// run dispatches readiness until the poller is closed.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && werr != unix.EINTR)
		})
		if err != nil || werr != nil {
			return // closed
		}
		for i := range events[:n] {
			ev := &events[i]
			var h *half
			p.mu.Lock()
			if s := p.slots[uint32(ev.Fd)]; s.gen == uint32(ev.Pad) {
				h = s.h
			}
			p.mu.Unlock()
			if h != nil {
				h.c.activate(h)
			}
		}
	}
}

// close stops run, if it was started, and waits for it. Sockets still
// registered are not touched: they belong to their connections.
func (p *poller) close(started bool) {
	p.f.Close()
	if started {
		<-p.done
	}
}
