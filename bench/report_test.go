package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func resultsOf(vals map[string]map[string]float64) *results {
	rs := &results{}
	for m, byPeer := range vals {
		for p, v := range byPeer {
			rs.add(Result{Metric: m, Peer: p, Value: v})
		}
	}
	return rs
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a, b     float64
		okA, okB bool
		want     float64
	}{
		{"plain", 17, 20, true, true, 0.85},
		{"zero denominator", 1, 0, true, true, math.NaN()},
		{"missing numerator", 1, 2, false, true, math.NaN()},
		{"missing denominator", 1, 2, true, false, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ratio(tc.a, tc.b, tc.okA, tc.okB)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-9) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBestPeer(t *testing.T) {
	rs := resultsOf(map[string]map[string]float64{
		"tcp1":     {"direct": 40, "camgate": 30, "haproxy": 18, "nginx": 16, "socat": 12},
		"idle_fds": {"camgate": 2.1, "haproxy": 2, "nginx": 2.5, "socat": 9},
	})
	rs.add(Result{Metric: "tcp1", Peer: "rinetd", Value: 99, Error: "crashed"}) // an error never wins
	peers := peerNames()
	for _, tc := range []struct {
		metric   string
		wantPeer string
		wantV    float64
	}{
		{"tcp1", "haproxy", 18},    // higher is better; camgate and direct are not peers
		{"idle_fds", "haproxy", 2}, // lower is better
	} {
		m, _ := metricByID(tc.metric)
		p, v, ok := rs.bestPeer(m, peers)
		if !ok || p != tc.wantPeer || v != tc.wantV {
			t.Errorf("%s: got %s %v %v, want %s %v", tc.metric, p, v, ok, tc.wantPeer, tc.wantV)
		}
	}
}

func statusOf(ts []TargetResult, id string) string {
	for _, t := range ts {
		if t.ID == id {
			return t.Status
		}
	}
	return ""
}

func TestEvalTargets(t *testing.T) {
	full := func() map[string]map[string]float64 {
		return map[string]map[string]float64{
			"tcp1":                 {"direct": 40, "camgate": 34, "haproxy": 20},
			"conns":                {"camgate": 13000, "haproxy": 9000, "nginx": 10000, "rinetd": 8000},
			"p3_fwd":               {"camgate": 9000},
			"p3_fds":               {"camgate": 2.0},
			"p3_kb":                {"camgate": 3.5},
			"udp64":                {"camgate": 150, "socat": 100, "nginx": 90},
			"udp1400":              {"camgate": 150, "socat": 100, "nginx": 100},
			"p5_loss":              {"camgate": 0},
			"p5_reorder":           {"camgate": 0},
			"p6_ms":                {"camgate": 12},
			"p6_drops":             {"camgate": 0},
			"vpn_up":               {"direct": 1.0, "camgate": 0.8},
			"rtsp_loss":            {"camgate": 0},
			"rtsp_reorder":         {"camgate": 0},
			"rtsp_relay_cpu":       {"camgate": 12},
			"rtsp_udp_rule_cpu":    {"camgate": 10},
			"rtsp_first_frame_udp": {"camgate": -20},
			"rtsp_first_frame_tcp": {"camgate": 50},
			"vpn_down":             {"direct": 1.0, "camgate": 1.2},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(v map[string]map[string]float64)
		id     string
		want   string
	}{
		{"P1 met at exactly 0.85x direct", nil, "P1", statusMet},
		{"P1 missed against haproxy", func(v map[string]map[string]float64) { v["tcp1"]["haproxy"] = 25 }, "P1", statusMissed},
		{"P1 without direct", func(v map[string]map[string]float64) { delete(v["tcp1"], "direct") }, "P1", statusNotMeasured},
		{"P2 met against the best of three", nil, "P2", statusMet},
		{"P2 missed when nginx is fast", func(v map[string]map[string]float64) { v["conns"]["nginx"] = 11000 }, "P2", statusMissed},
		{"P2 ignores socat", func(v map[string]map[string]float64) { v["conns"]["socat"] = 1e6 }, "P2", statusMet},
		{"P3 met", nil, "P3", statusMet},
		{"P3 missed when one connection failed", func(v map[string]map[string]float64) { v["p3_fwd"]["camgate"] = 8999 }, "P3", statusMissed},
		{"P3 missed on RSS", func(v map[string]map[string]float64) { v["p3_kb"]["camgate"] = 4.01 }, "P3", statusMissed},
		{"P4 met", nil, "P4", statusMet},
		{"P4 missed on one size and peer", func(v map[string]map[string]float64) { v["udp1400"]["nginx"] = 101 }, "P4", statusMissed},
		{"P4 without nginx", func(v map[string]map[string]float64) { delete(v["udp64"], "nginx") }, "P4", statusNotMeasured},
		{"P5 met", nil, "P5", statusMet},
		{"P5 missed on one reordered datagram", func(v map[string]map[string]float64) { v["p5_reorder"]["camgate"] = 1 }, "P5", statusMissed},
		{"P6 met", nil, "P6", statusMet},
		{"P6 missed at 100 ms", func(v map[string]map[string]float64) { v["p6_ms"]["camgate"] = 100 }, "P6", statusMissed},
		{"P6 missed on a drop", func(v map[string]map[string]float64) { v["p6_drops"]["camgate"] = 1 }, "P6", statusMissed},
		{"R1 met at exactly 1.2x the plain rule", nil, "R1", statusMet},
		{"R1 missed above 1.2x", func(v map[string]map[string]float64) { v["rtsp_relay_cpu"]["camgate"] = 12.1 }, "R1", statusMissed},
		{"R1 missed on a lost datagram", func(v map[string]map[string]float64) { v["rtsp_loss"]["camgate"] = 1 }, "R1", statusMissed},
		{"R1 without the plain rule", func(v map[string]map[string]float64) { delete(v, "rtsp_udp_rule_cpu") }, "R1", statusNotMeasured},
		{"R2 met at exactly 50 ms", nil, "R2", statusMet},
		{"R2 missed over TCP", func(v map[string]map[string]float64) { v["rtsp_first_frame_tcp"]["camgate"] = 51 }, "R2", statusMissed},
		{"V1 met at exactly 0.8x the direct pair", nil, "V1", statusMet},
		{"V1 missed one way", func(v map[string]map[string]float64) { v["vpn_down"]["camgate"] = 0.79 }, "V1", statusMissed},
		{"V1 without the direct pair", func(v map[string]map[string]float64) { delete(v["vpn_up"], "direct") }, "V1", statusNotMeasured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := full()
			if tc.change != nil {
				tc.change(v)
			}
			got := statusOf(resultsOf(v).evalTargets(9000), tc.id)
			if got != tc.want {
				t.Errorf("%s: got %s, want %s", tc.id, got, tc.want)
			}
		})
	}
}

func TestTableRatios(t *testing.T) {
	rs := resultsOf(map[string]map[string]float64{
		"tcp1": {"direct": 40, "camgate": 30, "haproxy": 20, "nginx": 15},
	})
	tb := rs.table(peerNames())
	if len(tb.rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(tb.rows))
	}
	row := strings.Join(tb.rows[0], "|")
	for _, want := range []string{"0.75×", "1.50× (haproxy)", "30.00"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q: want %q in it", row, want)
		}
	}
	if strings.Contains(strings.Join(tb.header, "|"), "socat") {
		t.Errorf("header %v: a peer with no figures should have no column", tb.header)
	}
	var md bytes.Buffer
	tb.writeMarkdown(&md)
	if lines := strings.Count(md.String(), "\n"); lines != 3 {
		t.Errorf("markdown has %d lines, want 3:\n%s", lines, md.String())
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 5s test @ http://127.0.0.1:20001/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    0.50ms   9.00ms   80.00%
    Req/Sec     6.50k     0.40k    7.10k    70.00%
  64703 requests in 5.00s, 60.10MB read
  Socket errors: connect 0, read 12, write 0, timeout 0
Requests/sec:  12940.41
Transfer/sec:     12.02MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Value != 12940.41 || r.Detail["requests"] != 64703 || r.Detail["err_read"] != 12 {
		t.Errorf("got %v %v, want 12940.41 with 64703 requests and 12 read errors", r.Value, r.Detail)
	}
	bad := strings.Replace(out, "Socket errors", "Non-2xx or 3xx responses: 5000\n  Socket errors", 1)
	if _, err := parseWrk(bad); err == nil {
		t.Error("5000 non-2xx of 64703: got no error, want one")
	}
}

