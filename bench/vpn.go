package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/netns"
	"github.com/camgate/camgate/internal/vpn"
)

// The vpn measure (root): camgate's built-in WireGuard VPN (docs/VPN.md)
// against a direct wireguard-go ↔ wireguard-go link, in the netns mode's
// wan/gw/lan namespaces, in the same run:
//
//   - camgate: a "phone" (Debian's wireguard-go with a TUN device, set up
//     with wg) in wan, camgate's VPN in gw, iperf3's server on the DVR's
//     address in lan. The phone's traffic ends in camgate's netstack and
//     is dialled again to lan, as a person's phone would reach a camera;
//   - direct: a second wireguard-go (TUN) in gw against one in wan, with
//     iperf3's server on gw's tunnel address.
//
// Figures: iperf3 throughput each way, camgate's CPU per Gbit/s through
// the tunnel (/proc/<pid>/stat of its process tree, CPU-seconds per
// Gbit), and the handshake time: the first TCP connection through a
// fresh session (the phone forgot its keys) minus the next one, the
// median of vpnHandshakes. The target: at least 0.8× the direct pair's
// throughput in both directions.

const (
	vpnPort, vpnDirectPort = 51820, 51900
	// The phone's tunnel address (the first peer's in the default range)
	// and the direct pair's tunnel addresses, in the benchmarking range.
	vpnPhoneAddr              = "100.88.0.2"
	vpnDirectGW, vpnDirectWAN = "198.18.99.1", "198.18.99.2"
	vpnIperfDirect            = 5202
	// vpnProbePort is where the handshake probe connects: a listener that
	// accepts and closes, in lan (camgate) or on gw's tunnel address.
	vpnProbePort  = 9099
	vpnHandshakes = 5
)

func (h *harness) measureVPN(ctx context.Context) {
	if err := h.vpnRun(ctx); err != nil {
		h.recordErr("vpn_up", peerCamgate, err)
	}
}

