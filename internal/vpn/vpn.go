// Package vpn is camgate's built-in WireGuard server: phones and laptops
// join with a QR code and reach the cameras they are allowed, and nothing
// else, without any camera port open to the internet.
//
// It runs userspace WireGuard (golang.zx2c4.com/wireguard) over a
// userspace TCP/IP stack (gVisor's netstack), so it needs no kernel
// module, no TUN device and no privilege beyond binding its UDP port.
// camgate terminates the tunnel itself: a peer's TCP connection or UDP
// flow to a device address ends in the netstack, passes the peer's access
// list, and is dialled again from the host to the device.
//
// Guard: a TCP connection to a device port that a rule forwards goes to
// that rule (Config.Rules): its admission, its HTTP/RTSP/ONVIF guard
// (exploit filter, login judging, address rewriting) and its RTSP relay
// run on it as on an internet client's, and it is listed and counted with
// the rule's connections. The connection handed over is a *TunnelConn,
// which can bind UDP ports at the device's address inside the tunnel, so
// the RTSP relay sends a peer's RTP over UDP from the address and ports
// the player expects. Any other allowed port is relayed as it is, after
// the admission check of a rule forwarding there (Config.Admit).
//
// State: the server key (vpn/server.key) and the peers (vpn/peers.json)
// live in the state directory, mode 0600, written atomically. Adding,
// removing and expiring peers takes effect at once, without a restart;
// a removed peer's tunnel and connections are cut immediately.
//
// Non-goals: routing peers to the LAN at large or to the internet, peer
// to peer traffic, IPv6 inside the tunnel, DNS.
package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/camgate/camgate/internal/config"
)

// Config configures a Server.
type Config struct {
	// StateDir holds vpn/server.key and vpn/peers.json. Required.
	StateDir string
	// Logger receives peer changes and connection errors. Nil discards.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// DialTimeout bounds connecting to a device. 0 means 5 s.
	DialTimeout time.Duration
	// AnyPort listens on a free UDP port instead of vpn.listen_port, for
	// tests that run beside each other. Default false.
	AnyPort bool
	// Admit, if non-nil, is asked before a peer's TCP connection or UDP
	// flow to a device is served, with the peer's tunnel address as the
	// source: cmd/camgate answers with the admission check (access lists,
	// per-source limits, bans) of the rule that forwards to that device
	// port, so a peer meets the same guard as an internet client. It
	// returns a function to call when the connection ends, or an error to
	// refuse (counted as refused for the peer). Nil admits whatever the
	// peer's access list allows.
	Admit func(src, dst netip.AddrPort, proto string) (release func(), err error)
	// Rules, if non-nil, serves a peer's TCP connection with the rule
	// that forwards to its destination, guard and all (see Rules). Nil,
	// or a connection it does not take, is relayed after Admit.
	Rules Rules
}

// Rules serves peers' TCP connections with camgate's forwarding rules, so
// that a peer meets the same guard as an internet client: admission, the
// HTTP/RTSP/ONVIF reader with its login judging, exploit filter and
// address rewriting, and the rule's counters and connection list.
// cmd/camgate implements it with gateway.Forwarder and forward.Rule.Serve.
type Rules interface {
	// ServeTCP serves a peer's connection from src (its tunnel address)
	// to the device port dst, as the rule forwarding there would serve
	// one it accepted, and returns once it has ended. It calls accept
	// (at most once, after admission: a refused peer's SYN gets a reset)
	// to complete the peer's handshake and get the connection, a
	// *TunnelConn. handled is false, without accept having
	// been called, when no rule serves dst this way: the server then
	// relays the connection itself. err is non-nil when the rule refused
	// the connection; it is counted against the peer.
	ServeTCP(src, dst netip.AddrPort, accept func() (net.Conn, error)) (handled bool, err error)
}

// Errors callers branch on.
var (
	ErrNoPeer     = errors.New("no such peer")
	ErrPeerExists = errors.New("peer already exists")
)

// Server is the WireGuard endpoint with its peers. Its methods are safe
// for concurrent use.
type Server struct {
	log     *slog.Logger
	dir     string
	now     func() time.Time
	dialTO  time.Duration
	anyPort bool
	admit   func(src, dst netip.AddrPort, proto string) (func(), error)
	rules   Rules
	key     Key
	tun     *netTUN
	dev     *device.Device
	filter  filter
	wake    chan struct{}
	conns   connSet
	relays  sync.WaitGroup
	closeMu sync.Once
	probes  probeSet // check's short-lived probe identities (probe.go)

	mu       sync.Mutex // guards following
	cfg      config.VPN
	devices  map[string]config.Device
	peers    []Peer
	active   map[Key]bool // peers configured in the WireGuard device
	acls     map[netip.Addr]*peerACL
	closed   bool
	publicIP string
}

