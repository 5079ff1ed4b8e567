package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The netns mode (--netns) measures forwarding between namespaces, the
// shape of a real gateway: clients in wan, the forwarder in gw, the
// servers in lan, joined by veth pairs, with the addresses of the test
// topology (internal/netlab). "routed" is gw forwarding with no NAT and no
// proxy (clients address the servers directly): the physical limit of the
// machine. camgate runs twice: its kernel path (nftables DNAT) and its
// userspace path.
const (
	nsWAN   = "198.18.0.10"
	nsGWWAN = "198.18.0.1"
	nsGWLAN = "198.19.0.1"
	nsLAN   = "198.19.0.64"
	// Ports: iperf3 and the HTTP backend in lan, and what the forwarders
	// listen on in gw.
	nsIperf, nsHTTP       = 5201, 8080
	nsIperfFwd, nsHTTPFwd = 15201, 18080
	peerRouted            = "routed"
	peerCamgateKernel     = "camgate-kernel"
	peerCamgateUserspace  = "camgate-userspace"
)

// netnsPeers lists the netns mode's peers in table order.
func netnsPeers() []string {
	return []string{peerRouted, peerCamgateKernel, peerCamgateUserspace, peerHAProxy, peerNginx, peerRinetd}
}

// topology is the three namespaces; close removes them.
type topology struct{ wan, gw, lan string }

func newTopology() (*topology, error) {
	var b [3]byte
	rand.Read(b[:])
	sfx := hex.EncodeToString(b[:])
	t := &topology{wan: "cgbw-" + sfx, gw: "cgbg-" + sfx, lan: "cgbl-" + sfx}
	steps := [][]string{
		{"netns", "add", t.wan}, {"netns", "add", t.gw}, {"netns", "add", t.lan},
		{"link", "add", "eth0", "netns", t.wan, "type", "veth", "peer", "name", "wan0", "netns", t.gw},
		{"link", "add", "eth0", "netns", t.lan, "type", "veth", "peer", "name", "lan0", "netns", t.gw},
		{"-n", t.wan, "addr", "add", nsWAN + "/24", "dev", "eth0"},
		{"-n", t.gw, "addr", "add", nsGWWAN + "/24", "dev", "wan0"},
		{"-n", t.gw, "addr", "add", nsGWLAN + "/24", "dev", "lan0"},
		{"-n", t.lan, "addr", "add", nsLAN + "/24", "dev", "eth0"},
	}
	for _, ns := range []string{t.wan, t.lan} {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"}, []string{"-n", ns, "link", "set", "eth0", "up"})
	}
	steps = append(steps, []string{"-n", t.gw, "link", "set", "lo", "up"}, []string{"-n", t.gw, "link", "set", "wan0", "up"},
		[]string{"-n", t.gw, "link", "set", "lan0", "up"},
		[]string{"-n", t.wan, "route", "add", "default", "via", nsGWWAN},
		[]string{"-n", t.lan, "route", "add", "default", "via", nsGWLAN},
		[]string{"netns", "exec", t.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"})
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.close()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return t, nil
}

func (t *topology) close() {
	for _, ns := range []string{t.wan, t.gw, t.lan} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// nsCmd runs bin inside namespace ns (ip netns exec replaces itself with
// bin, so the child's pid is bin's).
func nsCmd(ns, bin string, args ...string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns, bin}, args...)
}

// runNetns is the --netns run: single-stream throughput and short
// connections per second for every peer, and the CPU camgate spends per
// connection on each of its paths.
func (h *harness) runNetns(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root (network namespaces, nftables)")
	}
	t, err := newTopology()
	if err != nil {
		return err
	}
	defer t.close()
	var backends []*child
	defer func() {
		for _, c := range backends {
			h.procs.stopChild(c)
		}
	}()
	bin, args := nsCmd(t.lan, "iperf3", "-s", "-B", nsLAN, "-p", strconv.Itoa(nsIperf))
	c, err := h.procs.start("iperf3-server", nil, nil, bin, args...)
	if err != nil {
		return err
	}
	backends = append(backends, c)
	web, err := h.netnsWeb(t)
	if err != nil {
		return err
	}
	backends = append(backends, web)
	time.Sleep(500 * time.Millisecond)

	var rows []netnsRow
	for _, peer := range netnsPeers() {
		if ctx.Err() != nil {
			break
		}
		h.logf("%s", peer)
		rows = append(rows, h.netnsPeer(ctx, t, peer))
	}
	writeNetns(os.Stdout, rows, h.opts.duration)
	return nil
}

