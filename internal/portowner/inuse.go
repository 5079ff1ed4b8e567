package portowner

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// InUseError says that a port is held by another process, naming it:
// "port already in use: held by nginx (pid 812)". It wraps
// syscall.EADDRINUSE, so callers that branch on that errno keep working.
type InUseError struct {
	Proto string // tcp or udp
	Addr  netip.Addr
	Port  uint16
	// Holders are the processes holding it; empty when the socket's
	// owner is not visible (another user's process, seen without root).
	Holders []Owner
}

func (e *InUseError) Error() string {
	if len(e.Holders) == 0 {
		return "port already in use: held by another process (run as root to see which)"
	}
	names := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		names[i] = h.String()
	}
	return "port already in use: held by " + strings.Join(names, ", ")
}

func (e *InUseError) Unwrap() error { return syscall.EADDRINUSE }

// Check returns an *InUseError when a process other than this one holds
// port on addr for proto ("tcp": a listening socket; "udp": a bound,
// unconnected one), on addr itself or on a wildcard address (or any
// address when addr is a wildcard). It returns nil when the port is free
// or held only by this process, and when /proc cannot be read (the bind
// that follows then tells).
func Check(proto string, addr netip.Addr, port uint16) error {
	return NewIndex("/proc").Check(proto, addr, port)
}

// Check is the package-level Check on x's /proc tree.
func (x *Index) Check(proto string, addr netip.Addr, port uint16) error {
	return x.CheckPorts(proto, addr, []uint16{port})
}

// CheckPorts is Check for several ports, reading the socket table once:
// the first port held by another process is reported.
func (x *Index) CheckPorts(proto string, addr netip.Addr, ports []uint16) error {
	all, err := x.Sockets(proto)
	if err != nil {
		return nil
	}
	want := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		want[p] = true
	}
	var e *InUseError
	seen := map[int]bool{}
	for _, s := range all {
		if !want[s.Port] || !s.bound(proto, addr) {
			continue
		}
		o, ok := x.Owner(s.Inode)
		if ok && o.Self {
			continue
		}
		if e == nil {
			e = &InUseError{Proto: proto, Addr: addr, Port: s.Port}
		} else if s.Port != e.Port {
			continue
		}
		if ok && !seen[o.PID] {
			seen[o.PID] = true
			e.Holders = append(e.Holders, o)
		}
	}
	if e == nil {
		return nil
	}
	return e
}

// Process describes the process with pid as its /proc/PID/comm names it,
// for messages such as the state directory lock's.
func Process(pid int) Owner {
	comm, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "comm"))
	name := strings.TrimSpace(string(comm))
	if name == "" {
		name = "a process that has exited"
	}
	return Owner{PID: pid, Name: name, Self: pid == os.Getpid()}
}
