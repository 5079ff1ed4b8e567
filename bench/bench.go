// Command bench measures camgate side by side with other port forwarders
// (haproxy in TCP mode, nginx stream, socat, rinetd) and with no proxy at
// all ("direct"), in one run on loopback, and prints absolute figures,
// ratios and which of issue 4's performance targets (P1–P6) are met.
//
// Typical usage, from the repository root:
//
//	go run ./bench                      # the full run, about 7 minutes on 2 cores
//	go run ./bench --quick              # a smoke run, about 2 minutes
//	go run ./bench --only tcp,idle --peers direct,camgate,haproxy
//	go run ./bench --markdown --json bench.json
//	go run ./bench --wait-quiet 10m --repeat 3   # when the figures matter
//	go run ./bench --soak 10m           # mixed load; camgate's resources must return to baseline
//	sudo go run ./bench --netns --duration 5s  # wan/gw/lan namespaces: routed, camgate kernel and userspace, peers
//
// Every peer is a real program from Debian's packages, started as a child
// process with a generated config on free 127.0.0.1 ports and always
// killed at the end (also on error or SIGINT). Measures:
//
//	tcp    iperf3 single-stream and 8-stream throughput            (P1)
//	conns  wrk with Connection: close against a small nginx page   (P2)
//	idle   cost of --conns held idle connections: fds and RSS       (P3 shape)
//	udp    UDP echo packets/s with 64 and 1400-byte datagrams       (P4)
//	p3     --p3-conns (9,000) held connections through camgate      (P3)
//	p5     50 RTP-like UDP streams at 4 Mb/s with loss and reorder  (P5)
//	p6     SIGHUP adding a rule while another rule carries traffic  (P6)
//	live   browser live view: 16 viewers over 4 channels of a simulated DVR
//	rtsp   64 cameras × 4 Mb/s over the RTSP relay's UDP; its CPU per
//	       datagram against a plain UDP rule; time to first frame
//	vpn    (root) iperf3 through camgate's WireGuard VPN against a direct
//	       wireguard-go pair, in namespaces; CPU per Gbit/s; handshake
//
// The harness re-executes itself as "holdclient" and "holdserver" helper
// processes, so that the 2 fds per connection it spends on clients and
// backends count against their own RLIMIT_NOFILE, not the harness's.
//
// Every figure records how much CPU other work on the machine took while
// it was measured (see noise.go): on a shared 2-core machine that decides
// whether a ratio means anything.
//
// It is not a test: `go test ./bench` only checks the ratio and target
// arithmetic, in well under a second. See docs/BENCHMARKS.md.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// measureNames lists the measures in the order they run.
func measureNames() []string {
	return []string{"tcp", "conns", "idle", "udp", "p3", "p5", "p6", "live", "rtsp", "vpn"}
}

// peerNames lists every peer, the default --peers.
func peerNames() []string {
	return []string{peerDirect, peerCamgate, peerHAProxy, peerNginx, peerSocat, peerRinetd}
}

