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