// netnsRow is one peer's figures; an error string replaces a figure that
// could not be taken.
type netnsRow struct {
	peer           string
	gbps, connsSec float64
	cpuPerConnUS   float64 // -1 when not measured
	err            string
}

func (h *harness) netnsPeer(ctx context.Context, t *topology, peer string) netnsRow {
	row := netnsRow{peer: peer, cpuPerConnUS: -1}
	var kids []*child
	defer func() {
		for _, c := range kids {
			h.procs.stopChild(c)
		}
	}()
	host, iperfPort, httpPort := nsGWWAN, nsIperfFwd, nsHTTPFwd
	if peer == peerRouted {
		host, iperfPort, httpPort = nsLAN, nsIperf, nsHTTP
	} else {
		c, err := h.startNetnsPeer(t, peer)
		if err != nil {
			row.err = err.Error()
			return row
		}
		kids = append(kids, c)
		if err := waitNetns(ctx, t, fmt.Sprintf("%s:%d", host, httpPort)); err != nil {
			row.err = fmt.Sprintf("%v\n%s", err, c.logTail())
			return row
		}
	}
	bin, args := nsCmd(t.wan, "iperf3", "-c", host, "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(int(h.opts.duration.Seconds())), "-J")
	out, err := runTool(ctx, h.opts.duration+30*time.Second, bin, args...)
	if r, perr := parseIperf(out); err == nil && perr == nil {
		row.gbps = r.Value
	} else {
		row.err = fmt.Sprint(errors.Join(err, perr))
		return row
	}
	cpu0 := childrenCPU(kids)
	bin, args = nsCmd(t.wan, "wrk", "-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(wrkConns),
		"-d", fmt.Sprintf("%ds", int(h.opts.duration.Seconds())), "-H", "Connection: close", fmt.Sprintf("http://%s:%d/", host, httpPort))
	out, err = runTool(ctx, h.opts.duration+30*time.Second, bin, args...)
	if err != nil {
		row.err = err.Error()
		return row
	}
	r, err := parseWrk(string(out))
	if err != nil {
		row.err = err.Error()
		return row
	}
	row.connsSec = r.Value
	if len(kids) > 0 && r.Detail["requests"] > 0 {
		row.cpuPerConnUS = 1e6 * (childrenCPU(kids) - cpu0) / r.Detail["requests"]
	}
	return row
}

func childrenCPU(cs []*child) float64 {
	var s float64
	for _, c := range cs {
		s += treeTicks(c.pid()) / clockTicks
	}
	return s
}

// waitNetns waits until addr accepts TCP connections from wan.
func waitNetns(ctx context.Context, t *topology, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	host, port, _ := strings.Cut(addr, ":")
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if exec.Command("ip", "netns", "exec", t.wan, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port)).Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nothing accepts connections on %s", addr)
}

// netnsWeb starts the HTTP backend in lan: the same small page as the
// loopback conns measure.
func (h *harness) netnsWeb(t *topology) (*child, error) {
	dir, err := os.MkdirTemp(h.dir, "netns-http-")
	if err != nil {
		return nil, err
	}
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	page := "<!doctype html><title>camgate bench</title><p>" + strings.Repeat("camgate ", 60) + "</p>\n"
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(page), 0o644); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(nginxMain(dir, "1"))
	fmt.Fprintf(&b, "http {\n  access_log off;\n  client_body_temp_path %[1]s/body;\n  proxy_temp_path %[1]s/proxy;\n  fastcgi_temp_path %[1]s/fastcgi;\n  uwsgi_temp_path %[1]s/uwsgi;\n  scgi_temp_path %[1]s/scgi;\n", dir)
	fmt.Fprintf(&b, "  server {\n    listen %s:%d backlog=4096;\n    root %s;\n    location / { }\n  }\n}\n", nsLAN, nsHTTP, www)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	bin, args := nsCmd(t.lan, "nginx", "-e", "stderr", "-p", dir, "-c", cfg)
	return h.procs.start("nginx-http", nil, nil, bin, args...)
}

