package nft

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netlab"
)

// lanWeb serves, in lan, a page that names the client's address as the
// device saw it.
func lanWeb(t *testing.T, l *netlab.Lab, port int) {
	t.Helper()
	ln, err := l.Listen(l.LAN, "tcp", fmt.Sprintf("%s:%d", netlab.LANAddr, port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client %s", r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func get(l *netlab.Lab, ns, laddr, url string) (string, error) {
	c, err := l.Dial(ns, "tcp", laddr, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(c)
	return string(b), err
}

func webRule(name string, ext, in uint16) Rule {
	return Rule{Name: name, TCP: true, Listen: netip.IPv4Unspecified(), First: ext, Last: ext,
		Target: netlab.LANAddr, TargetFirst: in}
}

func TestTableInGateway(t *testing.T) {
	l := netlab.New(t, netlab.Options{Forwarding: true})
	lanWeb(t, l, 8082)
	var tbl *Table
	inGW := func(fn func() error) {
		t.Helper()
		if err := l.Do(l.GW, fn); err != nil {
			t.Fatal(err)
		}
	}
	inGW(func() (err error) { tbl, err = Open(Config{}); return })
	defer l.Do(l.GW, tbl.Close)

	var placed map[string]Placement
	inGW(func() (err error) { placed, err = tbl.Apply([]Rule{webRule("web", 18082, 8082)}); return })
	if p := placed["web"]; p.Masquerade {
		t.Fatalf("got masquerade (%s), want none: gw is the lan's gateway", p.Why)
	}
	body, err := get(l, l.WAN, "", fmt.Sprintf("http://%s:18082/", netlab.GWWANAddr))
	if err != nil || !strings.Contains(body, "client "+netlab.WANAddr.String()+":") {
		t.Fatalf("got %q, %v; want the page naming the viewer's own address %s", body, err, netlab.WANAddr)
	}

	t.Run("hairpin", func(t *testing.T) {
		// A LAN host uses the public address: reflected, so it must be
		// masqueraded to gw or the device would answer it directly.
		body, err := get(l, l.LAN, netlab.LANHost(1).String()+":0", fmt.Sprintf("http://%s:18082/", netlab.GWWANAddr))
		if err != nil || !strings.Contains(body, "client "+netlab.GWLANAddr.String()+":") {
			t.Fatalf("got %q, %v; want the page through the reflection", body, err)
		}
	})

	t.Run("deny and allow", func(t *testing.T) {
		r := webRule("web", 18082, 8082)
		r.Deny = []netip.Prefix{netip.MustParsePrefix(netlab.WANClient(1).String() + "/32")}
		r.Allow = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("198.19.0.0/24")}
		inGW(func() (err error) { _, err = tbl.Apply([]Rule{r}); return })
		if _, err := get(l, l.WAN, netlab.WANClient(1).String()+":0", fmt.Sprintf("http://%s:18082/", netlab.GWWANAddr)); err == nil {
			t.Fatal("a denied source got through")
		}
		if body, err := get(l, l.WAN, netlab.WANClient(2).String()+":0", fmt.Sprintf("http://%s:18082/", netlab.GWWANAddr)); err != nil {
			t.Fatalf("an allowed source: got %q, %v", body, err)
		}
		var st map[string]Stats
		inGW(func() (err error) { st, err = tbl.Stats(); return })
		if s := st["web"]; s.Refused == 0 || s.Total == 0 || s.BytesOut == 0 {
			t.Fatalf("stats %+v: want refused, total and bytes counted", s)
		}
	})

	t.Run("per-source connection meter", func(t *testing.T) {
		r := webRule("web", 18082, 8082)
		r.PerIPConns = 2
		inGW(func() (err error) { _, err = tbl.Apply([]Rule{r}); return })
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; i < 2; i++ {
			c, err := l.Dial(l.WAN, "tcp", "", fmt.Sprintf("%s:18082", netlab.GWWANAddr), 2*time.Second)
			if err != nil {
				t.Fatalf("connection %d under the cap: %v", i, err)
			}
			held = append(held, c)
		}
		if c, err := l.Dial(l.WAN, "tcp", "", fmt.Sprintf("%s:18082", netlab.GWWANAddr), time.Second); err == nil {
			c.Close()
			t.Fatal("a third connection from one source got through a cap of 2")
		}
		var st map[string]Stats
		inGW(func() (err error) { st, err = tbl.Stats(); return })
		if got := st["web"].Active; got < 2 {
			t.Fatalf("active %d, want the 2 held connections from conntrack", got)
		}
	})

	t.Run("removing a rule ends its connections", func(t *testing.T) {
		inGW(func() (err error) {
			_, err = tbl.Apply([]Rule{webRule("web", 18082, 8082), webRule("other", 18085, 8082)})
			return
		})
		keep, err := l.Dial(l.WAN, "tcp", "", fmt.Sprintf("%s:18085", netlab.GWWANAddr), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
		cut, err := l.Dial(l.WAN, "tcp", "", fmt.Sprintf("%s:18082", netlab.GWWANAddr), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer cut.Close()
		inGW(func() (err error) { _, err = tbl.Apply([]Rule{webRule("other", 18085, 8082)}); return })
		for name, c := range map[string]net.Conn{"kept": keep, "removed": cut} {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
			b, _ := io.ReadAll(c)
			if got := strings.Contains(string(b), "client "); got != (name == "kept") {
				t.Errorf("%s rule's connection: got %q after the apply", name, b)
			}
		}
	})

	t.Run("udp range mapped one to one", func(t *testing.T) {
		pc, err := l.ListenPacket(l.LAN, "udp4", netlab.LANAddr.String()+":9001")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(fmt.Sprintf("%s from %s", buf[:n], from)), from)
			}
		}()
		r := Rule{Name: "udp-range", TCP: true, UDP: true, Listen: netip.IPv4Unspecified(), First: 19000, Last: 19002,
			Target: netlab.LANAddr, TargetFirst: 9000, PerIPUDP: 4}
		inGW(func() (err error) { _, err = tbl.Apply([]Rule{webRule("other", 18085, 8082), r}); return })
		c, err := l.Dial(l.WAN, "udp4", "", fmt.Sprintf("%s:19001", netlab.GWWANAddr), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 1500)
		var got string
		for try := 0; try < 5 && got == ""; try++ {
			c.Write([]byte("ping"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err == nil {
				got = string(buf[:n])
			}
		}
		if !strings.HasPrefix(got, "ping from "+netlab.WANAddr.String()+":") {
			t.Fatalf("got %q through 19001, want the echo of port 9001 naming the viewer", got)
		}
	})

	t.Run("failed transaction changes nothing", func(t *testing.T) {
		before := l.Exec(l.GW, "nft", "list", "table", "inet", TableName)
		bad := webRule(strings.Repeat("x", 300), 18083, 8082) // names too long for the kernel
		err := l.Do(l.GW, func() error { _, err := tbl.Apply([]Rule{webRule("web", 18082, 8082), bad}); return err })
		if err == nil {
			t.Fatal("got no error for names the kernel refuses")
		}
		if after := l.Exec(l.GW, "nft", "list", "table", "inet", TableName); after != before {
			t.Fatalf("the table changed after a failed transaction:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("stale table reclaimed", func(t *testing.T) {
		var second *Table
		inGW(func() (err error) { second, err = Open(Config{}); return })
		inGW(func() (err error) { _, err = second.Apply([]Rule{webRule("web2", 18084, 8082)}); return })
		out := l.Exec(l.GW, "nft", "list", "tables")
		if n := strings.Count(out, "table inet "+TableName); n != 1 {
			t.Fatalf("got %d camgate tables, want 1:\n%s", n, out)
		}
		rs := l.Exec(l.GW, "nft", "list", "ruleset")
		if strings.Contains(rs, "web-new") || !strings.Contains(rs, "web2-new") {
			t.Fatalf("the old rules were not reclaimed:\n%s", rs)
		}
		inGW(second.Close)
		if rs := l.Exec(l.GW, "nft", "list", "ruleset"); strings.Contains(rs, TableName) {
			t.Fatalf("table left after Close:\n%s", rs)
		}
	})
}
