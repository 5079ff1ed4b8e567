package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// metric describes one row of the results table.
type metric struct {
	id    string
	title string
	unit  string
	// lower is true when smaller is better (costs, loss, latency).
	lower bool
	// ratios is false for counts where a ratio means nothing (loss, drops).
	ratios bool
	// format prints a value.
	format string
}

// metrics lists every row the harness can fill, in table order.
func metrics() []metric {
	return []metric{
		{id: "tcp1", title: "TCP throughput, 1 stream (iperf3)", unit: "Gbit/s", ratios: true, format: "%.2f"},
		{id: "tcp8", title: "TCP throughput, 8 streams (iperf3 -P 8)", unit: "Gbit/s", ratios: true, format: "%.2f"},
		{id: "conns", title: "Short connections (wrk, Connection: close)", unit: "req/s", ratios: true, format: "%.0f"},
		{id: "conns_cpu", title: "Short connections: proxy CPU per connection", unit: "µs/conn", lower: true, ratios: true, format: "%.1f"},
		{id: "idle_fds", title: "Idle connections: fds per connection", unit: "fds/conn", lower: true, ratios: true, format: "%.2f"},
		{id: "idle_kb", title: "Idle connections: RSS per connection", unit: "KB/conn", lower: true, ratios: true, format: "%.2f"},
		{id: "idle_pss", title: "Idle connections: PSS per connection", unit: "KB/conn", lower: true, ratios: true, format: "%.2f"},
		{id: "idle_fwd", title: "Idle connections forwarded end to end", unit: "conns", format: "%.0f"},
		{id: "udp64", title: "UDP echo, 64-byte datagrams", unit: "kpps", ratios: true, format: "%.1f"},
		{id: "udp64_loss", title: "UDP echo, 64-byte: loss", unit: "%", lower: true, format: "%.2f"},
		{id: "udp64_cpu", title: "UDP echo, 64-byte: proxy CPU per echoed datagram", unit: "µs/pkt", lower: true, ratios: true, format: "%.2f"},
		{id: "udp1400", title: "UDP echo, 1400-byte datagrams", unit: "kpps", ratios: true, format: "%.1f"},
		{id: "udp1400_loss", title: "UDP echo, 1400-byte: loss", unit: "%", lower: true, format: "%.2f"},
		{id: "udp1400_cpu", title: "UDP echo, 1400-byte: proxy CPU per echoed datagram", unit: "µs/pkt", lower: true, ratios: true, format: "%.2f"},
		{id: "p3_fwd", title: "P3 held connections forwarded end to end", unit: "conns", format: "%.0f"},
		{id: "p3_fds", title: "P3 fds per held connection", unit: "fds/conn", lower: true, ratios: true, format: "%.2f"},
		{id: "p3_kb", title: "P3 RSS per held connection", unit: "KB/conn", lower: true, ratios: true, format: "%.2f"},
		{id: "p3_gor", title: "P3 goroutines per held connection", unit: "gor/conn", lower: true, format: "%.2f"},
		{id: "p5_loss", title: "P5 RTP-like streams: datagrams lost", unit: "pkts", lower: true, format: "%.0f"},
		{id: "p5_reorder", title: "P5 RTP-like streams: datagrams reordered", unit: "pkts", lower: true, format: "%.0f"},
		{id: "rtsp_loss", title: "RTSP relay: RTP datagrams lost (--rtsp-streams × --p5-mbps)", unit: "pkts", lower: true, format: "%.0f"},
		{id: "rtsp_reorder", title: "RTSP relay: RTP datagrams reordered", unit: "pkts", lower: true, format: "%.0f"},
		{id: "rtsp_relay_cpu", title: "RTSP relay: camgate CPU per relayed RTP datagram", unit: "µs/pkt", lower: true, format: "%.2f"},
		{id: "rtsp_udp_rule_cpu", title: "Same load through a plain UDP rule: CPU per datagram", unit: "µs/pkt", lower: true, format: "%.2f"},
		{id: "rtsp_first_frame_udp", title: "RTSP first frame over UDP: camgate minus direct", unit: "ms", lower: true, format: "%.0f"},
		{id: "rtsp_first_frame_tcp", title: "RTSP first frame over TCP: camgate minus direct", unit: "ms", lower: true, format: "%.0f"},
		{id: "p6_ms", title: "P6 SIGHUP to new rule forwarding (worst)", unit: "ms", lower: true, format: "%.1f"},
		{id: "p6_drops", title: "P6 connections dropped on the untouched rule", unit: "conns", lower: true, format: "%.0f"},
		{id: "live_ttfb_cold", title: "Live view: first byte of a channel's first viewer", unit: "ms", lower: true, format: "%.0f"},
		{id: "live_ttfb_warm", title: "Live view: first byte of a running channel's next viewer", unit: "ms", lower: true, format: "%.1f"},
		{id: "live_cpu_4", title: "Live view: camgate CPU, 4 channels x 1 viewer", unit: "% core", lower: true, format: "%.1f"},
		{id: "live_cpu_16", title: "Live view: camgate CPU, 4 channels x 4 viewers", unit: "% core", lower: true, format: "%.1f"},
		{id: "live_cpu_viewer", title: "Live view: CPU per extra viewer", unit: "% core", lower: true, format: "%.2f"},
		{id: "live_kb_viewer", title: "Live view: RSS per extra viewer", unit: "KB", lower: true, format: "%.0f"},
		{id: "vpn_up", title: "VPN iperf3 phone → device (direct: a wireguard-go pair)", unit: "Gbit/s", ratios: true, format: "%.2f"},
		{id: "vpn_down", title: "VPN iperf3 device → phone (direct: a wireguard-go pair)", unit: "Gbit/s", ratios: true, format: "%.2f"},
		{id: "vpn_up_cpu", title: "VPN phone → device: camgate CPU per Gbit/s", unit: "CPU-s/Gbit", lower: true, format: "%.2f"},
		{id: "vpn_down_cpu", title: "VPN device → phone: camgate CPU per Gbit/s", unit: "CPU-s/Gbit", lower: true, format: "%.2f"},
		{id: "vpn_handshake", title: "VPN handshake (first connection of a fresh session minus the next)", unit: "ms", lower: true, ratios: true, format: "%.2f"},
	}
}