// New loads (or creates) the server key and the peers, binds the UDP
// port and brings the tunnel up.
func New(c Config, cfg *config.Config) (*Server, error) {
	if c.StateDir == "" {
		panic("vpn: Config.StateDir is required")
	}
	s := &Server{
		log:     c.Logger,
		dir:     filepath.Join(c.StateDir, "vpn"),
		now:     c.Now,
		dialTO:  c.DialTimeout,
		anyPort: c.AnyPort,
		admit:   c.Admit,
		rules:   c.Rules,
		wake:    make(chan struct{}, 1),
		active:  map[Key]bool{},
		acls:    map[netip.Addr]*peerACL{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "vpn")
	if s.now == nil {
		s.now = time.Now
	}
	if s.dialTO <= 0 {
		s.dialTO = 5 * time.Second
	}
	s.conns.m = map[netip.Addr]map[io.Closer]struct{}{}
	key, err := loadOrCreateKey(filepath.Join(s.dir, "server.key"))
	if err != nil {
		return nil, err
	}
	s.key = key
	peers, err := loadPeers(s.peersPath())
	if err != nil {
		return nil, err
	}
	s.peers = peers
	if s.tun, err = newNetTUN(&s.filter); err != nil {
		return nil, err
	}
	s.startForwarders()
	s.dev = device.NewDevice(s.tun, conn.NewDefaultBind(), &device.Logger{
		Verbosef: func(format string, args ...any) { s.log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { s.log.Debug(fmt.Sprintf(format, args...)) },
	})
	s.cfg = cfg.VPN
	s.publicIP = cfg.PublicIP
	s.devices = devicesByName(cfg)
	port := cfg.VPN.Port()
	if c.AnyPort {
		port = 0
	}
	if err := s.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", key.hex(), port)); err != nil {
		s.dev.Close()
		return nil, fmt.Errorf("vpn: listen on udp port %d: %w", cfg.VPN.Port(), err)
	}
	s.mu.Lock()
	err = s.syncLocked()
	s.mu.Unlock()
	if err == nil {
		err = s.dev.Up()
	}
	if err != nil {
		s.dev.Close()
		return nil, fmt.Errorf("vpn: %w", err)
	}
	s.log.Info("vpn listening", "port", cfg.VPN.Port(), "network", cfg.VPN.Prefix(), "peers", len(peers), "public_key", key.Public())
	return s, nil
}

func (s *Server) peersPath() string { return filepath.Join(s.dir, "peers.json") }

// PublicKey returns the server's public key.
func (s *Server) PublicKey() Key { return s.key.Public() }

// Port returns the UDP port the server listens on.
func (s *Server) Port() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Port()
}

func devicesByName(cfg *config.Config) map[string]config.Device {
	m := map[string]config.Device{}
	for _, d := range cfg.Devices {
		m[d.Name] = d
	}
	return m
}

// Apply takes a new config: the devices' addresses (so access lists
// follow a device that moved) and the listen port. A changed tunnel range
// applies to peers added afterwards.
func (s *Server) Apply(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if cfg.VPN.Port() != s.cfg.Port() && !s.anyPort {
		if err := s.dev.IpcSet(fmt.Sprintf("listen_port=%d\n", cfg.VPN.Port())); err != nil {
			return fmt.Errorf("vpn: listen on udp port %d: %w", cfg.VPN.Port(), err)
		}
	}
	s.cfg = cfg.VPN
	s.publicIP = cfg.PublicIP
	s.devices = devicesByName(cfg)
	return s.syncLocked()
}

// syncLocked brings the WireGuard device and the filter in line with the
// peer list at the current time: expired peers leave the device (so they
// can no longer complete a handshake), the others are (re)added.
func (s *Server) syncLocked() error {
	now := s.now()
	var b strings.Builder
	want := map[Key]bool{}
	acls := map[netip.Addr]*peerACL{}
	for i := range s.peers {
		p := &s.peers[i]
		if p.Expired(now) {
			continue
		}
		want[p.PublicKey] = true
		if !s.active[p.PublicKey] {
			fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\nallowed_ip=%s/32\n", p.PublicKey.hex(), p.Address)
		}
		acl := &peerACL{name: p.Name, refused: new(atomic.Uint64), allowed: map[netip.Addr]bool{}}
		if old := s.acls[p.Address]; old != nil && old.name == p.Name {
			acl.refused = old.refused // counters outlive a table swap
		}
		for _, d := range p.Allow {
			if a, ok := s.deviceAddrLocked(d); ok {
				acl.allowed[a] = true
			}
		}
		acls[p.Address] = acl
	}
	var gone []netip.Addr
	for k := range s.active {
		if !want[k] {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.hex())
		}
	}
	for a := range s.acls {
		if acls[a] == nil {
			gone = append(gone, a)
		}
	}
	// The filter first: from here on the peer's packets are dropped, even
	// before WireGuard forgets its key.
	s.acls = acls
	s.filter.set(aclTable(acls))
	for _, a := range gone {
		s.conns.closePeer(a)
	}
	if b.Len() > 0 {
		if err := s.dev.IpcSet(b.String()); err != nil {
			return fmt.Errorf("configure wireguard peers: %w", err)
		}
	}
	s.active = want
	return nil
}