type options struct {
	only        []string
	peers       []string
	duration    time.Duration
	conns       int
	p3Conns     int
	p3Peers     []string
	p5Duration  time.Duration
	p5Peers     []string
	p5Streams   int
	rtspStreams int
	p5Mbps      float64
	p6Trials    int
	repeat      int
	waitQuiet   time.Duration
	soak        time.Duration
	camgate     string
	jsonOut     string
	markdown    bool
	quick       bool
	keep        bool
	netns       bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "holdclient":
			exitOn(runHoldClient(os.Args[2:]))
			return
		case "holdserver":
			exitOn(runHoldServer(os.Args[2:]))
			return
		}
	}
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if code == 0 {
			code = 1
		}
	}
	stop()
	os.Exit(code)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench [flags]\n\nMeasures camgate against direct, haproxy, nginx stream, socat and rinetd on loopback.\nMeasures: "+strings.Join(measureNames(), ",")+"\n(vpn needs root: camgate's WireGuard VPN against a direct wireguard-go pair, in network namespaces)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	only := fs.String("only", strings.Join(measureNames(), ","), "comma list of measures to run")
	peers := fs.String("peers", strings.Join(peerNames(), ","), "comma list of peers")
	var o options
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "duration of each throughput, conns/s and pps measure per peer")
	fs.IntVar(&o.conns, "conns", 5000, "idle connections held per peer in the idle measure")
	fs.IntVar(&o.p3Conns, "p3-conns", 9000, "connections held in P3")
	p3Peers := fs.String("p3-peers", "camgate,haproxy", "peers measured in P3 (the target is camgate's; haproxy is the reference)")
	fs.DurationVar(&o.p5Duration, "p5-duration", 60*time.Second, "how long the P5 streams run per peer")
	p5Peers := fs.String("p5-peers", "direct,camgate", "peers measured in P5 (direct shows what the machine itself loses)")
	fs.IntVar(&o.p5Streams, "p5-streams", 50, "RTP-like streams in P5")
	fs.IntVar(&o.rtspStreams, "rtsp-streams", 64, "cameras streaming over the RTSP relay's UDP in the rtsp measure (each at --p5-mbps for --p5-duration)")
	fs.Float64Var(&o.p5Mbps, "p5-mbps", 4, "bit rate of each P5 stream, Mb/s")
	fs.IntVar(&o.p6Trials, "p6-trials", 5, "reloads in P6 (each adds one rule)")
	fs.DurationVar(&o.waitQuiet, "wait-quiet", 0, "before starting, wait up to this long for the machine to be idle (other work makes figures noisy)")
	fs.IntVar(&o.repeat, "repeat", 1, "run tcp, conns, udp, rtsp and vpn this many rounds (peers interleaved) and report each figure's median")
	fs.DurationVar(&o.soak, "soak", 0, "soak mode: run mixed load through camgate this long, report goroutines, fds and RSS at start, peak and end")
	fs.StringVar(&o.camgate, "camgate", "", "camgate binary (default: build ./cmd/camgate into the run directory)")
	fs.StringVar(&o.jsonOut, "json", "", "write all results as JSON to this file")
	fs.BoolVar(&o.markdown, "markdown", false, "also print the tables as markdown, ready for docs/BENCHMARKS.md")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 2 s measures, 1,000 idle connections, 10 s P5 (P3 keeps its count)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run directory (generated configs and peer logs)")
	fs.BoolVar(&o.netns, "netns", false, "netns mode (root): wan, gw and lan namespaces over veth pairs; single-stream throughput and short conns/s for routed, camgate kernel and userspace, haproxy, nginx and rinetd")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["conns"] {
			o.conns = 1000
		}
		if !set["p5-duration"] {
			o.p5Duration = 10 * time.Second
		}
	}
	var err error
	if o.only, err = splitList(*only, measureNames(), "measure"); err != nil {
		return o, err
	}
	if o.peers, err = splitList(*peers, peerNames(), "peer"); err != nil {
		return o, err
	}
	if o.p3Peers, err = splitList(*p3Peers, peerNames(), "peer"); err != nil {
		return o, err
	}
	if o.p5Peers, err = splitList(*p5Peers, peerNames(), "peer"); err != nil {
		return o, err
	}
	if o.duration < time.Second {
		return o, errors.New("--duration must be at least 1s")
	}
	if o.conns < 1 || o.p3Conns < 1 || o.p5Streams < 1 || o.p6Trials < 1 || o.repeat < 1 {
		return o, errors.New("--conns, --p3-conns, --p5-streams, --p6-trials and --repeat must be positive")
	}
	return o, nil
}

