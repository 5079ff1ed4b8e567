package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// TestVPNBench measures the VPN against a direct wireguard-go pair over the
// same namespaces (docs/BENCHMARKS.md, "VPN"): iperf3 throughput each way,
// camgate's CPU per Gbit/s, and the time to a first TCP connection through
// a fresh tunnel (the handshake plus one round trip). It is a benchmark,
// not a test: it runs only with CAMGATE_VPN_BENCH=1 (seconds per iperf3
// run in CAMGATE_VPN_BENCH_SECONDS, default 5).
func TestVPNBench(t *testing.T) {
	if os.Getenv("CAMGATE_VPN_BENCH") == "" {
		t.Skip("a benchmark: set CAMGATE_VPN_BENCH=1 to run it")
	}
	need(t, "iperf3")
	secs := os.Getenv("CAMGATE_VPN_BENCH_SECONDS")
	if secs == "" {
		secs = "5"
	}
	v := newVPNLab(t, "")
	dvr1 := netlab.LANAddr.String()
	v.l.Start(v.l.LAN, "iperf3", "-s", "-B", dvr1, "-p", "5201")

	conf := v.addPeer(t, "bench", "--allow", "dvr1")
	v.phone(t, "wg0", conf)
	firstConnect(t, v, dvr1+":8082")
	// Handshake time: the phone forgets its session (the peer removed and
	// set again, no keepalive), then the first connection needs a new
	// handshake: initiation, response, then TCP's SYN through camgate.
	srv := v.status(t)
	for range 3 {
		v.l.Exec(v.l.WAN, "wg", "set", "wg0", "peer", srv.PublicKey.String(), "remove")
		v.l.Exec(v.l.WAN, "wg", "set", "wg0", "peer", srv.PublicKey.String(), "endpoint", srv.Endpoint, "allowed-ips", dvr1+"/32")
		v.l.Exec(v.l.WAN, "ip", "route", "replace", dvr1+"/32", "dev", "wg0")
		fresh := firstConnect(t, v, dvr1+":8082")
		warm := firstConnect(t, v, dvr1+":8082")
		t.Logf("camgate: first TCP connection through a fresh session %v, the next %v: handshake about %v", fresh, warm, fresh-warm)
	}

	// The direct pair: wireguard-go in gw against wireguard-go in wan,
	// tunnel addresses in the benchmarking range, iperf3 on gw's end.
	srvKey := strings.TrimSpace(v.l.Exec(v.l.GW, "wg", "genkey"))
	cliKey := strings.TrimSpace(v.l.Exec(v.l.WAN, "wg", "genkey"))
	pub := func(ns, k string) string {
		c := v.l.Command(ns, "wg", "pubkey")
		c.Stdin = strings.NewReader(k)
		out, err := c.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	srvPub, cliPub := pub(v.l.GW, srvKey), pub(v.l.WAN, cliKey)
	direct := "198.18.99.1"
	v.wgIface(t, v.l.GW, "wgd", srvKey, "198.18.99.1/32", 51900, cliPub, "", "198.18.99.2/32")
	v.l.Start(v.l.GW, "iperf3", "-s", "-B", direct, "-p", "5202")
	v.wgIface(t, v.l.WAN, "wgc", cliKey, "198.18.99.2/32", 0, srvPub, netlab.GWWANAddr.String()+":51900", "198.18.99.1/32")

	cpu := func() float64 { return procCPUSeconds(t, v.gw.Cmd.Process.Pid) }
	for _, dir := range []string{"", "-R"} {
		label := "phone → device"
		if dir == "-R" {
			label = "device → phone"
		}
		c0, t0 := cpu(), time.Now()
		viaCamgate := iperf(t, v, dvr1, "5201", secs, dir)
		camgateCPU := (cpu() - c0) / time.Since(t0).Seconds()
		directBPS := iperf(t, v, direct, "5202", secs, dir)
		t.Logf("%s: camgate %.2f Gbit/s (%.2f CPU, %.2f CPU-seconds per Gbit), direct wireguard-go pair %.2f Gbit/s: ratio %.2f",
			label, viaCamgate/1e9, camgateCPU, camgateCPU/(viaCamgate/1e9), directBPS/1e9, viaCamgate/directBPS)
	}
}

// wgIface brings up a wireguard-go interface with one peer in ns.
func (v *vpnLab) wgIface(t *testing.T, ns, name, key, addr string, port int, peer, endpoint, allowed string) {
	t.Helper()
	cmd := v.l.Command(ns, "wireguard-go", "-f", name)
	cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error")
	p := netlab.StartCmd(cmd)
	t.Cleanup(p.Stop)
	for i := 0; v.l.Command(ns, "ip", "link", "show", name).Run() != nil; i++ {
		if i > 100 {
			t.Fatalf("wireguard-go did not create %s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	kf := filepath.Join(v.dir, name+".key")
	os.WriteFile(kf, []byte(key+"\n"), 0o600)
	args := []string{"set", name, "private-key", kf}
	if port != 0 {
		args = append(args, "listen-port", strconv.Itoa(port))
	}
	args = append(args, "peer", peer, "allowed-ips", allowed)
	if endpoint != "" {
		args = append(args, "endpoint", endpoint)
	}
	v.l.Exec(ns, "wg", args...)
	v.l.Exec(ns, "ip", "addr", "add", addr, "dev", name)
	v.l.Exec(ns, "ip", "link", "set", name, "up")
	v.l.Exec(ns, "ip", "route", "replace", allowed, "dev", name)
}

// firstConnect dials addr from wan until it connects and returns how
// long that took.
func firstConnect(t *testing.T, v *vpnLab, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		c, err := v.l.Dial(v.l.WAN, "tcp", "", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return time.Since(start)
		}
	}
	t.Fatalf("no connection to %s through the tunnel", addr)
	return 0
}

func iperf(t *testing.T, v *vpnLab, host, port, secs, dir string) float64 {
	t.Helper()
	args := []string{"-c", host, "-p", port, "-t", secs, "-J"}
	if dir != "" {
		args = append(args, dir)
	}
	out := v.l.Exec(v.l.WAN, "iperf3", args...)
	var res struct {
		End struct {
			SumReceived struct {
				BPS float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Error != "" {
		t.Fatalf("iperf3 %s: %v %s\n%s", host, err, res.Error, out)
	}
	return res.End.SumReceived.BPS
}

// procCPUSeconds is a process's user+system CPU time.
func procCPUSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}
