package netlab

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process started by a test. Its output is kept so a
// test can wait for a line and show it when something fails.
type Proc struct {
	Cmd *exec.Cmd

	done chan struct{}
	mu   sync.Mutex // guards following
	out  bytes.Buffer
	err  error
}

type procWriter struct{ p *Proc }

func (w procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Start runs name with args in namespace ns ("" means the test's own
// namespace) and stops it when the lab is removed.
func (l *Lab) Start(ns, name string, args ...string) *Proc {
	l.t.Helper()
	var cmd *exec.Cmd
	if ns == "" {
		cmd = exec.Command(name, args...)
	} else {
		cmd = l.Command(ns, name, args...)
	}
	p := StartCmd(cmd)
	if p.err != nil {
		l.t.Fatalf("netlab: start %s in %s: %v", name, ns, p.err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// StartCmd starts an already prepared command, capturing its output. The
// caller owns the process and must Stop it.
func StartCmd(cmd *exec.Cmd) *Proc {
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = procWriter{p}
	}
	if cmd.Stderr == nil {
		cmd.Stderr = procWriter{p}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.err = err
		close(p.done)
		return p
	}
	go p.wait()
	return p
}

func (p *Proc) wait() {
	err := p.Cmd.Wait()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitFor waits until the output contains s, and reports whether it did
// before timeout or the process's exit.
func (p *Proc) WaitFor(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), s) {
			return true
		}
		select {
		case <-p.done:
			return strings.Contains(p.Output(), s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Cmd.Process == nil {
		return nil
	}
	return p.Cmd.Process.Signal(sig)
}

// Exited returns a channel closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err returns the process's exit error once it has exited.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop sends SIGTERM to the process group, waits up to 10 s, then kills it.
func (p *Proc) Stop() {
	if p.Cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	// The process is "ip netns exec ... prog", which execs prog in place,
	// so the group holds prog and whatever it spawned.
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