func splitList(s string, valid []string, what string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(valid, f) {
			return nil, fmt.Errorf("unknown %s %q (want one of %s)", what, f, strings.Join(valid, ","))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// harness holds what every measure shares.
type harness struct {
	opts    options
	procs   *procs
	ports   *ports
	dir     string
	camgate string
	res     results
	log     io.Writer
	// rounds, while a repeated measure runs, collects its figures instead
	// of res; see measure.
	rounds *roundSink
	// noise tells how much CPU others took; mark is when the figure being
	// measured now began (the previous record, or the measure's start).
	noise *noiseSampler
	mark  time.Time
}

// Report is everything a run produced, as written by --json.
type Report struct {
	Machine Machine        `json:"machine"`
	Options map[string]any `json:"options"`
	Results []Result       `json:"results"`
	Targets []TargetResult `json:"targets,omitempty"`
	Soak    *SoakReport    `json:"soak,omitempty"`
	Started time.Time      `json:"started"`
	Took    string         `json:"took"`
}

func run(ctx context.Context, o options) (int, error) {
	started := time.Now()
	nofile, err := raiseNoFile()
	if err != nil {
		return 1, fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	dir, err := os.MkdirTemp("", "camgate-bench-")
	if err != nil {
		return 1, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return 1, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "run directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	h := &harness{opts: o, procs: &procs{dir: dir}, ports: &ports{}, dir: dir, log: os.Stderr, noise: &noiseSampler{}}
	defer h.procs.stopAll()
	nctx, stopNoise := context.WithCancel(ctx)
	defer stopNoise()
	go h.noise.run(nctx)

	h.camgate = o.camgate
	if h.camgate == "" {
		if h.camgate, err = buildCamgate(ctx, dir); err != nil {
			return 1, err
		}
	}
	for _, p := range o.peers {
		if bin := peerBinary(p); bin != "" {
			if _, err := exec.LookPath(bin); err != nil {
				fmt.Fprintf(h.log, "warning: %s not found (%v); its measures will show an error\n", bin, err)
			}
		}
	}
	m := describeMachine(h.camgate, nofile)
	if o.waitQuiet > 0 {
		m.BusyStart = waitQuiet(ctx, o.waitQuiet, h.logf)
	} else {
		m.BusyStart = cpuBusy(2 * time.Second)
	}
	m.LoadStart = loadAvg()
	if m.BusyStart >= quietThreshold {
		fmt.Fprintf(h.log, "warning: the machine is busy (%.0f%% CPU used by others, load average %s): they compete for the cores and make every figure noisy\n", 100*m.BusyStart, loadAvg())
	}
	rep := Report{Machine: m, Started: started, Options: map[string]any{
		"only": o.only, "peers": o.peers, "duration": o.duration.String(), "conns": o.conns,
		"p3_conns": o.p3Conns, "p3_peers": o.p3Peers, "p5_duration": o.p5Duration.String(), "p5_peers": o.p5Peers,
		"p5_streams": o.p5Streams, "p5_mbps": o.p5Mbps, "p6_trials": o.p6Trials, "soak": o.soak.String(), "quick": o.quick,
		"repeat": o.repeat,
	}}

	code := 0
	if o.netns {
		if err := h.runNetns(ctx); err != nil {
			return 1, err
		}
		return 0, nil
	}
	if o.soak > 0 {
		s, err := h.soak(ctx, o.soak)
		if err != nil {
			return 1, err
		}
		rep.Soak = s
		fmt.Println()
		m.write(os.Stdout, false)
		s.write(os.Stdout, o.markdown)
		if !s.Passed {
			code = 1
		}
	} else {
		for _, name := range measureNames() {
			if !slices.Contains(o.only, name) {
				continue
			}
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(h.log, "== %s\n", name)
			t0 := time.Now()
			h.mark = t0
			h.measure(ctx, name)
			fmt.Fprintf(h.log, "   (%s took %s)\n", name, time.Since(t0).Round(100*time.Millisecond))
		}
		rep.Results = h.res.list
		rep.Targets = h.res.evalTargets(o.p3Conns)
		h.print(os.Stdout, m, rep.Targets, false)
		if o.markdown {
			fmt.Println("\n----- markdown -----")
			h.print(os.Stdout, m, rep.Targets, true)
		}
	}
	rep.Took = time.Since(started).Round(time.Second).String()
	fmt.Fprintf(h.log, "total time %s\n", rep.Took)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return 1, err
		}
	}
	if ctx.Err() != nil {
		return 130, errors.New("interrupted")
	}
	return code, nil
}

// measure runs one measure. With --repeat N the rate measures (tcp,
// conns, udp, vpn) and rtsp (the relay against a plain UDP rule) run N
// rounds, each round over all peers in turn, so that a burst of outside
// load hits every peer alike; each figure is the median.
func (h *harness) measure(ctx context.Context, name string) {
	if h.opts.repeat > 1 && slices.Contains([]string{"tcp", "conns", "udp", "rtsp", "vpn"}, name) {
		h.rounds = &roundSink{byKey: map[string][]Result{}}
		for i := range h.opts.repeat {
			if ctx.Err() != nil {
				break
			}
			h.logf("round %d of %d", i+1, h.opts.repeat)
			h.measureOnce(ctx, name)
		}
		sink := h.rounds
		h.rounds = nil
		for _, k := range sink.order {
			h.res.add(median(sink.byKey[k]))
		}
		return
	}
	h.measureOnce(ctx, name)
}

func (h *harness) measureOnce(ctx context.Context, name string) {
	switch name {
	case "tcp":
		h.measureTCP(ctx)
	case "conns":
		h.measureConns(ctx)
	case "idle":
		h.measureIdle(ctx, h.opts.peers, h.opts.conns, "idle")
	case "udp":
		h.measureUDP(ctx)
	case "p3":
		h.measureIdle(ctx, h.opts.p3Peers, h.opts.p3Conns, "p3")
	case "p5":
		h.measureRTP(ctx)
	case "p6":
		h.measureReload(ctx)
	case "live":
		h.measureLive(ctx)
	case "rtsp":
		h.measureRTSP(ctx)
	case "vpn":
		h.measureVPN(ctx)
	}
}

func (h *harness) print(w io.Writer, m Machine, ts []TargetResult, markdown bool) {
	peers := h.opts.peers
	for _, extra := range [][]string{h.opts.p3Peers, h.opts.p5Peers} {
		for _, p := range extra {
			if !slices.Contains(peers, p) {
				peers = append(slices.Clone(peers), p)
			}
		}
	}
	if markdown {
		fmt.Fprintln(w, "### Machine")
		m.write(w, true)
		fmt.Fprintln(w, "\n### Results")
		h.res.table(peers).writeMarkdown(w)
		if n := noiseSummary(h.res.list); n != "" {
			fmt.Fprintln(w, "\n"+n+".")
		}
		fmt.Fprintln(w, "\n### Targets")
		writeTargets(w, ts, true)
	} else {
		fmt.Fprintln(w, "\nMachine")
		m.write(w, false)
		fmt.Fprintln(w, "\nResults (ratios: camgate's figure divided by the other's; for rows marked lower-is-better, below 1 is better)")
		h.res.table(peers).writeText(w)
		if n := noiseSummary(h.res.list); n != "" {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w, "\nTargets")
		writeTargets(w, ts, false)
	}
	var errs []string
	for _, r := range h.res.list {
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("%s/%s: %s", r.Metric, r.Peer, firstLine(r.Error)))
		}
	}
	if len(errs) > 0 {
		if markdown {
			fmt.Fprintln(w, "\n### Errors")
			for _, e := range errs {
				fmt.Fprintln(w, "- "+e)
			}
		} else {
			fmt.Fprintln(w, "\nErrors")
			for _, e := range errs {
				fmt.Fprintln(w, "  "+e)
			}
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func peerBinary(p string) string {
	switch p {
	case peerHAProxy, peerNginx, peerSocat, peerRinetd:
		return p
	}
	return ""
}

// buildCamgate builds ./cmd/camgate of the module the harness runs in.
func buildCamgate(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the harness inside the camgate module, or pass --camgate")
	}
	bin := filepath.Join(dir, "camgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/camgate")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build camgate: %w\n%s", err, b)
	}
	return bin, nil
}

// runTool runs a client program (iperf3, wrk) to completion, killing its
// process group if ctx ends.
func runTool(ctx context.Context, timeout time.Duration, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return []byte(out.String()), fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(errb.String()+" "+lastLines(out.String(), 3)))
	}
	return []byte(out.String()), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// logf prints progress to stderr.