func metricByID(id string) (metric, bool) {
	for _, m := range metrics() {
		if m.id == id {
			return m, true
		}
	}
	return metric{}, false
}

// Result is one figure for one peer.
type Result struct {
	Metric string  `json:"metric"`
	Peer   string  `json:"peer"`
	Value  float64 `json:"value"`
	// Error says why there is no value (Value is then meaningless).
	Error string `json:"error,omitempty"`
	// Detail holds the raw figures behind Value.
	Detail map[string]float64 `json:"detail,omitempty"`
}

// results collects Results in the order they were measured.
type results struct {
	list []Result
}

func (rs *results) add(r Result) { rs.list = append(rs.list, r) }

// get returns the value of metricID for peer, if it was measured.
func (rs *results) get(metricID, peer string) (float64, bool) {
	for i := len(rs.list) - 1; i >= 0; i-- {
		r := rs.list[i]
		if r.Metric == metricID && r.Peer == peer {
			return r.Value, r.Error == ""
		}
	}
	return 0, false
}

func (rs *results) find(metricID, peer string) (Result, bool) {
	for i := len(rs.list) - 1; i >= 0; i-- {
		if r := rs.list[i]; r.Metric == metricID && r.Peer == peer {
			return r, true
		}
	}
	return Result{}, false
}

// ratio is a/b, NaN when either is missing or b is zero.
func ratio(a, b float64, okA, okB bool) float64 {
	if !okA || !okB || b == 0 {
		return math.NaN()
	}
	return a / b
}

// bestPeer returns the best measured value of m among the competing peers
// (everyone but camgate and direct), and which peer it was.
func (rs *results) bestPeer(m metric, peers []string) (string, float64, bool) {
	best, bestV, found := "", 0.0, false
	for _, p := range peers {
		if p == peerCamgate || p == peerDirect {
			continue
		}
		v, ok := rs.get(m.id, p)
		if !ok {
			continue
		}
		if !found || (m.lower && v < bestV) || (!m.lower && v > bestV) {
			best, bestV, found = p, v, true
		}
	}
	return best, bestV, found
}

