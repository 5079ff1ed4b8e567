package forward

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestBatchBuildRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lens   []int
		maxSeg int
		want   []int // datagrams per message
	}{
		{"equal sizes share one message", []int{64, 64, 64, 64}, gsoMaxSeg4, []int{4}},
		{"a shorter datagram ends a run", []int{64, 64, 10, 64}, gsoMaxSeg4, []int{3, 1}},
		{"a longer datagram starts a run", []int{64, 100, 100}, gsoMaxSeg4, []int{1, 2}},
		{"offload off", []int{64, 64, 64}, 0, []int{1, 1, 1}},
		{"above the MTU stays single", []int{9000, 9000}, gsoMaxSeg4, []int{1, 1}},
		{"empty datagrams stay single", []int{0, 0, 64, 0}, gsoMaxSeg4, []int{1, 1, 1, 1}},
		{"one datagram", []int{1400}, gsoMaxSeg4, []int{1}},
		{"a run stays within 64 KiB", slices.Repeat([]int{1400}, udpBatch), gsoMaxSeg4,
			runs(udpBatch, gsoMaxRun/1400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := batches.get()
			if err != nil {
				t.Fatal(err)
			}
			defer batches.put(b)
			for i, l := range tc.lens {
				b.lens[i] = l
				b.queue(i)
			}
			nm := b.build(0, nil, 0, tc.maxSeg)
			if got := b.cnt[:nm]; !slices.Equal(got, tc.want) {
				t.Fatalf("got runs %v, want %v", got, tc.want)
			}
			b.nq = 0
		})
	}
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ap     string
		family int
	}{
		{"192.0.2.1:554", unix.AF_INET},
		{"192.0.2.1:554", unix.AF_INET6}, // IPv4-mapped on a dual-stack socket
		{"[2001:db8::1]:8000", unix.AF_INET6},
	} {
		ap := netip.MustParseAddrPort(tc.ap)
		var sa sockaddr
		encodeSockaddr(&sa, ap, tc.family)
		if got := decodeSockaddr(&sa); got != ap {
			t.Errorf("%s in family %d: got %s back, want %s", tc.ap, tc.family, got, ap)
		}
	}
}

// burstEcho sends n equal-size datagrams through addr and checks they all
// come back, in order.
func burstEcho(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	setBuffers(c.(*net.UDPConn))
	for i := 0; i < n; i++ {
		c.Write([]byte(fmt.Sprintf("%05d", i)))
	}
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := fmt.Sprintf("%05d", i); string(buf[:k]) != want {
			t.Fatalf("got %q, want %q", buf[:k], want)
		}
	}
}

// TestUDPOffloadKeptOnLoopback checks that segmentation offload is
// accepted on loopback (so the benchmark measures it) in both directions.
func TestUDPOffloadKeptOnLoopback(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	burstEcho(t, addr, 300)
	u := r.udp[0]
	if u.gso.maxSeg.Load() == 0 {
		t.Error("offload turned off on the external socket")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.sessions {
		if s.gso.maxSeg.Load() == 0 {
			t.Error("offload turned off on the device socket")
		}
	}
}

// TestUDPOffloadFallback makes the kernel refuse offload on the external
// socket (SO_NO_CHECK does) and checks that nothing is lost: the refused
// run is re-sent datagram by datagram and offload stays off.
func TestUDPOffloadFallback(t *testing.T) {
	dev := newUDPDevice(t)
	r, addr := startRule(t, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
	u := r.udp[0]
	u.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			t.Skipf("SO_NO_CHECK: %v", err)
		}
	})
	burstEcho(t, addr, 300)
	if got := u.gso.maxSeg.Load(); got != 0 {
		t.Errorf("got offload segment limit %d after a refusal, want 0 (off)", got)
	}
	if d := r.stats.Dropped.Load(); d != 0 {
		t.Errorf("got %d drops, want 0", d)
	}
}

// runs splits n datagrams into runs of at most per.
func runs(n, per int) []int {
	var out []int
	for ; n > 0; n -= per {
		out = append(out, min(n, per))
	}
	return out
}

// FuzzSockaddr: decoding any 28 bytes must not panic, and whatever decodes
// to a valid address encodes back to the same address.
func FuzzSockaddr(f *testing.F) {
	for _, tc := range []struct {
		ap     string
		family int
	}{
		{"192.0.2.1:554", unix.AF_INET},
		{"192.0.2.1:554", unix.AF_INET6},
		{"[2001:db8::1]:8000", unix.AF_INET6},
	} {
		var sa sockaddr
		encodeSockaddr(&sa, netip.MustParseAddrPort(tc.ap), tc.family)
		f.Add(sa[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var sa sockaddr
		copy(sa[:], b)
		ap := decodeSockaddr(&sa)
		if !ap.IsValid() {
			return
		}
		family := unix.AF_INET6
		if ap.Addr().Is4() {
			family = unix.AF_INET
		}
		var again sockaddr
		encodeSockaddr(&again, ap, family)
		if got := decodeSockaddr(&again); got != ap {
			t.Fatalf("got %v after a round trip, want %v", got, ap)
		}
	})
}

// TestBatchRecvManySenders receives one batch from many sockets and checks
// every slot's sender and payload. It is the test that catches a message
// header laid out for the wrong word size: from the second slot on, the
// kernel and the package then disagree on where each header starts (run
// it with GOARCH=386 or arm, see scripts/test.sh).
func TestBatchRecvManySenders(t *testing.T) {
	if got, want := unsafe.Sizeof(mmsghdr{}), uintptr(unix.SizeofMmsghdr); got != want {
		t.Fatalf("got mmsghdr of %d bytes, want %d", got, want)
	}
	if got, want := int(unsafe.Sizeof(segCmsg{})), unix.CmsgSpace(2); got != want {
		t.Fatalf("got UDP_SEGMENT control message of %d bytes, want CMSG_SPACE(2) = %d", got, want)
	}
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	want := map[netip.AddrPort]string{}
	for i := 0; i < udpBatch/2; i++ {
		c, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := fmt.Sprintf("sender %02d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		want[c.LocalAddr().(*net.UDPAddr).AddrPort()] = msg
	}
	rc, _ := rx.SyscallConn()
	got := map[netip.AddrPort]string{}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		rx.SetReadDeadline(deadline)
		b, n, err := recvBatch(rc)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got[b.addr(i)] = string(b.mem[i*maxDatagram : i*maxDatagram+b.lens[i]])
		}
		batches.put(b)
	}
	for ap, msg := range want {
		if got[ap] != msg {
			t.Errorf("sender %s: got %q, want %q", ap, got[ap], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d senders, want %d: %v", len(got), len(want), got)
	}
}