// deviceAddrLocked resolves a device name to its IPv4 address. A device
// given by host name is resolved now (access lists hold addresses).
func (s *Server) deviceAddrLocked(name string) (netip.Addr, bool) {
	d, ok := s.devices[name]
	if !ok {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(d.Address); err == nil {
		return a.Unmap(), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", d.Address)
	if err != nil || len(as) == 0 {
		s.log.Warn("device address does not resolve; peers allowed it cannot reach it", "device", name, "address", d.Address, "err", err)
		return netip.Addr{}, false
	}
	return as[0].Unmap(), true
}

// Run expires peers on time until ctx is done or the server closes.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if err := s.syncLocked(); err != nil {
			s.log.Warn("cannot expire peers", "err", err)
		}
		next := s.nextExpiryLocked()
		s.mu.Unlock()
		t.Reset(next)
	}
}

// nextExpiryLocked returns how long until the next peer expires, capped
// at a minute so that a clock step is noticed.
func (s *Server) nextExpiryLocked() time.Duration {
	now, d := s.now(), time.Minute
	for i := range s.peers {
		p := &s.peers[i]
		if !p.Expires.IsZero() && p.Expires.After(now) && p.Expires.Sub(now) < d {
			d = p.Expires.Sub(now)
		}
	}
	return d + time.Millisecond
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// AddRequest describes a new peer.
type AddRequest struct {
	// Name is the peer's name. Required.
	Name string `json:"name"`
	// Allow names the devices the peer may reach. At least one.
	Allow []string `json:"allow"`
	// Expires is when the peer stops working; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Endpoint is host[:port] for the peer's config. Empty means
	// vpn.endpoint, then public_ip.
	Endpoint string `json:"endpoint,omitempty"`
}

// ValidationError is a refused AddRequest; Field names what is wrong.
type ValidationError struct {
	Field, Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Add creates a peer with a fresh key pair and returns it with its
// wg-quick config, which holds the private key: show it once, it is not
// kept.
func (s *Server) Add(req AddRequest) (Peer, string, error) {
	if err := ValidName(req.Name); err != nil {
		return Peer{}, "", &ValidationError{"name", err.Error()}
	}
	if len(req.Allow) == 0 {
		return Peer{}, "", &ValidationError{"allow", "name at least one device the peer may reach"}
	}
	if len(req.Allow) > maxAllow {
		return Peer{}, "", &ValidationError{"allow", fmt.Sprintf("at most %d devices", maxAllow)}
	}
	if !req.Expires.IsZero() && !req.Expires.After(s.now()) {
		return Peer{}, "", &ValidationError{"expires", "the expiry is in the past"}
	}
	priv, err := newPrivateKey()
	if err != nil {
		return Peer{}, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Peer{}, "", net.ErrClosed
	}
	endpoint := s.cfg.EndpointFor(s.publicIP)
	if req.Endpoint != "" {
		// The same check as vpn.endpoint in camgate.yaml: an IP address or
		// a host name, and a port; nothing that could add a line to the
		// peer's config.
		v := config.VPN{Endpoint: req.Endpoint, ListenPort: s.cfg.Port()}
		if err := (&config.Config{Version: config.CurrentVersion, VPN: v}).Validate(); err != nil {
			return Peer{}, "", &ValidationError{"endpoint", fmt.Sprintf("%q is not host[:port]", req.Endpoint)}
		}
		endpoint = v.EndpointFor("")
	}
	if endpoint == "" {
		return Peer{}, "", &ValidationError{"endpoint", "camgate does not know the address phones should dial: set vpn.endpoint (or public_ip) in camgate.yaml, or give --endpoint"}
	}
	allow := slices.Clone(req.Allow)
	slices.Sort(allow)
	allow = slices.Compact(allow)
	var addrs []netip.Addr
	for _, d := range allow {
		a, ok := s.deviceAddrLocked(d)
		if !ok {
			return Peer{}, "", &ValidationError{"allow", fmt.Sprintf("%q is not a device camgate knows; add it with `camgate device add` (known: %s)", d, strings.Join(s.deviceNamesLocked(), ", "))}
		}
		addrs = append(addrs, a)
	}
	if slices.ContainsFunc(s.peers, func(p Peer) bool { return p.Name == req.Name }) {
		return Peer{}, "", fmt.Errorf("peer %q: %w", req.Name, ErrPeerExists)
	}
	addr, err := freeAddress(s.cfg.Prefix(), s.peers)
	if err != nil {
		return Peer{}, "", err
	}
	p := Peer{Name: req.Name, PublicKey: priv.Public(), Address: addr, Allow: allow, Expires: req.Expires.UTC(), Created: s.now().UTC()}
	peers := append(slices.Clone(s.peers), p)
	if err := savePeers(s.peersPath(), peers); err != nil {
		return Peer{}, "", err
	}
	s.peers = peers
	if err := s.syncLocked(); err != nil {
		return Peer{}, "", err
	}
	s.poke()
	s.log.Info("vpn peer added", "peer", p.Name, "address", p.Address, "allow", p.Allow, "expires", p.Expires)
	conf := wgQuick{
		PrivateKey: priv, Address: addr, ServerKey: s.key.Public(), Endpoint: endpoint, Allowed: addrs,
	}
	return clonePeer(p), conf.String(), nil
}

func (s *Server) deviceNamesLocked() []string {
	var names []string
	for n := range s.devices {
		names = append(names, n)
	}
	slices.Sort(names)
	if names == nil {
		return []string{"none"}
	}
	return names
}

// Remove deletes a peer: its tunnel and connections are cut at once.
func (s *Server) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	i := slices.IndexFunc(s.peers, func(p Peer) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("peer %q: %w", name, ErrNoPeer)
	}
	peers := slices.Delete(slices.Clone(s.peers), i, i+1)
	if err := savePeers(s.peersPath(), peers); err != nil {
		return err
	}
	s.peers = peers
	s.log.Info("vpn peer removed", "peer", name)
	return s.syncLocked()
}

// PeerStatus is a peer with its live WireGuard counters.
type PeerStatus struct {
	Peer
	// Expired is true once Expires has passed.
	Expired bool `json:"expired"`
	// LastHandshake is the last completed handshake; zero if none.
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	// Endpoint is where the peer's packets last came from.
	Endpoint string `json:"endpoint,omitempty"`
	// RxBytes and TxBytes count tunnel bytes from and to the peer.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
	// Refused counts packets the peer sent that its access list dropped.
	Refused uint64 `json:"refused"`
}

// Status is the server's state for listings.
type Status struct {
	PublicKey Key          `json:"public_key"`
	Port      uint16       `json:"listen_port"`
	Network   netip.Prefix `json:"network"`
	Endpoint  string       `json:"endpoint,omitempty"`
	// Refused counts every packet the filter dropped, including those
	// from no known peer.
	Refused uint64       `json:"refused"`
	Peers   []PeerStatus `json:"peers"`
	// Probes counts the live probe identities of `camgate check`
	// (probe.go); they are not peers.
	Probes int `json:"probes,omitempty"`
}

// Status returns the peers with their counters.
func (s *Server) Status() Status {
	stats := s.wgStats()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := Status{PublicKey: s.key.Public(), Port: s.cfg.Port(), Network: s.cfg.Prefix(),
		Endpoint: s.cfg.EndpointFor(s.publicIP), Refused: s.filter.refused.Load(), Peers: []PeerStatus{}, Probes: s.probeCount()}
	for _, p := range s.peers {
		ps := PeerStatus{Peer: clonePeer(p), Expired: p.Expired(now)}
		if w, ok := stats[p.PublicKey]; ok {
			ps.LastHandshake, ps.Endpoint, ps.RxBytes, ps.TxBytes = w.handshake, w.endpoint, w.rx, w.tx
		}
		if acl := s.acls[p.Address]; acl != nil {
			ps.Refused = acl.total()
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

type wgPeerStats struct {
	handshake time.Time
	endpoint  string
	rx, tx    uint64
}

// wgStats reads the WireGuard device's per-peer counters (UAPI get).
func (s *Server) wgStats() map[Key]wgPeerStats {
	out := map[Key]wgPeerStats{}
	text, err := s.dev.IpcGet()
	if err != nil {
		return out
	}
	var cur *wgPeerStats
	var sec, nsec int64
	var key Key
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.handshake = time.Unix(sec, nsec).UTC()
			}
			out[key] = *cur
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			flush()
			cur, sec, nsec = &wgPeerStats{}, 0, 0
			key = keyFromHex(v)
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "endpoint":
			if cur != nil {
				cur.endpoint = v
			}
		case "rx_bytes":
			if cur != nil {
				cur.rx, _ = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.tx, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	flush()
	return out
}

// Close takes the tunnel down and ends every connection through it.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeProbes()
		s.dev.Close() // closes the tun, which closes the stack
		s.conns.closeAll()
		s.relays.Wait()
	})
}