func (h *harness) vpnRun(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("the vpn measure needs root (network namespaces, TUN devices for wireguard-go)")
	}
	for _, bin := range []string{"wireguard-go", "wg", "iperf3"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("the vpn measure needs %s (apt-get install wireguard-go wireguard-tools iperf3): %w", bin, err)
		}
	}
	t, err := newTopology()
	if err != nil {
		return err
	}
	defer t.close()
	var kids []*child
	defer func() {
		for i := len(kids) - 1; i >= 0; i-- {
			h.procs.stopChild(kids[i])
		}
	}()
	start := func(name, ns, bin string, env []string, args ...string) (*child, error) {
		b, a := nsCmd(ns, bin, args...)
		c, err := h.procs.start(name, env, nil, b, a...)
		if err == nil {
			kids = append(kids, c)
		}
		return c, err
	}
	dir, err := os.MkdirTemp(h.dir, "vpn-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)

	// camgate's VPN with one peer, the phone, allowed the DVR (lan).
	// Peers are added through the admin API in real use; the benchmark
	// writes the state directory camgate reads at start instead.
	serverKey, phoneKey := newKey(), newKey()
	if err := writeVPNState(filepath.Join(dir, "state"), serverKey, phoneKey); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "camgate.yaml")
	yaml := fmt.Sprintf("version: 1\nstate_dir: %s\nadmin: {enabled: false}\ndevices:\n  - {name: dvr1, address: %s}\nvpn: {enabled: true, endpoint: %s}\n",
		filepath.Join(dir, "state"), nsLAN, nsGWWAN)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		return err
	}
	if _, err := start("iperf3-lan", t.lan, "iperf3", nil, "-s", "-B", nsLAN, "-p", strconv.Itoa(nsIperf)); err != nil {
		return err
	}
	cg, err := start("camgate-vpn", t.gw, h.camgate, nil, "serve", "--config", cfg, "--log-level", "warn")
	if err != nil {
		return err
	}
	stopLAN, err := acceptIn(t.lan, fmt.Sprintf("%s:%d", nsLAN, vpnProbePort))
	if err != nil {
		return err
	}
	defer stopLAN()

	// The phone.
	if err := wgIface(ctx, start, dir, t.wan, "wg0", phoneKey, vpnPhoneAddr, 0, serverKey.Public(),
		fmt.Sprintf("%s:%d", nsGWWAN, vpnPort), nsLAN); err != nil {
		return err
	}
	// The direct pair.
	gwKey, wanKey := newKey(), newKey()
	if err := wgIface(ctx, start, dir, t.gw, "wgd", gwKey, vpnDirectGW, vpnDirectPort, wanKey.Public(), "", vpnDirectWAN); err != nil {
		return err
	}
	if err := wgIface(ctx, start, dir, t.wan, "wgc", wanKey, vpnDirectWAN, 0, gwKey.Public(),
		fmt.Sprintf("%s:%d", nsGWWAN, vpnDirectPort), vpnDirectGW); err != nil {
		return err
	}
	if _, err := start("iperf3-gw", t.gw, "iperf3", nil, "-s", "-B", vpnDirectGW, "-p", strconv.Itoa(vpnIperfDirect)); err != nil {
		return err
	}
	stopGW, err := acceptIn(t.gw, fmt.Sprintf("%s:%d", vpnDirectGW, vpnProbePort))
	if err != nil {
		return err
	}
	defer stopGW()

	// First contact: camgate may still be starting.
	camgateProbe := fmt.Sprintf("%s:%d", nsLAN, vpnProbePort)
	directProbe := fmt.Sprintf("%s:%d", vpnDirectGW, vpnProbePort)
	for _, a := range []string{camgateProbe, directProbe} {
		if _, err := firstConnect(ctx, t.wan, a, 15*time.Second); err != nil {
			return fmt.Errorf("%v\n%s", err, cg.logTail())
		}
	}

	// Handshakes, alternating so that load hits both alike.
	hs := map[string][]float64{}
	fresh := map[string][]float64{}
	for range vpnHandshakes {
		for _, p := range []struct {
			peer, iface, probe, endpoint, allowed string
			pub                                   vpn.Key
		}{
			{peerCamgate, "wg0", camgateProbe, fmt.Sprintf("%s:%d", nsGWWAN, vpnPort), nsLAN, serverKey.Public()},
			{peerDirect, "wgc", directProbe, fmt.Sprintf("%s:%d", nsGWWAN, vpnDirectPort), vpnDirectGW, gwKey.Public()},
		} {
			f, w, err := handshakeTime(ctx, t.wan, p.iface, p.pub, p.endpoint, p.allowed, p.probe)
			if err != nil {
				return fmt.Errorf("%s handshake: %w", p.peer, err)
			}
			hs[p.peer] = append(hs[p.peer], (f-w).Seconds()*1000)
			fresh[p.peer] = append(fresh[p.peer], f.Seconds()*1000)
		}
	}
	for _, p := range []string{peerCamgate, peerDirect} {
		v, f := medianOf(hs[p]), medianOf(fresh[p])
		h.record(Result{Metric: "vpn_handshake", Peer: p, Value: v, Detail: map[string]float64{
			"first_connection_ms": f, "next_connection_ms": f - v, "samples": float64(len(hs[p])),
		}})
	}

	// Throughput each way, camgate then the direct pair.
	secs := strconv.Itoa(max(1, int(h.opts.duration.Seconds())))
	for _, dir := range []struct{ metric, flag string }{{"vpn_up", ""}, {"vpn_down", "-R"}} {
		for _, peer := range []string{peerCamgate, peerDirect} {
			host, port := nsLAN, nsIperf
			if peer == peerDirect {
				host, port = vpnDirectGW, vpnIperfDirect
			}
			args := []string{"-c", host, "-p", strconv.Itoa(port), "-t", secs, "-J"}
			if dir.flag != "" {
				args = append(args, dir.flag)
			}
			t0, c0 := time.Now(), treeTicks(cg.pid())
			bin, a := nsCmd(t.wan, "iperf3", args...)
			out, err := runTool(ctx, h.opts.duration+30*time.Second, bin, a...)
			cpu := (treeTicks(cg.pid()) - c0) / clockTicks / time.Since(t0).Seconds()
			r, perr := parseIperf(out)
			if err != nil || perr != nil {
				h.recordErr(dir.metric, peer, errors.Join(err, perr))
				continue
			}
			r.Metric, r.Peer = dir.metric, peer
			h.record(r)
			if peer == peerCamgate && r.Value > 0 {
				h.record(Result{Metric: dir.metric + "_cpu", Peer: peer, Value: cpu / r.Value,
					Detail: map[string]float64{"cpu_cores": cpu, "gbps": r.Value}})
			}
		}
	}
	return nil
}

