package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Timeouts of the admin HTTP server: enough for a phone on a poor link,
// short enough that idle or slow clients cannot pile up.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
)

// Running is an admin server accepting connections.
type Running struct {
	// URL is the base URL to show people, such as https://192.0.2.7:8443.
	URL string
	// Addr is the bound address (useful with port 0).
	Addr netip.AddrPort

	srv  *http.Server
	done chan struct{}
}

// Listen binds the admin endpoint described by a (admin.listen) and
// serves s on it until Shutdown. HTTPS uses cert_file/key_file or the
// self-signed certificate kept in the state directory; plain HTTP off
// loopback is served only with insecure_http, and logs a warning. The
// setup URL is logged when there is no account yet.
func Listen(ctx context.Context, s *Server, a config.Admin) (*Running, error) {
	ep, err := a.Endpoint()
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	var tlsConf *tls.Config
	if ep.HTTPS {
		certPath, keyPath, gen := CertPaths(a, s.site.Path(), s.dir)
		cert, made, err := loadCertificate(certPath, keyPath, gen, s.now())
		if err != nil {
			return nil, err
		}
		if made {
			s.log.Info("generated a self-signed certificate for the admin UI; your browser will warn once: "+
				"check that the fingerprint it shows matches", "cert", certPath, "sha256", Fingerprint(cert.Leaf.Raw))
		} else if cert.Leaf != nil {
			s.log.Debug("admin certificate", "cert", certPath, "sha256", Fingerprint(cert.Leaf.Raw), "expires", cert.Leaf.NotAfter)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	} else if !ep.Addr.Addr().IsLoopback() {
		s.log.Warn("the admin UI is served over plain HTTP on a network address (admin.insecure_http: true): "+
			"the password and session cross the network in clear; use HTTPS unless a trusted proxy terminates TLS", "listen", ep.Addr)
	}
	// "tcp" on 0.0.0.0 would open a dual-stack socket; an IPv4 address
	// means IPv4 only, and "::" means both, as for rules.
	network := "tcp"
	if ep.Addr.Addr().Is4() {
		network = "tcp4"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, ep.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("admin UI: %w", err)
	}
	allow := a.AllowPrefixes()
	if len(allow) > 0 {
		s.log.Warn("admin.allow widens the admin UI beyond LAN sources; every address listed can reach its login page",
			"allow", a.Allow)
	}
	ln = newSourceListener(ln, allow, s.sharingActive, s.log)
	bound := ep.Addr
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		bound = netip.AddrPortFrom(ep.Addr.Addr(), ap.Port())
	}
	ep.Addr = bound
	run := &Running{
		URL:  ep.URL(displayAddr()),
		Addr: bound,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           s,
			TLSConfig:         tlsConf,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    64 << 10,
			ConnContext:       markOutsider,
			// TLS handshake noise from scanners belongs at debug level.
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		},
	}
	go run.serve(ln, s.log)
	s.log.Info("admin UI and API listening", "url", run.URL, "listen", bound)
	if tok := s.SetupToken(); tok != "" {
		// The token is in the fragment, which browsers never send to a
		// server, so it stays out of access logs and Referer headers.
		s.log.Warn("no admin account yet: open this one-time setup URL to create it (the token works until the account exists)",
			"setup_url", run.URL+"/setup#token="+tok)
	}
	return run, nil
}

func (run *Running) serve(ln net.Listener, log *slog.Logger) {
	defer close(run.done)
	var err error
	if run.srv.TLSConfig != nil {
		err = run.srv.ServeTLS(ln, "", "")
	} else {
		err = run.srv.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("admin UI stopped", "err", err)
	}
}

// Shutdown stops accepting, lets requests in flight finish until ctx
// ends, then closes what is left.
func (run *Running) Shutdown(ctx context.Context) error {
	err := run.srv.Shutdown(ctx)
	if err != nil {
		run.srv.Close()
	}
	<-run.done
	return err
}

// displayAddr picks the address to print in URLs for a wildcard listen:
// the first non-loopback IPv4 address, else 127.0.0.1.
func displayAddr() netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				ip = ip.Unmap()
				if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
					return ip
				}
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}
