// Package portowner tells which process holds a local port, from the
// socket tables in /proc/net/{tcp,udp}{,6} and the socket inodes behind
// every process's /proc/PID/fd links. camgate uses it to refuse a port
// another program (or a second camgate) holds, with a message naming the
// holder: "port already in use: held by nginx (pid 812)", and `camgate
// check` to say who holds a rule's port.
//
//	if err := portowner.Check("tcp", addr, 8082); err != nil {
//		return err // *portowner.InUseError, which wraps syscall.EADDRINUSE
//	}
//
// It sees sockets of the network namespace it runs in. Other users'
// processes are visible only to root: a socket whose owner cannot be seen
// is reported as held by "another process". It reads /proc only; it never
// binds or connects.
package portowner

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Socket is one line of /proc/net/{tcp,tcp6,udp,udp6}.
type Socket struct {
	Addr  netip.Addr
	Port  uint16
	State uint8 // 0x0A is TCP LISTEN; 0x07 is an unconnected UDP socket
	Inode uint64
}

// Kernel socket states as /proc/net prints them (include/net/tcp_states.h).
const (
	StateListen = 0x0A // TCP_LISTEN
	StateClose  = 0x07 // TCP_CLOSE: a bound, unconnected UDP socket
)

// ParseProcNet parses the contents of /proc/net/tcp, tcp6, udp or udp6.
// Addresses are printed as 32-bit words in host byte order; ports as
// plain hex numbers.
func ParseProcNet(data []byte) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // header line
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		hostPort := f[1]
		h, p, ok := strings.Cut(hostPort, ":")
		if !ok {
			return out, fmt.Errorf("proc net: bad local address %q", hostPort)
		}
		addr, err := parseProcAddr(h)
		if err != nil {
			return out, err
		}
		port, err := strconv.ParseUint(p, 16, 16)
		if err != nil {
			return out, fmt.Errorf("proc net: bad port %q", p)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return out, fmt.Errorf("proc net: bad state %q", f[3])
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return out, fmt.Errorf("proc net: bad inode %q", f[9])
		}
		out = append(out, Socket{Addr: addr, Port: uint16(port), State: uint8(st), Inode: inode})
	}
	return out, sc.Err()
}

func parseProcAddr(h string) (netip.Addr, error) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, fmt.Errorf("proc net: bad address %q", h)
	}
	// Each 32-bit word was printed as a host-order integer: turn it back
	// into the bytes that were in memory (network order).
	var raw [16]byte
	for i := 0; i < len(b); i += 4 {
		w := binary.BigEndian.Uint32(b[i:])
		binary.NativeEndian.PutUint32(raw[i:], w)
	}
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(raw[:4])), nil
	}
	return netip.AddrFrom16(raw).Unmap(), nil
}

// Owner is the process holding a socket.
type Owner struct {
	PID  int
	Name string // /proc/PID/comm
	Self bool   // this process
}

// IsCamgate reports whether the owner is camgate (this process, or a
// program whose name starts with "camgate").
func (o Owner) IsCamgate() bool { return o.Self || strings.HasPrefix(o.Name, "camgate") }

func (o Owner) String() string {
	if o.Self {
		return fmt.Sprintf("camgate (this process, pid %d)", o.PID)
	}
	return fmt.Sprintf("%s (pid %d)", o.Name, o.PID)
}

// Index finds sockets and their owners under a /proc root. The
// inode→process map is built once, on first use, by reading every
// process's fd links (only root sees other users' processes).
type Index struct {
	root string
	once sync.Once
	// byInode is written once inside once.Do and only read afterwards.
	byInode map[uint64]Owner
}

// NewIndex returns an Index of the /proc tree at root ("/proc"; tests
// pass a directory of their own).
func NewIndex(root string) *Index { return &Index{root: root} }

// Sockets lists the sockets of proto ("tcp" or "udp"), both families.
// It fails only when neither file can be read.
func (x *Index) Sockets(proto string) ([]Socket, error) {
	var out []Socket
	var firstErr error
	read := 0
	for _, name := range []string{proto, proto + "6"} {
		data, err := os.ReadFile(filepath.Join(x.root, "net", name))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		read++
		s, err := ParseProcNet(data)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, s...)
	}
	if read == 0 {
		return nil, firstErr
	}
	return out, nil
}

// Owner returns the process holding socket inode, if it can be seen.
func (x *Index) Owner(inode uint64) (Owner, bool) {
	x.once.Do(x.build)
	o, ok := x.byInode[inode]
	return o, ok
}

func (x *Index) build() {
	x.byInode = map[uint64]Owner{}
	ents, err := os.ReadDir(x.root)
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(x.root, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var name string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if _, seen := x.byInode[inode]; seen {
				continue
			}
			if name == "" {
				comm, _ := os.ReadFile(filepath.Join(x.root, e.Name(), "comm"))
				name = strings.TrimSpace(string(comm))
			}
			x.byInode[inode] = Owner{PID: pid, Name: name, Self: pid == self}
		}
	}
}

// Bound lists the sockets on port that would receive traffic for addr:
// listening TCP sockets (or unconnected UDP ones) on addr itself or on a
// wildcard address; when addr is a wildcard, every address counts.
func (x *Index) Bound(proto string, addr netip.Addr, port uint16) ([]Socket, error) {
	all, err := x.Sockets(proto)
	if err != nil {
		return nil, err
	}
	var out []Socket
	for _, s := range all {
		if s.Port == port && s.bound(proto, addr) {
			out = append(out, s)
		}
	}
	return out, nil
}

// bound reports whether s is a listening (TCP) or bound, unconnected
// (UDP) socket that overlaps addr.
func (s Socket) bound(proto string, addr netip.Addr) bool {
	want := uint8(StateListen)
	if proto == "udp" {
		want = StateClose
	}
	if s.State != want {
		return false
	}
	return addr.IsUnspecified() || s.Addr.IsUnspecified() || s.Addr == addr.Unmap()
}