func TestParseIperf(t *testing.T) {
	r, err := parseIperf([]byte(`{"end":{"sum_sent":{"bits_per_second":2.1e10,"retransmits":3},"sum_received":{"bits_per_second":2e10}}}`))
	if err != nil || r.Value != 20 {
		t.Errorf("got %v, %v; want 20 Gbit/s", r.Value, err)
	}
	if _, err := parseIperf([]byte(`{"error":"unable to connect to server"}`)); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("got %v, want the iperf3 error", err)
	}
}

func TestGoroutineCounter(t *testing.T) {
	var log bytes.Buffer
	g := &goroutineCounter{next: &log}
	trace := "SCHED 0ms: gomaxprocs=2 idleprocs=0\n" +
		"  P0: status=1 schedtick=1\n  M0: p=0 curg=1\n" +
		"  G1: status=4(chan receive) m=nil lockedm=nil\n" +
		"  G2: status=6() m=nil lockedm=nil\n" + // dead: not counted
		"  G3: status=1() m=nil lockedm=nil\n" +
		"time=x level=WARN msg=\"a log line\"\n" +
		"SCHED 1000ms: gomaxprocs=2\n  G1: status=4(chan receive) m=nil lockedm=nil\n"
	// Write in odd pieces: the runtime's writes do not end on line breaks.
	for i := 0; i < len(trace); i += 7 {
		g.Write([]byte(trace[i:min(i+7, len(trace))]))
	}
	if got := g.latest(); got != 2 {
		t.Errorf("got %d goroutines, want 2", got)
	}
	if got := log.String(); got != "time=x level=WARN msg=\"a log line\"\n" {
		t.Errorf("log got %q, want only the log line", got)
	}
}

