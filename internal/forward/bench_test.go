package forward

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/udpbatch"
)

// The benchmarks run real sockets on loopback, with the client and the
// device in the same process as the relay, so their figures include both
// ends; compare them between builds on one machine, not with the peers
// (that is go run ./bench). See docs/PERFORMANCE.md for results.

var (
	benchRequest  = []byte("GET / HTTP/1.1\r\nHost: camera\r\nConnection: close\r\n\r\n")
	benchResponse = append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 612\r\nConnection: close\r\n\r\n"), bytes.Repeat([]byte("c"), 612)...)
)

// BenchmarkTCPShortConn is the P2 shape: connect, a small request, a
// small answer, the device closes, the client closes. 8 clients at once.
func BenchmarkTCPShortConn(b *testing.B) {
	dev := newDevice(b, func(c *net.TCPConn) {
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err != nil {
			return
		}
		c.Write(benchResponse)
	})
	_, addr := startRule(b, Spec{TargetPorts: []uint16{dev.port}})
	b.SetParallelism(4) // × GOMAXPROCS clients
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				b.Error(err)
				return
			}
			c.Write(benchRequest)
			n := 0
			for {
				k, err := c.Read(buf)
				n += k
				if err != nil {
					break
				}
			}
			c.Close()
			if n != len(benchResponse) {
				b.Errorf("got %d bytes, want %d", n, len(benchResponse))
				return
			}
		}
	})
}

// BenchmarkTCPBulk is the P1 shape: one stream, client → device, 64 MiB per
// operation; the copy loop's throughput is the B/s figure.
func BenchmarkTCPBulk(b *testing.B) {
	const chunk = 128 << 10
	const per = 64 << 20
	var got atomic.Int64
	done := make(chan struct{}, 1)
	dev := newDevice(b, func(c *net.TCPConn) {
		buf := make([]byte, 1<<20)
		for {
			n, err := c.Read(buf)
			if got.Add(int64(n)) >= per {
				got.Store(0)
				done <- struct{}{}
			}
			if err != nil {
				return
			}
		}
	})
	_, addr := startRule(b, Spec{TargetPorts: []uint16{dev.port}})
	c := dial(b, addr)
	src := make([]byte, chunk)
	b.SetBytes(per)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for sent := 0; sent < per; sent += chunk {
			if _, err := c.Write(src); err != nil {
				b.Fatal(err)
			}
		}
		<-done
	}
}

// BenchmarkUDPEcho is the P4 shape: 4 clients keep 64 datagrams each in
// flight through the relay to an echoing device.
func BenchmarkUDPEcho(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(itoa(size), func(b *testing.B) {
			dev := newUDPDevice(b)
			_, addr := startRule(b, Spec{UDP: true, TargetPorts: []uint16{dev.port}})
			const clients, window = 4, 64
			var left atomic.Int64
			left.Store(int64(b.N))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for k := 0; k < clients; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("udp4", addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					setBuffers(c.(*net.UDPConn))
					msg := make([]byte, size)
					buf := make([]byte, 2048)
					inflight := 0
					for {
						for inflight < window && left.Add(-1) >= 0 {
							c.Write(msg)
							inflight++
						}
						if inflight == 0 {
							return
						}
						c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
						if _, err := c.Read(buf); err != nil {
							inflight = 0 // lost: count it done
							continue
						}
						inflight--
					}
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkUDPSessionLookup is the per-batch table lookup on the UDP
// client path: one lock, a batch of netip.AddrPort keys. It must not
// allocate.
func BenchmarkUDPSessionLookup(b *testing.B) {
	u := &udpRelay{sessions: map[netip.AddrPort]*udpSession{}}
	var keys [udpbatch.Size]netip.AddrPort
	for i := 0; i < 4096; i++ {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(5000+i))
		u.sessions[ap] = &udpSession{client: ap}
		if i < udpbatch.Size {
			keys[i] = ap
		}
	}
	var sess [udpbatch.Size]*udpSession
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u.mu.Lock()
		for j := range keys {
			sess[j] = u.sessions[keys[j]]
		}
		u.mu.Unlock()
	}
	if sess[0] == nil {
		b.Fatal("lookup missed")
	}
}

// BenchmarkAdmitPath is what every accepted connection does under shared
// state before its own goroutine runs: the gateway cap, the rule cap,
// the rule's connection table; in parallel, to show contention.
func BenchmarkAdmitPath(b *testing.B) {
	r := &Rule{conns: map[uint64]*Conn{}, stats: &Stats{}, spec: Spec{Global: NewLimit(0)}}
	var ids atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := &Conn{ID: ids.Add(1), rule: r}
			if !r.spec.Global.acquire() || !r.limit.acquire() {
				b.Fatal("cap")
			}
			r.track(c)
			r.untrack(c)
			r.limit.release()
			r.spec.Global.release()
		}
	})
}
