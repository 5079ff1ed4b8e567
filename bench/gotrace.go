package main

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"
)

// goroutineCounter counts camgate's goroutines from the outside, with no
// code in camgate: the process runs with
// GODEBUG=schedtrace=<ms>,scheddetail=1, and the Go runtime then prints,
// every interval, one "  G<id>: status=<n>(...)" line per goroutine it has
// ever allocated. Status 6 is _Gdead (a free G kept for reuse); every other
// status is a live goroutine, runtime ones included. The counter is the
// writer of camgate's stderr: it keeps the trace out of the log and passes
// every other line on to next.
type goroutineCounter struct {
	next io.Writer

	partial []byte // an incomplete line carried to the next Write
	block   int    // live goroutines counted so far in the current block
	inBlock bool

	mu     sync.Mutex // guards following
	last   int
	lastAt time.Time
}

func (g *goroutineCounter) Write(p []byte) (int, error) {
	n := len(p)
	if len(g.partial) > 0 {
		p = append(g.partial, p...)
		g.partial = nil
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			g.partial = append(g.partial[:0], p...)
			return n, nil
		}
		g.line(p[:i+1])
		p = p[i+1:]
	}
}

func (g *goroutineCounter) line(l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("SCHED ")):
		g.finish()
		g.inBlock, g.block = true, 0
	case g.inBlock && bytes.HasPrefix(l, []byte("  G")):
		if i := bytes.Index(l, []byte("status=")); i >= 0 {
			if !bytes.HasPrefix(l[i+len("status="):], []byte("6(")) {
				g.block++
			}
		}
	case g.inBlock && (bytes.HasPrefix(l, []byte("  P")) || bytes.HasPrefix(l, []byte("  M"))):
	default:
		// An ordinary log line ends the trace block.
		g.finish()
		if g.next != nil {
			_, _ = g.next.Write(l)
		}
	}
}

// finish records the block just read as the latest complete count.
func (g *goroutineCounter) finish() {
	if !g.inBlock {
		return
	}
	g.inBlock = false
	g.mu.Lock()
	g.last, g.lastAt = g.block, time.Now()
	g.mu.Unlock()
}

// fresh returns a count taken after the call began, waiting up to wait.
// A block is complete when the next one starts, so the count is at most
// one interval old. It returns -1 if none arrives in time.
func (g *goroutineCounter) fresh(ctx context.Context, wait time.Duration) int {
	t0 := time.Now()
	deadline := t0.Add(wait)
	for {
		g.mu.Lock()
		n, at := g.last, g.lastAt
		g.mu.Unlock()
		if at.After(t0) {
			return n
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latest returns the most recent count, or -1 if there is none yet.
func (g *goroutineCounter) latest() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastAt.IsZero() {
		return -1
	}
	return g.last
}