// maxOf returns the highest measured value of metricID among peers.
func (rs *results) maxOf(metricID string, peers ...string) (string, float64, bool) {
	best, bestV, found := "", 0.0, false
	for _, p := range peers {
		if v, ok := rs.get(metricID, p); ok && (!found || v > bestV) {
			best, bestV, found = p, v, true
		}
	}
	return best, bestV, found
}

// Target statuses.
const (
	statusMet         = "MET"
	statusMissed      = "MISSED"
	statusNotMeasured = "NOT MEASURED"
)

// TargetResult is the verdict on one of issue 4's targets.
type TargetResult struct {
	ID     string `json:"id"`
	Goal   string `json:"goal"`
	Got    string `json:"got"`
	Status string `json:"status"`
}

// evalTargets judges P1–P6, R1–R2 and V1 from the results. A target is NOT MEASURED when
// a figure it needs is missing.
func (rs *results) evalTargets(p3Conns int) []TargetResult {
	var out []TargetResult
	verdict := func(ok bool) string {
		if ok {
			return statusMet
		}
		return statusMissed
	}
	missing := func(what ...string) string { return "missing: " + strings.Join(what, ", ") }

	// P1
	{
		t := TargetResult{ID: "P1", Goal: "single-stream TCP ≥ 0.85× direct and ≥ 1.6× haproxy"}
		cg, okC := rs.get("tcp1", peerCamgate)
		d, okD := rs.get("tcp1", peerDirect)
		hp, okH := rs.get("tcp1", peerHAProxy)
		if okC && okD && okH {
			rd, rh := ratio(cg, d, true, true), ratio(cg, hp, true, true)
			t.Got = fmt.Sprintf("%.2f× direct, %.2f× haproxy", rd, rh)
			t.Status = verdict(rd >= 0.85 && rh >= 1.6)
		} else {
			t.Got, t.Status = missing(missingNames(map[string]bool{"camgate": okC, "direct": okD, "haproxy": okH})...), statusNotMeasured
		}
		out = append(out, t)
	}
	// P2
	{
		t := TargetResult{ID: "P2", Goal: "short connections/s ≥ 1.3× the best of haproxy, nginx, rinetd"}
		cg, okC := rs.get("conns", peerCamgate)
		bp, bv, okB := rs.maxOf("conns", peerHAProxy, peerNginx, peerRinetd)
		if okC && okB && bv > 0 {
			r := cg / bv
			t.Got = fmt.Sprintf("%.2f× %s", r, bp) + rs.cpuNote("conns_cpu", "µs per connection", peerCamgate, bp)
			t.Status = verdict(r >= 1.3)
		} else {
			t.Got, t.Status = missing(missingNames(map[string]bool{"camgate": okC, "a peer": okB})...), statusNotMeasured
		}
		out = append(out, t)
	}
	// P3
	{
		t := TargetResult{ID: "P3", Goal: fmt.Sprintf("%d held connections all forwarded; ≤ 2.2 fds and ≤ 4 KB RSS each", p3Conns)}
		fwd, ok1 := rs.get("p3_fwd", peerCamgate)
		fds, ok2 := rs.get("p3_fds", peerCamgate)
		kb, ok3 := rs.get("p3_kb", peerCamgate)
		if ok1 && ok2 && ok3 {
			t.Got = fmt.Sprintf("%.0f/%d forwarded, %.2f fds, %.2f KB", fwd, p3Conns, fds, kb)
			t.Status = verdict(int(fwd) == p3Conns && fds <= 2.2 && kb <= 4)
		} else {
			t.Got, t.Status = rs.unmeasured("p3_fwd", "camgate p3", statusMissed)
		}
		out = append(out, t)
	}
	// P4
	{
		t := TargetResult{ID: "P4", Goal: "UDP pps, 64 B and 1400 B, ≥ 1.5× socat and ≥ 1.5× nginx"}
		var got []string
		met, measured := true, true
		for _, m := range []string{"udp64", "udp1400"} {
			cg, okC := rs.get(m, peerCamgate)
			for _, p := range []string{peerSocat, peerNginx} {
				v, ok := rs.get(m, p)
				if !okC || !ok || v == 0 {
					measured = false
					got = append(got, fmt.Sprintf("%s vs %s: missing", m, p))
					continue
				}
				r := cg / v
				got = append(got, fmt.Sprintf("%s %.2f× %s", strings.TrimPrefix(m, "udp")+"B", r, p))
				if r < 1.5 {
					met = false
				}
			}
		}
		t.Got = strings.Join(got, ", ") + rs.cpuNote("udp64_cpu", "µs per 64 B echo", peerCamgate, peerNginx, peerSocat)
		switch {
		case !measured:
			t.Status = statusNotMeasured
		default:
			t.Status = verdict(met)
		}
		out = append(out, t)
	}
	// P5
	{
		t := TargetResult{ID: "P5", Goal: "50 RTP-like UDP streams at 4 Mb/s: zero loss, zero reordering"}
		loss, ok1 := rs.get("p5_loss", peerCamgate)
		re, ok2 := rs.get("p5_reorder", peerCamgate)
		if ok1 && ok2 {
			t.Got = fmt.Sprintf("%.0f lost, %.0f reordered", loss, re)
			t.Status = verdict(loss == 0 && re == 0)
		} else {
			t.Got, t.Status = missing("camgate p5"), statusNotMeasured
		}
		out = append(out, t)
	}
	// P6
	{
		t := TargetResult{ID: "P6", Goal: "rule change under load (SIGHUP) < 100 ms; zero drops on the untouched rule"}
		ms, ok1 := rs.get("p6_ms", peerCamgate)
		drops, ok2 := rs.get("p6_drops", peerCamgate)
		if ok1 && ok2 {
			t.Got = fmt.Sprintf("%.1f ms worst, %.0f dropped", ms, drops)
			t.Status = verdict(ms < 100 && drops == 0)
		} else {
			t.Got, t.Status = rs.unmeasured("p6_ms", "camgate p6", statusMissed)
		}
		out = append(out, t)
	}
	// R1
	{
		t := TargetResult{ID: "R1", Goal: "RTSP relay: RTP over UDP, 0 lost and 0 reordered; CPU per datagram ≤ 1.2× a plain UDP rule's"}
		loss, ok1 := rs.get("rtsp_loss", peerCamgate)
		re, ok2 := rs.get("rtsp_reorder", peerCamgate)
		relay, ok3 := rs.get("rtsp_relay_cpu", peerCamgate)
		plain, ok4 := rs.get("rtsp_udp_rule_cpu", peerCamgate)
		if ok1 && ok2 && ok3 && ok4 && plain > 0 {
			t.Got = fmt.Sprintf("%.0f lost, %.0f reordered; %.2f× the plain rule (%.2f vs %.2f µs)", loss, re, relay/plain, relay, plain)
			t.Status = verdict(loss == 0 && re == 0 && relay/plain <= 1.2)
		} else {
			t.Got, t.Status = rs.unmeasured("rtsp_relay_cpu", "rtsp", statusMissed)
		}
		out = append(out, t)
	}
	// R2
	{
		t := TargetResult{ID: "R2", Goal: "RTSP first frame through camgate within 50 ms of direct, over UDP and over TCP"}
		udp, ok1 := rs.get("rtsp_first_frame_udp", peerCamgate)
		tcp, ok2 := rs.get("rtsp_first_frame_tcp", peerCamgate)
		if ok1 && ok2 {
			t.Got = fmt.Sprintf("UDP %+.0f ms, TCP %+.0f ms", udp, tcp)
			t.Status = verdict(udp <= 50 && tcp <= 50)
		} else {
			t.Got, t.Status = rs.unmeasured("rtsp_first_frame_udp", "rtsp first frame", statusMissed)
		}
		out = append(out, t)
	}
	// V1
	{
		t := TargetResult{ID: "V1", Goal: "VPN throughput through camgate ≥ 0.8× a direct wireguard-go pair, both ways"}
		up, ok1 := rs.get("vpn_up", peerCamgate)
		upD, ok2 := rs.get("vpn_up", peerDirect)
		down, ok3 := rs.get("vpn_down", peerCamgate)
		downD, ok4 := rs.get("vpn_down", peerDirect)
		if ok1 && ok2 && ok3 && ok4 && upD > 0 && downD > 0 {
			t.Got = fmt.Sprintf("phone → device %.2f×, device → phone %.2f×", up/upD, down/downD)
			t.Status = verdict(up/upD >= 0.8 && down/downD >= 0.8)
		} else {
			t.Got, t.Status = rs.unmeasured("vpn_up", "vpn", statusNotMeasured)
		}
		out = append(out, t)
	}
	return out
}

