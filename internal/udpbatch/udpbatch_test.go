package udpbatch

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
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
		{"a run stays within 64 KiB", slices.Repeat([]int{1400}, Size), gsoMaxSeg4,
			runs(Size, gsoMaxRun/1400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := batches.get()
			if err != nil {
				t.Fatal(err)
			}
			defer batches.put(b)
			for i, l := range tc.lens {
				b.lens[i] = l
				b.Queue(i)
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
	for i := 0; i < Size/2; i++ {
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
		b, n, err := Recv(rc)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got[b.Addr(i)] = string(b.Data(i))
		}
		b.Put()
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

// loopbackUDP binds a UDP socket on 127.0.0.1, closed when the test ends.
func loopbackUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestBatchSendTo relays a burst through Recv and Send to an address (the
// unconnected socket's case, with offload) and checks it arrives whole and
// in order.
func TestBatchSendTo(t *testing.T) {
	in, out, sink := loopbackUDP(t), loopbackUDP(t), loopbackUDP(t)
	src, err := net.DialUDP("udp4", nil, in.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// The whole burst waits in the buffers (the kernel caps them at
	// rmem_max).
	in.SetReadBuffer(1 << 20)
	sink.SetReadBuffer(1 << 20)
	inRC, _ := in.SyscallConn()
	outRC, _ := out.SyscallConn()
	family, err := Family(outRC)
	if err != nil || family != unix.AF_INET {
		t.Fatalf("family %d, %v; want AF_INET", family, err)
	}
	var to Sockaddr
	to.Set(sink.LocalAddr().(*net.UDPAddr).AddrPort(), family)
	if got := to.AddrPort(); got != sink.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("Sockaddr holds %s", got)
	}
	g := NewGSO(family)
	const n = 100
	for i := 0; i < n; i++ {
		src.Write(fmt.Appendf(nil, "%04d%s", i, make([]byte, 1000)))
	}
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	for moved := 0; moved < n; {
		b, k, err := Recv(inRC)
		if err != nil {
			t.Fatalf("after %d: %v", moved, err)
		}
		for i := 0; i < k; i++ {
			b.Queue(i)
		}
		sent, dropped, err := b.Send(outRC, &to, g)
		b.Put()
		if err != nil || dropped != 0 || sent != k*1004 {
			t.Fatalf("sent %d bytes, dropped %d, %v; want %d, 0", sent, dropped, err, k*1004)
		}
		moved += k
	}
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		sink.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, from, err := sink.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := fmt.Sprintf("%04d", i); k != 1004 || string(buf[:4]) != want || from != out.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("got %d bytes %q from %s, want 1004 bytes %q from the out socket", k, buf[:4], from, want)
		}
	}
	if g.MaxSeg() == 0 {
		t.Error("offload refused on loopback")
	}
}

// BenchmarkBatchRecvSend is the UDP copy loop without the relay: a batch
// read with recvmmsg and written on with sendmmsg (and offload), per
// datagram.
func BenchmarkBatchRecvSend(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			in, sink := loopbackUDP(b), loopbackUDP(b)
			in.SetReadBuffer(1 << 20)
			sink.SetReadBuffer(1 << 20)
			go drain(sink)
			out, err := net.DialUDP("udp4", nil, sink.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			src, err := net.DialUDP("udp4", nil, in.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			inRC, _ := in.SyscallConn()
			outRC, _ := out.SyscallConn()
			g := NewGSO(unix.AF_INET)
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for moved := 0; moved < b.N; {
				for k := 0; k < Size; k++ {
					src.Write(msg)
				}
				for got := 0; got < Size; {
					bt, n, err := Recv(inRC)
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < n; i++ {
						bt.Queue(i)
					}
					bt.Send(outRC, nil, g)
					bt.Put()
					got += n
				}
				moved += Size
			}
		})
	}
}

// drain reads the benchmark's sink until it is closed.
func drain(c *net.UDPConn) {
	buf := make([]byte, MaxDatagram)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