// newKey returns a fresh, clamped WireGuard private key.
func newKey() vpn.Key {
	var k vpn.Key
	rand.Read(k[:])
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// writeVPNState writes the server key and a one-peer list (the phone,
// allowed dvr1) where camgate's VPN reads them at start.
func writeVPNState(state string, server, phone vpn.Key) error {
	d := filepath.Join(state, "vpn")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "server.key"), []byte(server.String()+"\n"), 0o600); err != nil {
		return err
	}
	peers := struct {
		Version int        `json:"version"`
		Peers   []vpn.Peer `json:"peers"`
	}{1, []vpn.Peer{{Name: "bench-phone", PublicKey: phone.Public(), Address: netip.MustParseAddr(vpnPhoneAddr), Allow: []string{"dvr1"}, Created: time.Now().UTC()}}}
	b, err := json.Marshal(peers)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "peers.json"), b, 0o600)
}

// wgIface starts wireguard-go in ns as interface name with one peer and
// routes allowed (a /32) into it.
func wgIface(ctx context.Context, start func(name, ns, bin string, env []string, args ...string) (*child, error),
	dir, ns, name string, key vpn.Key, addr string, port int, peer vpn.Key, endpoint, allowed string) error {
	if _, err := start("wireguard-go-"+name, ns, "wireguard-go", []string{"WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error"}, "-f", name); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("ip", "-n", ns, "link", "show", name).Run() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("wireguard-go did not create %s in %s", name, ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	kf := filepath.Join(dir, name+".key")
	if err := os.WriteFile(kf, []byte(key.String()+"\n"), 0o600); err != nil {
		return err
	}
	args := []string{"set", name, "private-key", kf}
	if port != 0 {
		args = append(args, "listen-port", strconv.Itoa(port))
	}
	args = append(args, "peer", peer.String(), "allowed-ips", allowed+"/32")
	if endpoint != "" {
		args = append(args, "endpoint", endpoint)
	}
	steps := [][]string{
		append([]string{"netns", "exec", ns, "wg"}, args...),
		{"-n", ns, "addr", "add", addr + "/32", "dev", name},
		{"-n", ns, "link", "set", name, "up"},
		{"-n", ns, "route", "replace", allowed + "/32", "dev", name},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, "ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// handshakeTime makes the phone forget its session with peer (removed
// and set again), then times the first TCP connection to probe, which
// waits for a new handshake, and the next one, which does not.
func handshakeTime(ctx context.Context, ns, iface string, peer vpn.Key, endpoint, allowed, probe string) (first, next time.Duration, err error) {
	for _, s := range [][]string{
		{"netns", "exec", ns, "wg", "set", iface, "peer", peer.String(), "remove"},
		{"netns", "exec", ns, "wg", "set", iface, "peer", peer.String(), "endpoint", endpoint, "allowed-ips", allowed + "/32"},
		{"-n", ns, "route", "replace", allowed + "/32", "dev", iface},
	} {
		if out, err := exec.CommandContext(ctx, "ip", s...).CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if first, err = firstConnect(ctx, ns, probe, 10*time.Second); err != nil {
		return 0, 0, err
	}
	next, err = firstConnect(ctx, ns, probe, 10*time.Second)
	return first, next, err
}

// firstConnect dials addr from namespace ns until a connection is
// accepted and returns how long that took.
func firstConnect(ctx context.Context, ns, addr string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < limit && ctx.Err() == nil {
		var c net.Conn
		err := netns.Do(netns.Path(ns), func() (err error) {
			c, err = net.DialTimeout("tcp", addr, limit-time.Since(start))
			return err
		})
		if err == nil {
			c.Close()
			return time.Since(start), nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("no connection to %s from %s within %s: %v", addr, ns, limit, last)
}

// acceptIn listens on addr in namespace ns and closes every connection
// it accepts; the returned function stops it.
func acceptIn(ns, addr string) (func(), error) {
	var ln net.Listener
	if err := netns.Do(netns.Path(ns), func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() { ln.Close(); <-done }, nil
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
