package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// connSet tracks live connections and the goroutines serving them, so
// shutdown can close the one and wait for the other.
type connSet struct {
	wg     sync.WaitGroup
	mu     sync.Mutex // guards following
	conns  map[net.Conn]struct{}
	closed bool
}

// add registers c and its serving goroutine, or reports false (and closes
// c) after closeAll. Adding under mu guarantees every wg.Add happens
// before closeAll, and so before wait.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// done unregisters c when its goroutine ends.
func (s *connSet) done(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll closes every connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// wait waits for the goroutines of every added connection.
func (s *connSet) wait() { s.wg.Wait() }

// serveHold runs the server/SDK port (and SDK-over-TLS): it accepts
// connections and holds them, reading and discarding whatever the client
// sends, until the client leaves or ctx is done. The proprietary protocol
// is out of scope; what matters to camgate is that the port is open.
func (d *Device) serveHold(ctx context.Context, svc Service, ln net.Listener) error {
	if svc == ServiceSDKOverTLS {
		ln = tls.NewListener(ln, d.tlsConfig())
	}
	var conns connSet
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		conns.closeAll()
	})
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		if !conns.add(c) {
			continue
		}
		d.reqs.add(Request{Service: svc, Source: addrPortOf(c.RemoteAddr()), Method: "CONNECT"})
		go func() {
			defer conns.done(c)
			d.holdConn(c)
		}()
	}
	ln.Close()
	conns.closeAll()
	conns.wait()
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// holdConn reads and discards until the connection ends.
func (d *Device) holdConn(c net.Conn) {
	defer c.Close()
	io.Copy(io.Discard, c)
}

// serveWebSocket runs the WebSocket port: any path upgrades to a
// WebSocket that echoes every message back. A real device streams live
// view here after an ISAPI login; the echo is enough to test that a
// gateway carries WebSocket upgrades and frames.
func (d *Device) serveWebSocket(ctx context.Context, ln net.Listener) error {
	var conns connSet
	up := websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// A device does not check Origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          discardLogger(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", d.serverHeader())
			if !websocket.IsWebSocketUpgrade(r) {
				d.reqs.add(Request{Service: ServiceWebSocket, Source: remoteAddr(r), Method: r.Method,
					Path: r.URL.RequestURI(), Status: http.StatusBadRequest})
				http.Error(w, "websocket upgrade required", http.StatusBadRequest)
				return
			}
			ws, err := up.Upgrade(w, r, nil)
			d.reqs.add(Request{Service: ServiceWebSocket, Source: remoteAddr(r), Method: "UPGRADE",
				Path: r.URL.RequestURI(), Status: statusOf(err)})
			if err != nil {
				return
			}
			if !conns.add(ws.NetConn()) {
				return
			}
			defer conns.done(ws.NetConn())
			d.echo(ws)
		}),
	}
	err := serveUntilDone(ctx, srv, ln)
	conns.closeAll()
	conns.wait()
	return err
}

func statusOf(err error) int {
	if err != nil {
		return http.StatusBadRequest
	}
	return http.StatusSwitchingProtocols
}

// echo sends every message back until the peer leaves.
func (d *Device) echo(ws *websocket.Conn) {
	defer ws.Close()
	ws.SetReadLimit(1 << 20)
	for {
		mt, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}
