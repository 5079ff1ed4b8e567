package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs owns every child process the harness starts, so that all of them
// are killed at the end, after an error or on SIGINT.
type procs struct {
	dir string // logs go here

	mu       sync.Mutex // guards following
	children []*child
	seq      int
}

// child is one running peer, backend or helper process. It runs in its own
// process group so that stopping it also stops what it forked (socat's
// per-connection children, nginx's workers).
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid after done
}

// start runs name with args, stdout and stderr going to a log file in the
// run directory. filter, if non-nil, wraps the log file as stderr's writer
// (camgate's goroutine counter reads the scheduler trace that way).
func (p *procs) start(name string, env []string, filter func(io.Writer) io.Writer, bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	return p.startCmd(name, env, filter, cmd)
}

func (p *procs) startCmd(name string, env []string, filter func(io.Writer) io.Writer, cmd *exec.Cmd) (*child, error) {
	p.mu.Lock()
	p.seq++
	logPath := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.log", p.seq, name))
	p.mu.Unlock()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	if filter != nil {
		cmd.Stderr = filter(f)
	} else {
		cmd.Stderr = f
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the child's log, for error messages.
func (c *child) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM to the child's process group, then SIGKILL after
// grace, and waits for the leader to exit.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		// The leader is gone but forked children may live on.
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.done
}

// stopAll stops every child still running, newest first.
func (p *procs) stopAll() {
	p.mu.Lock()
	cs := p.children
	p.children = nil
	p.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].stop(2 * time.Second)
	}
}

// forget drops a stopped child from the registry.
func (p *procs) forget(c *child) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.children {
		if x == c {
			p.children = append(p.children[:i], p.children[i+1:]...)
			return
		}
	}
}

// stopChild stops one child and forgets it.
func (p *procs) stopChild(c *child) {
	if c == nil {
		return
	}
	c.stop(3 * time.Second)
	p.forget(c)
}

// usage is what /proc says about a process tree.
type usage struct {
	Procs   int   `json:"procs"`
	FDs     int   `json:"fds"`
	RSSKB   int64 `json:"rss_kb"`
	PSSKB   int64 `json:"pss_kb"`
	Threads int   `json:"threads"`
	// Goroutines is -1 when unknown (only camgate started with the
	// scheduler trace reports it).
	Goroutines int `json:"goroutines"`
}

// treeUsage sums fds, RSS, PSS and threads over pid and its descendants.
func treeUsage(pid int) (usage, error) {
	pids := descendants(pid)
	u := usage{Goroutines: -1}
	for _, p := range pids {
		fds, err := countFDs(p)
		if err != nil {
			if p == pid {
				return u, err
			}
			continue // a forked child that just exited
		}
		u.Procs++
		u.FDs += fds
		rss, threads := statusRSS(p)
		u.RSSKB += rss
		u.Threads += threads
		u.PSSKB += smapsPSS(p)
	}
	return u, nil
}

func countFDs(pid int) (int, error) {
	d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(4096)
		n += len(names)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// statusRSS reads VmRSS (KB) and Threads from /proc/pid/status.
func statusRSS(pid int) (rssKB int64, threads int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rssKB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Threads:":
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return rssKB, threads
}

// smapsPSS reads the proportional set size (KB), which shares the pages of
// forked children fairly between them.
func smapsPSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// statFields returns the fields of /proc/<pid>/stat after the command
// name, so that f[0] is the state, f[1] the parent, f[11] utime; nil if
// the process is gone.
func statFields(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	// The command name may contain spaces: fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// descendants returns pid followed by all its descendants.
func descendants(pid int) []int {
	parent := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(e.Name())
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pp] = append(parent[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parent[out[i]]...)
	}
	return out
}

// listening reports whether something is bound to 127.0.0.1:port: a TCP
// listener, or an unconnected UDP socket.
func listening(proto string, port uint16) bool {
	file, state := "/proc/net/tcp", "0A" // TCP_LISTEN
	if proto == "udp" {
		file, state = "/proc/net/udp", "07" // TCP_CLOSE: an unconnected UDP socket
	}
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 {
			continue
		}
		if strings.HasSuffix(fl[1], want) && fl[3] == state {
			return true
		}
	}
	return false
}

// waitListening waits until every route's listen port is bound, or the
// child exits, or the timeout passes.
func waitListening(ctx context.Context, c *child, routes []route, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, r := range routes {
			if !listening(r.proto, r.listen) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s exited before listening: %v\n%s", c.name, c.err, c.logTail())
		}
		if time.Now().After(deadline) {
			name := "process"
			if c != nil {
				name = c.name
			}
			return fmt.Errorf("%s not listening after %s", name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit. Setting it
// explicitly (rather than relying on the Go runtime's own raise) makes
// child processes inherit the raised limit too.
func raiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Max, nil
}

var errNotMeasured = errors.New("not measured")