// unmeasured is a target's verdict when a figure it needs is missing:
// camgate's error on metric, with errStatus, if that measure failed;
// else NOT MEASURED, naming what is missing.
func (rs *results) unmeasured(metric, what, errStatus string) (got, status string) {
	if r, ok := rs.find(metric, peerCamgate); ok && r.Error != "" {
		return firstLine(r.Error), errStatus
	}
	return "missing: " + what, statusNotMeasured
}

// cpuNote lists the proxies' CPU cost per operation behind a rate, for a
// target's "measured" column: "; CPU µs per connection: camgate 80,
// haproxy 62". It is empty when no peer's cost was measured.
func (rs *results) cpuNote(metricID, what string, peers ...string) string {
	var parts []string
	for _, p := range peers {
		if v, ok := rs.get(metricID, p); ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", p, v))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; CPU " + what + ": " + strings.Join(parts, ", ")
}

func missingNames(have map[string]bool) []string {
	var out []string
	for k, ok := range have {
		if !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// table is the results laid out for printing: one row per metric that has
// any figure, one column per peer, then the two ratios.
type table struct {
	header []string
	rows   [][]string
}

func (rs *results) table(all []string) table {
	var peers []string
	for _, p := range all {
		if slices.ContainsFunc(rs.list, func(r Result) bool { return r.Peer == p }) {
			peers = append(peers, p)
		}
	}
	t := table{header: append(append([]string{"measure", "unit"}, peers...), "camgate/direct", "camgate/best peer")}
	for _, m := range metrics() {
		any := false
		row := []string{m.title, m.unit}
		for _, p := range peers {
			r, ok := rs.find(m.id, p)
			switch {
			case !ok:
				row = append(row, "–")
			case r.Error != "":
				row = append(row, "error")
				any = true
			default:
				row = append(row, fmt.Sprintf(m.format, r.Value))
				any = true
			}
		}
		if !any {
			continue
		}
		cg, okC := rs.get(m.id, peerCamgate)
		d, okD := rs.get(m.id, peerDirect)
		if m.ratios {
			row = append(row, fmtRatio(ratio(cg, d, okC, okD)))
			bp, bv, okB := rs.bestPeer(m, peers)
			if r := ratio(cg, bv, okC, okB); !math.IsNaN(r) {
				row = append(row, fmt.Sprintf("%s (%s)", fmtRatio(r), bp))
			} else {
				row = append(row, "–")
			}
		} else {
			row = append(row, "", "")
		}
		t.rows = append(t.rows, row)
	}
	return t
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", r)
}

// writeText prints the table with aligned columns.
func (t table) writeText(w io.Writer) {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = runeLen(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], runeLen(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			pad := width[i] - runeLen(c)
			if i < 2 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(strings.Repeat(" ", pad) + c)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
}

// writeMarkdown prints the table as GitHub markdown.
func (t table) writeMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| "+strings.Join(t.header, " | ")+" |")
	seps := make([]string, len(t.header))
	for i := range seps {
		seps[i] = "---:"
		if i < 2 {
			seps[i] = "---"
		}
	}
	fmt.Fprintln(w, "|"+strings.Join(seps, "|")+"|")
	for _, r := range t.rows {
		fmt.Fprintln(w, "| "+strings.Join(r, " | ")+" |")
	}
}

func runeLen(s string) int { return len([]rune(s)) }

// writeTargets prints one line per target.
func writeTargets(w io.Writer, ts []TargetResult, markdown bool) {
	if markdown {
		fmt.Fprintln(w, "| target | goal | measured | status |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, t := range ts {
			fmt.Fprintf(w, "| %s | %s | %s | **%s** |\n", t.ID, t.Goal, t.Got, t.Status)
		}
		return
	}
	for _, t := range ts {
		fmt.Fprintf(w, "%-3s %-12s %s\n    goal: %s\n", t.ID, t.Status, t.Got, t.Goal)
	}
}
