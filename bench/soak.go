package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Soak mode runs one camgate under mixed load for --soak and watches its
// goroutines, fds, RSS and threads once a second. The load, all at once:
//
//   - bulk: iperf3 at 300 Mb/s in 20 s runs, back to back;
//   - short connections: HTTP/1.0 GETs, one connection each, ~300/s;
//   - idle: holdclient cycles of 2,000 held connections (held 15 s, proven,
//     then closed, every other cycle with a reset instead of a FIN);
//   - UDP: 10 RTP-like streams at 2 Mb/s in 20 s cycles, each cycle from
//     new client sockets so old sessions must expire (udp_idle_timeout 5s);
//   - reloads: every 10 s a rule is added or removed with SIGHUP, and the
//     added rule must forward within 5 s.
//
// Before that, soakWarmup of the same load, and a wait until goroutines and
// fds are steady, set the baseline ("start"): pools and grown tables that
// camgate keeps on purpose belong to it, and only what grows with time
// reads as a leak. The cold figures are reported too.
//
// After the load stops, the harness waits up to soakSettle for camgate to
// come back to its baseline. Go gives memory back only after a GC has freed
// the dead goroutines' stacks and the scavenger has returned the pages; an
// idle process is collected at least every 2 minutes (the runtime's forced
// GC), hence 150 s. The run passes when the end figures are within
// the slack of the start (goroutines +5, fds +2, RSS +soakRSSSlackKB) and
// no forwarded operation failed.
const (
	soakSettle      = 150 * time.Second
	soakWarmup      = 20 * time.Second
	soakGorSlack    = 5
	soakFDSlack     = 2
	soakRSSSlackKB  = 20 * 1024
	soakHoldConns   = 2000
	soakHTTPPerSec  = 300
	soakUDPStreams  = 10
	soakUDPMbps     = 2
	soakCycle       = 20 * time.Second
	soakReloadEvery = 10 * time.Second
)