func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "   "+format+"\n", args...)
}

// record adds a result and logs it, with the CPU share other work took
// since the previous figure.
func (h *harness) record(r Result) {
	others := -1.0
	if h.noise != nil {
		others = h.noise.since(h.mark)
		h.mark = time.Now()
	}
	if others >= 0 {
		r.Detail = maps.Clone(r.Detail)
		if r.Detail == nil {
			r.Detail = map[string]float64{}
		}
		r.Detail["others_cpu_pct"] = 100 * others
	}
	noisy := ""
	if others >= quietThreshold {
		noisy = fmt.Sprintf("   (other work took %.0f%% CPU meanwhile)", 100*others)
	}
	if h.rounds != nil {
		h.rounds.add(r)
	} else {
		h.res.add(r)
	}
	m, _ := metricByID(r.Metric)
	if r.Error != "" {
		h.logf("%-12s %-8s error: %s%s", r.Metric, r.Peer, firstLine(r.Error), noisy)
		return
	}
	h.logf("%-12s %-8s "+m.format+" %s%s", r.Metric, r.Peer, r.Value, m.unit, noisy)
}

func (h *harness) recordErr(metricID, peer string, err error) {
	h.record(Result{Metric: metricID, Peer: peer, Error: err.Error()})
}

// roundSink collects the rounds of a repeated measure.
type roundSink struct {
	order []string
	byKey map[string][]Result
}

func (s *roundSink) add(r Result) {
	k := r.Metric + "/" + r.Peer
	if _, ok := s.byKey[k]; !ok {
		s.order = append(s.order, k)
	}
	s.byKey[k] = append(s.byKey[k], r)
}

// median returns the round with the median value (the upper one of the
// middle two for an even count), with the spread in its Detail. Failed
// rounds are left out; if every round failed, the last error is returned.
func median(rs []Result) Result {
	var ok []Result
	for _, r := range rs {
		if r.Error == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rs[len(rs)-1]
	}
	slices.SortFunc(ok, func(a, b Result) int { return cmp.Compare(a.Value, b.Value) })
	m := ok[len(ok)/2]
	d := maps.Clone(m.Detail)
	if d == nil {
		d = map[string]float64{}
	}
	d["rounds"], d["rounds_failed"] = float64(len(ok)), float64(len(rs)-len(ok))
	d["min"], d["max"] = ok[0].Value, ok[len(ok)-1].Value
	m.Detail = d
	return m
}