// startNetnsPeer starts a forwarder in gw for the iperf3 and HTTP ports.
func (h *harness) startNetnsPeer(t *topology, peer string) (*child, error) {
	dir, err := os.MkdirTemp(h.dir, peer+"-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	fwd := [][2]int{{nsIperfFwd, nsIperf}, {nsHTTPFwd, nsHTTP}}
	var b strings.Builder
	var bin string
	var args []string
	switch peer {
	case peerCamgateKernel, peerCamgateUserspace:
		plane := strings.TrimPrefix(peer, "camgate-")
		fmt.Fprintf(&b, "version: 1\nlisten_address: %s\ndataplane: %s\nstate_dir: %s\nadmin: {enabled: false}\nlimits: {drain_timeout: 1s}\nrules:\n", nsGWWAN, plane, filepath.Join(dir, "state"))
		for i, f := range fwd {
			// guard: off, as for the other forwarders: no per-source rate.
			fmt.Fprintf(&b, "  - {name: r%d, external_port: %d, internal_ip: %s, internal_port: %d, guard: \"off\"}\n", i, f[0], nsLAN, f[1])
		}
		cfg := filepath.Join(dir, "camgate.yaml")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		bin, args = nsCmd(t.gw, h.camgate, "serve", "--config", cfg, "--log-level", "warn")
	case peerHAProxy:
		b.WriteString("global\n    maxconn 9500\n\ndefaults\n    mode tcp\n    maxconn 9500\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\n")
		for i, f := range fwd {
			fmt.Fprintf(&b, "listen l%d\n    bind %s:%d\n    server s%d %s:%d\n\n", i, nsGWWAN, f[0], i, nsLAN, f[1])
		}
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		bin, args = nsCmd(t.gw, "haproxy", "-db", "-f", cfg)
	case peerNginx:
		fmt.Fprintf(&b, "load_module %s;\n", nginxStreamModule)
		b.WriteString(nginxMain(dir, "auto"))
		b.WriteString("stream {\n")
		for _, f := range fwd {
			fmt.Fprintf(&b, "  server { listen %s:%d backlog=4096; proxy_pass %s:%d; proxy_connect_timeout 5s; proxy_timeout 1h; }\n", nsGWWAN, f[0], nsLAN, f[1])
		}
		b.WriteString("}\n")
		cfg := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		bin, args = nsCmd(t.gw, "nginx", "-e", "stderr", "-p", dir, "-c", cfg)
	case peerRinetd:
		for _, f := range fwd {
			fmt.Fprintf(&b, "%s %d %s %d\n", nsGWWAN, f[0], nsLAN, f[1])
		}
		cfg := filepath.Join(dir, "rinetd.conf")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		bin, args = nsCmd(t.gw, "rinetd", "-f", "-c", cfg)
	default:
		return nil, fmt.Errorf("unknown netns peer %q", peer)
	}
	return h.procs.start(peer, nil, nil, bin, args...)
}

// writeNetns prints the netns table as markdown, with each peer's ratios
// to routed and camgate kernel's to the best userspace forwarder.
func writeNetns(w io.Writer, rows []netnsRow, d time.Duration) {
	var routed, bestPeer float64
	var kernel netnsRow
	for _, r := range rows {
		switch r.peer {
		case peerRouted:
			routed = r.gbps
		case peerCamgateKernel:
			kernel = r
		case peerHAProxy, peerNginx, peerRinetd:
			bestPeer = max(bestPeer, r.connsSec)
		}
	}
	fmt.Fprintf(w, "\n### netns: wan → gw → lan over veth pairs (%s per measure)\n\n", d)
	fmt.Fprintln(w, "| peer | single stream Gbit/s | × routed | short conns/s | × routed | CPU µs per conn |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	var routedConns float64
	for _, r := range rows {
		if r.peer == peerRouted {
			routedConns = r.connsSec
		}
	}
	for _, r := range rows {
		if r.err != "" {
			fmt.Fprintf(w, "| %s | error: %s | | | | |\n", r.peer, strings.ReplaceAll(lastLines(r.err, 2), "|", "/"))
			continue
		}
		cpu := "—"
		if r.cpuPerConnUS >= 0 {
			cpu = fmt.Sprintf("%.1f", r.cpuPerConnUS)
		}
		fmt.Fprintf(w, "| %s | %.2f | %s | %.0f | %s | %s |\n", r.peer, r.gbps, nsRatio(r.gbps, routed), r.connsSec, nsRatio(r.connsSec, routedConns), cpu)
	}
	if kernel.err == "" && routed > 0 && bestPeer > 0 {
		fmt.Fprintf(w, "\nP1 kernel: %.2f× routed (target ≥ 0.95). P2 kernel: %.2f× the best of haproxy, nginx and rinetd (target ≥ 1.3). camgate's CPU per connection on the kernel path: %.1f µs.\n",
			kernel.gbps/routed, kernel.connsSec/bestPeer, kernel.cpuPerConnUS)
	}
}

func nsRatio(v, base float64) string {
	if base <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", v/base)
}
