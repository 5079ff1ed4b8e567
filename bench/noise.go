package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// noiseSampler measures how much CPU other work on the machine took while
// the harness ran: every interval it reads the machine's busy time from
// /proc/stat and subtracts the CPU time of the harness's own process tree
// (itself, the peers, the backends, the load generators, and the children
// they have reaped). On a 2-core machine shared with anything else, this
// is the figure that says whether a result can be trusted.
type noiseSampler struct {
	mu      sync.Mutex // guards following
	samples []noiseSample
}

type noiseSample struct {
	at     time.Time
	others float64 // share of all cores' time used by others, 0 to 1
}

const noiseInterval = 500 * time.Millisecond

// run samples until ctx ends.
func (n *noiseSampler) run(ctx context.Context) {
	self := os.Getpid()
	busy0, total0 := machineTicks()
	ours0 := treeTicks(self)
	t := time.NewTicker(noiseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		busy1, total1 := machineTicks()
		ours1 := treeTicks(self)
		if total1 > total0 {
			// Our tree's ticks can jump when a child exits (its time moves
			// from the child to the parent's cumulative fields), so clamp.
			others := (busy1 - busy0 - max(0, ours1-ours0)) / (total1 - total0)
			n.mu.Lock()
			n.samples = append(n.samples, noiseSample{at: time.Now(), others: min(1, max(0, others))})
			n.mu.Unlock()
		}
		busy0, total0, ours0 = busy1, total1, ours1
	}
}

// since returns the mean share taken by others since t, or -1 without
// samples.
func (n *noiseSampler) since(t time.Time) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	sum, k := 0.0, 0
	for i := len(n.samples) - 1; i >= 0 && n.samples[i].at.After(t); i-- {
		sum += n.samples[i].others
		k++
	}
	if k == 0 {
		return -1
	}
	return sum / float64(k)
}

// machineTicks returns busy and total clock ticks over all cores. Busy
// leaves out interrupt and softirq time: no process is charged for it, and
// while the harness runs most of it is the kernel carrying the harness's
// own loopback traffic, which would otherwise read as someone else's work.
// Steal time (a hypervisor giving the cores to another guest) counts as
// busy: it is as much outside noise as another process.
func machineTicks() (busy, total float64) {
	v := statCPU()
	if v == nil {
		return 0, 0
	}
	for i, x := range v {
		total += x
		switch i {
		case 0, 1, 2, 7: // user, nice, system, steal
			busy += x
		}
	}
	return busy, total
}

// statCPU returns the first eight fields of /proc/stat's "cpu" line: user,
// nice, system, idle, iowait, irq, softirq, steal (guest time is already
// included in user).
func statCPU() []float64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return nil
	}
	v := make([]float64, 8)
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
	}
	return v
}

// treeTicks returns the CPU ticks (utime+stime+cutime+cstime) of pid and
// all its live descendants.
func treeTicks(pid int) float64 {
	var sum float64
	for _, p := range descendants(pid) {
		// state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
		f := statFields(strconv.Itoa(p))
		if len(f) < 15 {
			continue
		}
		for _, k := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseFloat(f[k], 64)
			sum += v
		}
	}
	return sum
}

// noiseSummary describes the others' share over all results.
func noiseSummary(rs []Result) string {
	worst, worstAt, sum, k := -1.0, "", 0.0, 0
	for _, r := range rs {
		v, ok := r.Detail["others_cpu_pct"]
		if !ok || v < 0 {
			continue
		}
		sum += v
		k++
		if v > worst {
			worst, worstAt = v, r.Metric+"/"+r.Peer
		}
	}
	if k == 0 {
		return ""
	}
	return fmt.Sprintf("CPU used by other work on the machine while measuring: mean %.0f%%, worst %.0f%% (%s)", sum/float64(k), worst, worstAt)
}
