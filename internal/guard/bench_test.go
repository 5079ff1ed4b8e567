package guard

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// The guard's cost next to the plain forwarder, on loopback:
//
//	go test -run '^$' -bench . -benchtime 3s ./internal/guard
//
// BenchmarkBulk moves 1 MiB HTTP answers over one keep-alive connection
// (MB/s); BenchmarkConns opens a connection per request (ns/op is the
// cost of one short connection). "direct" talks to the device without
// camgate. docs/SECURITY.md has the numbers.

// benchDevice answers "GET /N" with N zero bytes, as fast as it can.
func benchDevice(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	zero := make([]byte, 1<<20)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					closeAfter := false
					for {
						h, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if strings.EqualFold(strings.TrimSpace(h), "connection: close") {
							closeAfter = true
						}
						if h == "\r\n" {
							break
						}
					}
					f := strings.Fields(line)
					n, _ := strconv.Atoi(strings.TrimPrefix(f[1], "/"))
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n)
					for n > 0 {
						k := min(n, len(zero))
						if _, err := c.Write(zero[:k]); err != nil {
							return
						}
						n -= k
					}
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// hostAddr returns one of the host's non-loopback IPv4 addresses; a
// connection from it to 127.0.0.1 stays on the host but is not a loopback
// source.
func hostAddr(b *testing.B) netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap().Is4() && !ip.IsLoopback() {
				return ip.Unmap()
			}
		}
	}
	b.Skip("no non-loopback IPv4 address on this host")
	return netip.Addr{}
}

type benchCase struct {
	name string
	rule *config.Rule // nil: direct to the device
	tls  bool
	// nonLoopback dials from one of the host's other addresses, so the
	// per-source limits (which exempt loopback) are in the path.
	nonLoopback bool
}

func benchCases() []benchCase {
	off := config.GuardOff()
	return []benchCase{
		{name: "direct"},
		{name: "plain", rule: &config.Rule{Name: "plain", Guard: off}},
		{name: "plain-limits", rule: &config.Rule{Name: "limits", Guard: config.Guard{PerIPConnections: 1 << 20, PerIPRate: 1 << 20}}, nonLoopback: true},
		{name: "guard-http", rule: &config.Rule{Name: "guard", Guard: config.Guard{Auth: true, Service: "http"}}},
		{name: "guard-https", rule: &config.Rule{Name: "tls", Guard: config.Guard{Auth: true}, TLS: config.TLS{Mode: "terminate"}}, tls: true},
	}
}

func (bc benchCase) addr(b *testing.B, dev netip.AddrPort) string {
	if bc.rule == nil {
		return dev.String()
	}
	p, err := NewPolicy(Config{StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return startRule(b, p, *bc.rule, dev)
}

func (bc benchCase) dial(b *testing.B, addr string) net.Conn {
	var d net.Dialer
	if bc.nonLoopback {
		src := hostAddr(b)
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if bc.tls {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		return tc
	}
	return c
}

func BenchmarkBulk(b *testing.B) {
	const size = 1 << 20
	dev := benchDevice(b)
	for _, bc := range benchCases() {
		if bc.nonLoopback {
			continue // see BenchmarkCompare
		}
		b.Run(bc.name, func(b *testing.B) {
			addr := bc.addr(b, dev)
			c := bc.dial(b, addr)
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			req := []byte(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: cam\r\n\r\n", size))
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if len(line) == 2 {
						break
					}
				}
				if _, err := io.CopyN(io.Discard, br, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkConns(b *testing.B) {
	dev := benchDevice(b)
	req := []byte("GET /100 HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			addr := bc.addr(b, dev)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := bc.dial(b, addr)
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, c)
				if err != nil || n < 100 {
					b.Fatalf("got %d bytes, %v", n, err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkCompare interleaves the cases round by round (16 MiB of bulk
// and 100 short connections per case per round), so that a busy machine
// slows them all alike, and reports each case's throughput and cost per
// connection as metrics:
//
//	go test -run '^$' -bench Compare -benchtime 20x ./internal/guard
func BenchmarkCompare(b *testing.B) {
	const (
		bulk  = 16 << 20
		conns = 100
	)
	dev := benchDevice(b)
	cases := benchCases()
	type state struct {
		addr    string
		c       net.Conn
		br      *bufio.Reader
		bulkDur time.Duration
		connDur time.Duration
	}
	st := make([]*state, len(cases))
	for i, bc := range cases {
		s := &state{addr: bc.addr(b, dev)}
		s.c = bc.dial(b, s.addr)
		defer s.c.Close()
		s.br = bufio.NewReaderSize(s.c, 64<<10)
		st[i] = s
	}
	bulkReq := []byte(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: cam\r\n\r\n", bulk))
	connReq := []byte("GET /100 HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, bc := range cases {
			s := st[j]
			t0 := time.Now()
			if bc.nonLoopback {
				// Bulk from another address takes another kernel path
				// (no loopback shortcuts); the admission check it exists
				// for runs once per connection, so only conns count.
				goto conns
			}
			if _, err := s.c.Write(bulkReq); err != nil {
				b.Fatal(err)
			}
			for {
				line, err := s.br.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := io.CopyN(io.Discard, s.br, bulk); err != nil {
				b.Fatal(err)
			}
			s.bulkDur += time.Since(t0)
		conns:
			t0 = time.Now()
			for k := 0; k < conns; k++ {
				c := bc.dial(b, s.addr)
				c.Write(connReq)
				if n, err := io.Copy(io.Discard, c); err != nil || n < 100 {
					b.Fatalf("%s: got %d bytes, %v", bc.name, n, err)
				}
				c.Close()
			}
			s.connDur += time.Since(t0)
		}
	}
	for j, bc := range cases {
		s := st[j]
		if s.bulkDur > 0 {
			b.ReportMetric(float64(b.N)*bulk/1e6/s.bulkDur.Seconds(), bc.name+"-MB/s")
		}
		b.ReportMetric(float64(s.connDur.Microseconds())/float64(b.N*conns), bc.name+"-µs/conn")
	}
}