func TestMedian(t *testing.T) {
	rs := []Result{
		{Metric: "tcp1", Peer: "camgate", Value: 30},
		{Metric: "tcp1", Peer: "camgate", Error: "iperf3 crashed"},
		{Metric: "tcp1", Peer: "camgate", Value: 10},
		{Metric: "tcp1", Peer: "camgate", Value: 20},
	}
	m := median(rs)
	if m.Value != 20 || m.Detail["rounds"] != 3 || m.Detail["rounds_failed"] != 1 || m.Detail["min"] != 10 || m.Detail["max"] != 30 {
		t.Errorf("got %v %v, want 20 from 3 good rounds, 1 failed, spread 10-30", m.Value, m.Detail)
	}
	if m := median(rs[1:2]); m.Error == "" {
		t.Error("all rounds failed: got no error, want the last one")
	}
}

func TestCPUPerOpAndNote(t *testing.T) {
	r, ok := cpuPerOp("conns_cpu", "camgate", 0.83, 10000)
	if !ok || math.Abs(r.Value-83) > 1e-9 || r.Detail["ops"] != 10000 {
		t.Fatalf("cpuPerOp = %+v, %v; want 83 µs per connection", r, ok)
	}
	if _, ok := cpuPerOp("conns_cpu", "camgate", 1, 0); ok {
		t.Error("cpuPerOp reported a cost for zero operations")
	}
	rs := resultsOf(map[string]map[string]float64{
		"conns":     {"camgate": 13000, "haproxy": 9000},
		"conns_cpu": {"camgate": 80, "haproxy": 62.04},
	})
	if got, want := rs.cpuNote("conns_cpu", "µs per connection", "camgate", "haproxy", "nginx"), "; CPU µs per connection: camgate 80.0, haproxy 62.0"; got != want {
		t.Errorf("cpuNote = %q, want %q", got, want)
	}
	if got := rs.cpuNote("udp64_cpu", "µs per 64 B echo", "camgate"); got != "" {
		t.Errorf("cpuNote without figures = %q, want empty", got)
	}
	ts := rs.evalTargets(9000)
	for _, tr := range ts {
		if tr.ID == "P2" && !strings.Contains(tr.Got, "camgate 80.0, haproxy 62.0") {
			t.Errorf("P2 measured = %q, want the CPU note", tr.Got)
		}
	}
}
