package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
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
	LoadStart string `json:"loadavg_start"`
	// BusyStart is the share of CPU time others used just before the run.
	BusyStart float64           `json:"cpu_busy_start"`
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
	fmt.Fprintf(w, "%sbefore the run: CPU %.0f%% busy with other work; load average %s\n", bullet, 100*m.BusyStart, m.LoadStart)
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

// cpuBusy samples /proc/stat over d and returns the share of all cores'
// time that was not idle, 0 to 1.
func cpuBusy(d time.Duration) float64 {
	// Before the run everything is someone else's work, interrupts too.
	read := func() (busy, total float64) {
		for i, x := range statCPU() {
			total += x
			if i != 3 && i != 4 { // idle, iowait
				busy += x
			}
		}
		return busy, total
	}
	b0, t0 := read()
	time.Sleep(d)
	b1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return (b1 - b0) / (t1 - t0)
}

// quietThreshold is the CPU use by others above which figures are noisy.
const quietThreshold = 0.10

// waitQuiet waits until the machine's CPU use is below quietThreshold for
// two samples in a row, or until max passes. It returns the last sample.
func waitQuiet(ctx context.Context, max time.Duration, log func(string, ...any)) float64 {
	deadline := time.Now().Add(max)
	calm := 0
	for {
		u := cpuBusy(2 * time.Second)
		if u < quietThreshold {
			calm++
			if calm == 2 {
				return u
			}
			continue
		}
		calm = 0
		if time.Now().After(deadline) || ctx.Err() != nil {
			return u
		}
		log("machine busy (%.0f%% CPU used by others); waiting for it to calm down", 100*u)
		sleepCtx(ctx, 10*time.Second)
	}
}
