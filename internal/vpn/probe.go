package vpn

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Probe identities. `camgate check` tests the VPN's UDP port from outside
// the way a phone uses it: with a real WireGuard handshake. WireGuard
// answers nothing to a packet that does not carry a key it knows, so the
// check asks the running server for a probe identity: a fresh key pair
// the server accepts for a short while.
//
// A probe peer is allowed to reach nothing: it has no AllowedIPs, so
// WireGuard's cryptokey routing drops whatever it sends inside the
// tunnel, and the packet filter has no access list for it either. It is
// never written to peers.json and never listed among the peers; only
// Status.Probes counts it. It leaves the WireGuard device when the check
// ends it (EndProbe), after its time to live (at most MaxProbeTTL), or
// when the server closes, whichever comes first.

// MaxProbeTTL bounds a probe identity's life.
const MaxProbeTTL = 60 * time.Second

// maxProbes bounds the probe identities alive at once, so that an API
// client cannot fill the WireGuard device with them.
const maxProbes = 8

// ErrTooManyProbes is returned by Probe while maxProbes are alive.
var ErrTooManyProbes = errors.New("too many VPN probes at once; wait a minute")

// ProbeIdentity is what a check needs to complete a handshake with the
// server: the server's public key and port, and the probe's private key.
type ProbeIdentity struct {
	// ID names the probe for EndProbe.
	ID string `json:"id"`
	// ServerKey is the server's public key.
	ServerKey Key `json:"server_public_key"`
	// PrivateKey is the probe's private key. It is not kept anywhere
	// else: the server knows only its public half.
	PrivateKey Key `json:"private_key"`
	// Port is the UDP port the server listens on.
	Port uint16 `json:"listen_port"`
	// Expires is when the server forgets the probe on its own.
	Expires time.Time `json:"expires"`
}

// probeSet holds the live probe identities by ID.
type probeSet struct {
	mu     sync.Mutex // guards following
	probes map[string]*probeEntry
	closed bool
}

type probeEntry struct {
	pub   Key
	timer *time.Timer
}

// Probe adds a probe identity to the running server for ttl (0 or more
// than MaxProbeTTL means MaxProbeTTL). End it with EndProbe as soon as
// the handshake is done.
func (s *Server) Probe(ttl time.Duration) (ProbeIdentity, error) {
	if ttl <= 0 || ttl > MaxProbeTTL {
		ttl = MaxProbeTTL
	}
	priv, err := newPrivateKey()
	if err != nil {
		return ProbeIdentity{}, err
	}
	var id [12]byte
	rand.Read(id[:])
	pi := ProbeIdentity{ID: hex.EncodeToString(id[:]), ServerKey: s.key.Public(), PrivateKey: priv, Port: s.boundPort(), Expires: s.now().Add(ttl).UTC()}
	pub := priv.Public()

	ps := &s.probes
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return ProbeIdentity{}, net.ErrClosed
	}
	if len(ps.probes) >= maxProbes {
		return ProbeIdentity{}, ErrTooManyProbes
	}
	// No allowed_ip line: the probe may complete a handshake and nothing
	// else. The peer list's sync (syncLocked) removes only keys it added,
	// so it leaves the probe alone.
	if err := s.dev.IpcSet(fmt.Sprintf("public_key=%s\nreplace_allowed_ips=true\n", pub.hex())); err != nil {
		return ProbeIdentity{}, fmt.Errorf("vpn probe: %w", err)
	}
	if ps.probes == nil {
		ps.probes = map[string]*probeEntry{}
	}
	e := &probeEntry{pub: pub}
	e.timer = time.AfterFunc(ttl, func() { s.EndProbe(pi.ID) })
	ps.probes[pi.ID] = e
	s.log.Debug("vpn probe added", "probe", pi.ID, "ttl", ttl)
	return pi, nil
}

// EndProbe removes a probe identity from the WireGuard device. It
// returns ErrNoPeer for an unknown or already ended probe.
func (s *Server) EndProbe(id string) error {
	ps := &s.probes
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e, ok := ps.probes[id]
	if !ok {
		return fmt.Errorf("probe %q: %w", id, ErrNoPeer)
	}
	delete(ps.probes, id)
	e.timer.Stop()
	if ps.closed {
		return nil
	}
	if err := s.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", e.pub.hex())); err != nil {
		return fmt.Errorf("vpn probe: %w", err)
	}
	s.log.Debug("vpn probe ended", "probe", id)
	return nil
}

// boundPort is the UDP port the WireGuard device is bound to: what runs,
// which differs from vpn.listen_port with Config.AnyPort.
func (s *Server) boundPort() uint16 {
	text, err := s.dev.IpcGet()
	if err == nil {
		for line := range strings.Lines(text) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "listen_port="); ok {
				if p, err := strconv.ParseUint(v, 10, 16); err == nil {
					return uint16(p)
				}
			}
		}
	}
	return s.Port()
}

// probeCount returns how many probe identities are alive.
func (s *Server) probeCount() int {
	s.probes.mu.Lock()
	defer s.probes.mu.Unlock()
	return len(s.probes.probes)
}

// closeProbes stops every probe's timer; the device, closing, forgets
// the keys.
func (s *Server) closeProbes() {
	ps := &s.probes
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.closed = true
	for id, e := range ps.probes {
		e.timer.Stop()
		delete(ps.probes, id)
	}
}