// SoakSample is one observation of camgate.
type SoakSample struct {
	Seconds    float64 `json:"t"`
	Phase      string  `json:"phase"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	RSSKB      int64   `json:"rss_kb"`
	Threads    int     `json:"threads"`
}

// SoakCheck is one pass/fail condition.
type SoakCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// SoakReport is what soak mode produces.
type SoakReport struct {
	Duration string `json:"duration"`
	// Cold is camgate before any traffic; Start is the baseline after the
	// warm-up, which the end is judged against.
	Cold    SoakSample       `json:"cold"`
	Start   SoakSample       `json:"start"`
	Peak    SoakSample       `json:"peak"`
	End     SoakSample       `json:"end"`
	Load    map[string]int64 `json:"load"`
	Checks  []SoakCheck      `json:"checks"`
	Passed  bool             `json:"passed"`
	Samples []SoakSample     `json:"samples"`
}

// soakLoad counts what the load generators did.
type soakLoad struct {
	httpOK, httpFail      atomic.Int64
	bulkRuns, bulkFail    atomic.Int64
	bulkBytes             atomic.Int64
	holdCycles, holdFail  atomic.Int64
	holdConns             atomic.Int64
	udpCycles, udpSent    atomic.Int64
	udpLost, udpReordered atomic.Int64
	udpFail               atomic.Int64
	reloads, reloadFail   atomic.Int64
	errMu                 sync.Mutex // guards following
	firstErrs             []string
}

func (l *soakLoad) errorf(format string, args ...any) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if len(l.firstErrs) < 10 {
		l.firstErrs = append(l.firstErrs, fmt.Sprintf(format, args...))
	}
}

func (h *harness) soak(ctx context.Context, d time.Duration) (*SoakReport, error) {
	// Backends.
	iperfPort, err := h.ports.get()
	if err != nil {
		return nil, err
	}
	iperf, err := h.procs.start("iperf3-server", nil, nil, "iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(int(iperfPort)))
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, iperf, []route{{proto: "tcp", listen: iperfPort}}, 5*time.Second); err != nil {
		return nil, err
	}
	_, httpPort, err := h.httpBackend(ctx)
	if err != nil {
		return nil, err
	}
	srv, err := h.startHelper("holdserver")
	if err != nil {
		return nil, err
	}
	hello, err := srv.call(ctx, "", 10*time.Second)
	if err != nil {
		return nil, err
	}
	_, sp, _ := net.SplitHostPort(hello.Listen)
	holdPort, _ := strconv.Atoi(sp)
	echo, err := startTCPEcho()
	if err != nil {
		return nil, err
	}
	defer echo.close()
	camConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	cam := newRTPCamera(camConn, soakUDPStreams)
	defer cam.close()

	var routes []route
	for _, r := range []struct {
		name, proto string
		target      uint16
	}{
		{"soak-bulk", "tcp", iperfPort},
		{"soak-http", "tcp", httpPort},
		{"soak-hold", "tcp", uint16(holdPort)},
		{"soak-udp", "udp", cam.port()},
	} {
		p, err := h.ports.get()
		if err != nil {
			return nil, err
		}
		routes = append(routes, route{name: r.name, proto: r.proto, listen: p, target: r.target})
	}
	extraPort, err := h.ports.get()
	if err != nil {
		return nil, err
	}
	extra := route{name: "soak-extra", proto: "tcp", listen: extraPort, target: echo.port}

	in, err := h.startPeer(ctx, peerCamgate, routes, peerOpts{schedTrace: time.Second, udpIdle: "5s"})
	if err != nil {
		return nil, err
	}
	defer h.stopPeer(in)

	rep := &SoakReport{Duration: d.String(), Load: map[string]int64{}}
	t0 := time.Now()
	sample := func(phase string, fresh bool) (SoakSample, error) {
		var u usage
		var err error
		if fresh {
			u, err = in.usageWithGoroutines(ctx)
		} else {
			u, err = in.usage()
			u.Goroutines = in.gor.latest()
		}
		s := SoakSample{Seconds: time.Since(t0).Seconds(), Phase: phase, Goroutines: u.Goroutines, FDs: u.FDs, RSSKB: u.RSSKB, Threads: u.Threads}
		rep.Samples = append(rep.Samples, s)
		return s, err
	}
	sleepCtx(ctx, 3*time.Second)
	if rep.Cold, err = sample("cold", true); err != nil {
		return nil, err
	}
	h.logf("soak cold start: %d goroutines, %d fds, %d KB RSS, %d threads", rep.Cold.Goroutines, rep.Cold.FDs, rep.Cold.RSSKB, rep.Cold.Threads)

	var load soakLoad
	loadFor := func(d time.Duration, onTick func(SoakSample)) error {
		lctx, stopLoad := context.WithTimeout(ctx, d)
		defer stopLoad()
		var wg sync.WaitGroup
		for _, f := range []func(){
			func() { h.soakBulk(lctx, in.addr(0), &load) },
			func() { soakHTTP(lctx, in.addr(1), &load) },
			func() { h.soakHold(lctx, in.addr(2), &load) },
			func() { soakUDP(lctx, ctx, cam, in.addr(3), &load) },
			func() { soakReload(lctx, in, routes, extra, &load) },
		} {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		defer wg.Wait()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for lctx.Err() == nil {
			select {
			case <-lctx.Done():
			case <-tick.C:
				s, err := sample("load", false)
				if err != nil {
					return err
				}
				onTick(s)
			}
		}
		stopLoad()
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Make sure the extra rule is gone, so the config is the start's.
		return in.reload(routes)
	}

	// Warm up, so that what camgate keeps on purpose (pools, grown maps,
	// the heap's high-water mark) is part of the baseline and only growth
	// that goes on with time reads as a leak.
	h.logf("soak: warming up for %s", soakWarmup)
	if err := loadFor(soakWarmup, func(SoakSample) {}); err != nil {
		return nil, err
	}
	for prev := (SoakSample{Goroutines: -2}); ; {
		sleepCtx(ctx, 2*time.Second)
		s, err := sample("start", true)
		if err != nil {
			return nil, err
		}
		rep.Start = s
		if (s.Goroutines == prev.Goroutines && s.FDs == prev.FDs) || s.Seconds-rep.Cold.Seconds > soakSettle.Seconds() || ctx.Err() != nil {
			break
		}
		prev = s
	}
	h.logf("soak baseline after warm-up: %d goroutines, %d fds, %d KB RSS, %d threads", rep.Start.Goroutines, rep.Start.FDs, rep.Start.RSSKB, rep.Start.Threads)
	rep.Peak = rep.Start

	last := time.Now()
	err = loadFor(d, func(s SoakSample) {
		rep.Peak = peakOf(rep.Peak, s)
		if time.Since(last) >= 30*time.Second {
			last = time.Now()
			h.logf("soak %3.0fs: %d goroutines, %d fds, %d KB RSS; http %d ok; hold cycles %d; bulk runs %d; udp cycles %d; reloads %d",
				s.Seconds, s.Goroutines, s.FDs, s.RSSKB, load.httpOK.Load(), load.holdCycles.Load(), load.bulkRuns.Load(), load.udpCycles.Load(), load.reloads.Load())
		}
	})
	if err != nil {
		return nil, err
	}

	// Cool down until back at baseline or soakSettle passes.
	h.logf("soak: load stopped, waiting up to %s for camgate to return to its baseline", soakSettle)
	settle := time.Now()
	for {
		sleepCtx(ctx, 2*time.Second)
		s, err := sample("cooldown", true)
		if err != nil {
			return nil, err
		}
		rep.End = s
		if backAtBase(rep.Start, s) || time.Since(settle) > soakSettle || ctx.Err() != nil {
			break
		}
	}
	if err := in.alive(); err != nil {
		return nil, err
	}

	rep.Load = map[string]int64{
		"http_ok": load.httpOK.Load(), "http_failed": load.httpFail.Load(),
		"bulk_runs": load.bulkRuns.Load(), "bulk_failed": load.bulkFail.Load(), "bulk_mbytes": load.bulkBytes.Load() >> 20,
		"hold_cycles": load.holdCycles.Load(), "hold_conns": load.holdConns.Load(), "hold_failed": load.holdFail.Load(),
		"udp_cycles": load.udpCycles.Load(), "udp_sent": load.udpSent.Load(), "udp_lost": load.udpLost.Load(),
		"udp_reordered": load.udpReordered.Load(), "udp_failed": load.udpFail.Load(),
		"reloads": load.reloads.Load(), "reload_failed": load.reloadFail.Load(),
	}
	fails := load.httpFail.Load() + load.bulkFail.Load() + load.holdFail.Load() + load.udpFail.Load() + load.reloadFail.Load()
	load.errMu.Lock()
	firstErrs := strings.Join(load.firstErrs, "; ")
	load.errMu.Unlock()
	rep.Checks = []SoakCheck{
		{"goroutines back to baseline", rep.End.Goroutines >= 0 && rep.End.Goroutines <= rep.Start.Goroutines+soakGorSlack,
			fmt.Sprintf("start %d, peak %d, end %d (slack %d)", rep.Start.Goroutines, rep.Peak.Goroutines, rep.End.Goroutines, soakGorSlack)},
		{"fds back to baseline", rep.End.FDs <= rep.Start.FDs+soakFDSlack,
			fmt.Sprintf("start %d, peak %d, end %d (slack %d)", rep.Start.FDs, rep.Peak.FDs, rep.End.FDs, soakFDSlack)},
		{"RSS back near baseline", rep.End.RSSKB <= rep.Start.RSSKB+soakRSSSlackKB,
			fmt.Sprintf("start %d KB, peak %d KB, end %d KB (slack %d KB)", rep.Start.RSSKB, rep.Peak.RSSKB, rep.End.RSSKB, soakRSSSlackKB)},
		{"no forwarding failures", fails == 0, fmt.Sprintf("%d failed operations %s", fails, firstErrs)},
	}
	rep.Passed = true
	for _, c := range rep.Checks {
		rep.Passed = rep.Passed && c.OK
	}
	return rep, nil
}

func backAtBase(start, s SoakSample) bool {
	return s.Goroutines >= 0 && s.Goroutines <= start.Goroutines+soakGorSlack &&
		s.FDs <= start.FDs+soakFDSlack && s.RSSKB <= start.RSSKB+soakRSSSlackKB
}

func peakOf(p, s SoakSample) SoakSample {
	p.Goroutines = max(p.Goroutines, s.Goroutines)
	p.FDs = max(p.FDs, s.FDs)
	p.RSSKB = max(p.RSSKB, s.RSSKB)
	p.Threads = max(p.Threads, s.Threads)
	p.Phase = "peak"
	return p
}

func (c *rtpCamera) port() uint16 { return uint16(c.conn.LocalAddr().(*net.UDPAddr).Port) }

// soakBulk runs rate-limited iperf3 transfers back to back.
func (h *harness) soakBulk(ctx context.Context, addr string, l *soakLoad) {
	host, port, _ := strings.Cut(addr, ":")
	for ctx.Err() == nil {
		secs := int(soakCycle / time.Second)
		if dl, ok := ctx.Deadline(); ok {
			secs = min(secs, int(time.Until(dl)/time.Second))
		}
		if secs < 1 {
			return
		}
		out, err := runTool(ctx, time.Duration(secs+20)*time.Second, "iperf3", "-c", host, "-p", port, "-t", strconv.Itoa(secs), "-b", "300M", "-J")
		if ctx.Err() != nil {
			return // cut short by the end of the soak: not a failure
		}
		if err == nil {
			var r Result
			if r, err = parseIperf(out); err == nil {
				l.bulkBytes.Add(int64(r.Value * 1e9 / 8 * float64(secs)))
			}
		}
		l.bulkRuns.Add(1)
		if err != nil {
			l.bulkFail.Add(1)
			l.errorf("bulk: %v", firstLine(err.Error()))
			sleepCtx(ctx, time.Second)
		}
	}
}

// soakHTTP makes short HTTP/1.0 requests at about soakHTTPPerSec.
func soakHTTP(ctx context.Context, addr string, l *soakLoad) {
	const workers = 4
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second * workers / soakHTTPPerSec)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := httpGet(addr); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.httpFail.Add(1)
					l.errorf("http: %v", err)
				} else {
					l.httpOK.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

func httpGet(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(status, " 200 ") {
		return fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	_, err = io.Copy(io.Discard, br)
	return err
}

// soakHold cycles batches of held connections.
func (h *harness) soakHold(ctx context.Context, addr string, l *soakLoad) {
	for cycle := 0; ctx.Err() == nil; cycle++ {
		args := []string{"--addr", addr, "--n", strconv.Itoa(soakHoldConns)}
		if cycle%2 == 1 {
			args = append(args, "--rst")
		}
		err := func() error {
			cl, err := h.startHelper("holdclient", args...)
			if err != nil {
				return err
			}
			defer h.procs.stopChild(cl.c)
			r, err := cl.call(ctx, "", 2*time.Minute)
			if err != nil {
				return err
			}
			l.holdConns.Add(int64(r.OK))
			if r.Failed > 0 {
				l.holdFail.Add(int64(r.Failed))
				l.errorf("hold: %d of %d failed to open:%s", r.Failed, soakHoldConns, fmtErrors(r.Errors))
			}
			sleepCtx(ctx, 15*time.Second)
			// Prove them even if the soak just ended: they are still open.
			chk, err := cl.call(context.Background(), "check", time.Minute)
			if err != nil {
				return err
			}
			if chk.Alive != r.OK {
				l.holdFail.Add(int64(r.OK - chk.Alive))
				l.errorf("hold: %d of %d held connections died", r.OK-chk.Alive, r.OK)
			}
			_, err = cl.call(context.Background(), "close", time.Minute)
			return err
		}()
		l.holdCycles.Add(1)
		if err != nil && ctx.Err() == nil {
			l.holdFail.Add(1)
			l.errorf("hold: %v", firstLine(err.Error()))
		}
	}
}

// soakUDP runs RTP-like cycles, each from new sockets, until ctx ends. A
// cycle is cut short only by outer (an interrupt), not by the soak's end:
// the last cycle is sized to end with it.
func soakUDP(ctx, outer context.Context, cam *rtpCamera, addr string, l *soakLoad) {
	for ctx.Err() == nil {
		d := soakCycle
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, time.Until(dl))
		}
		if d < time.Second {
			return
		}
		st, err := runRTP(outer, cam, addr, soakUDPStreams, soakUDPMbps, d)
		if outer.Err() != nil {
			return
		}
		l.udpCycles.Add(1)
		if err != nil {
			l.udpFail.Add(1)
			l.errorf("udp: %v", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		l.udpSent.Add(st.sent)
		l.udpLost.Add(st.lost)
		l.udpReordered.Add(st.reordered)
	}
}

// soakReload adds and removes the extra rule every soakReloadEvery.
func soakReload(ctx context.Context, in *instance, base []route, extra route, l *soakLoad) {
	t := time.NewTicker(soakReloadEvery)
	defer t.Stop()
	with := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		with = !with
		routes := base
		if with {
			routes = append(append([]route{}, base...), extra)
		}
		l.reloads.Add(1)
		if err := in.reload(routes); err != nil {
			l.reloadFail.Add(1)
			l.errorf("reload: %v", err)
			continue
		}
		if with {
			if err := pollEcho(context.Background(), fmt.Sprintf("127.0.0.1:%d", extra.listen), 5*time.Second); err != nil {
				l.reloadFail.Add(1)
				l.errorf("reload: added rule not forwarding: %v", err)
			}
		}
	}
}

// soakRows names the rows of the soak table.
func soakRows() []string {
	return []string{"cold (before any traffic)", "start (after warm-up)", "peak (under load)", "end (after cool-down)"}
}

func (s *SoakReport) write(w io.Writer, markdown bool) {
	soakRows := soakRows()
	if markdown {
		fmt.Fprintf(w, "\n### Soak (%s)\n\n| | goroutines | fds | RSS KB | threads |\n|---|---:|---:|---:|---:|\n", s.Duration)
		for i, x := range []SoakSample{s.Cold, s.Start, s.Peak, s.End} {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d |\n", soakRows[i], x.Goroutines, x.FDs, x.RSSKB, x.Threads)
		}
	} else {
		fmt.Fprintf(w, "\nSoak (%s)\n%-26s %11s %7s %10s %8s\n", s.Duration, "", "goroutines", "fds", "RSS KB", "threads")
		for i, x := range []SoakSample{s.Cold, s.Start, s.Peak, s.End} {
			fmt.Fprintf(w, "%-26s %11d %7d %10d %8d\n", soakRows[i], x.Goroutines, x.FDs, x.RSSKB, x.Threads)
		}
	}
	keys := []string{"http_ok", "http_failed", "bulk_runs", "bulk_failed", "bulk_mbytes", "hold_cycles", "hold_conns", "hold_failed",
		"udp_cycles", "udp_sent", "udp_lost", "udp_reordered", "udp_failed", "reloads", "reload_failed"}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, s.Load[k]))
	}
	fmt.Fprintf(w, "\nload: %s\n\n", strings.Join(parts, " "))
	for _, c := range s.Checks {
		v := "PASS"
		if !c.OK {
			v = "FAIL"
		}
		if markdown {
			fmt.Fprintf(w, "- **%s** %s: %s\n", v, c.Name, c.Detail)
		} else {
			fmt.Fprintf(w, "%s  %s: %s\n", v, c.Name, c.Detail)
		}
	}
	verdict := "PASSED"
	if !s.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nsoak %s\n", verdict)
}
