package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPU    string            `json:"cpu"`
	Cores  int               `json:"cores"`
	MemMB  int64             `json:"mem_mb"`
	Kernel string            `json:"kernel"`
	OS     string            `json:"os"`
	Go     string            `json:"go"`
	NoFile uint64            `json:"nofile_hard_limit"`
	Sysctl map[string]string `json:"sysctl"`
	// LoadStart is /proc/loadavg when the run began: other work on the
	// machine makes every figure noisy.
	LoadStart string            `json:"loadavg_start"`
	Version   map[string]string `json:"versions"`
}

func describeMachine(camgate string, nofile uint64) Machine {
	m := Machine{
		CPU:       cpuModel(),
		Cores:     runtime.NumCPU(),
		MemMB:     memTotalKB() / 1024,
		Kernel:    readTrim("/proc/sys/kernel/osrelease"),
		OS:        osName(),
		Go:        runtime.Version(),
		NoFile:    nofile,
		Sysctl:    map[string]string{},
		Version:   map[string]string{},
		LoadStart: loadAvg(),
	}
	for _, k := range []string{"net/core/somaxconn", "net/ipv4/tcp_tw_reuse", "net/ipv4/ip_local_port_range", "net/core/rmem_max", "net/core/wmem_max"} {
		m.Sysctl[strings.ReplaceAll(k, "/", ".")] = strings.Join(strings.Fields(readTrim("/proc/sys/"+k)), " ")
	}
	version := func(name string, match string, args ...string) {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		for l := range strings.SplitSeq(string(out), "\n") {
			if strings.Contains(strings.ToLower(l), match) {
				m.Version[name] = strings.TrimSpace(l)
				return
			}
		}
		m.Version[name] = "unknown"
	}
	version(peerCamgate, "", camgate, "version")
	version(peerHAProxy, "haproxy version", "haproxy", "-v")
	version(peerNginx, "nginx version", "nginx", "-v")
	version(peerSocat, "socat version", "socat", "-V")
	version(peerRinetd, "rinetd", "rinetd", "-v")
	version("iperf3", "iperf", "iperf3", "--version")
	version("wrk", "wrk", "wrk", "-v")
	return m
}

func (m Machine) write(w io.Writer, markdown bool) {
	bullet := ""
	if markdown {
		bullet = "- "
	}
	fmt.Fprintf(w, "%sCPU: %s, %d cores; RAM %d MB\n", bullet, m.CPU, m.Cores, m.MemMB)
	fmt.Fprintf(w, "%sKernel %s; %s; %s; RLIMIT_NOFILE hard %d\n", bullet, m.Kernel, m.OS, m.Go, m.NoFile)
	var sc []string
	for _, k := range []string{"net.core.somaxconn", "net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range", "net.core.rmem_max", "net.core.wmem_max"} {
		sc = append(sc, k+"="+m.Sysctl[k])
	}
	fmt.Fprintf(w, "%ssysctl: %s\n", bullet, strings.Join(sc, ", "))
	fmt.Fprintf(w, "%sload average at start (1, 5, 15 min): %s\n", bullet, m.LoadStart)
	var vs []string
	for _, k := range []string{peerCamgate, peerHAProxy, peerNginx, peerSocat, peerRinetd, "iperf3", "wrk"} {
		vs = append(vs, fmt.Sprintf("%s: %s", k, m.Version[k]))
	}
	fmt.Fprintf(w, "%sversions: %s\n", bullet, strings.Join(vs, "; "))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotalKB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	var kb int64
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			fmt.Sscan(strings.TrimSpace(v), &kb)
		}
	}
	return kb
}

func osName() string {
	b, _ := os.ReadFile("/etc/os-release")
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// loadAvg returns the 1, 5 and 15-minute load averages.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// busy reports whether the machine is already loaded (1-minute load
// average above a quarter of a core).
func busy() (bool, string) {
	l := loadAvg()
	var one float64
	fmt.Sscan(l, &one)
	return one > 0.25, l
}
