package vpn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/camgate/camgate/internal/store"
)

// Peer is one person's phone or laptop: what the state directory keeps
// about it. Its private key is not kept: it is shown once, in the config
// and QR code `vpn add` returns.
type Peer struct {
	// Name identifies the peer: lower-case letters, digits and '-'.
	Name string `json:"name"`
	// PublicKey is the peer's WireGuard public key.
	PublicKey Key `json:"public_key"`
	// Address is the peer's tunnel address, taken from the tunnel range.
	Address netip.Addr `json:"address"`
	// Allow names the devices (config devices section) the peer may reach.
	Allow []string `json:"allow"`
	// Expires is when the peer stops working; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Created is when the peer was added.
	Created time.Time `json:"created"`
}

// Expired reports whether the peer's expiry has passed at now.
func (p *Peer) Expired(now time.Time) bool {
	return !p.Expires.IsZero() && !now.Before(p.Expires)
}

// MarshalText and UnmarshalText store keys in base64, as wg shows them.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a base64 key.
func (k *Key) UnmarshalText(b []byte) error {
	v, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// peerNameRE matches config's rule and device names.
var peerNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// maxAllow bounds a peer's device list; a site has a handful of recorders.
const maxAllow = 64

// ValidName checks a peer name.
func ValidName(name string) error {
	if !peerNameRE.MatchString(name) {
		return fmt.Errorf("peer name %q: use lower-case letters, digits and '-' (at most 63, not starting or ending with '-'), such as \"alice-phone\"", name)
	}
	return nil
}

// peersFile is the state directory's list of peers.
type peersFile struct {
	Version int    `json:"version"`
	Peers   []Peer `json:"peers"`
}

// loadPeers reads the peer list; a missing file is an empty list.
func loadPeers(path string) ([]Peer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vpn peers: %w", err)
	}
	return parsePeers(b)
}

// parsePeers decodes and checks a peers file.
func parsePeers(b []byte) ([]Peer, error) {
	var f peersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("vpn peers: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("vpn peers: version %d: this camgate reads version 1", f.Version)
	}
	names, addrs, keys := map[string]bool{}, map[netip.Addr]bool{}, map[Key]bool{}
	for i := range f.Peers {
		p := &f.Peers[i]
		if err := ValidName(p.Name); err != nil {
			return nil, fmt.Errorf("vpn peers: %w", err)
		}
		if names[p.Name] || addrs[p.Address] || keys[p.PublicKey] {
			return nil, fmt.Errorf("vpn peers: peer %q repeats another's name, address or key", p.Name)
		}
		if !p.Address.Is4() {
			return nil, fmt.Errorf("vpn peers: peer %q: address %v is not IPv4", p.Name, p.Address)
		}
		if len(p.Allow) > maxAllow {
			return nil, fmt.Errorf("vpn peers: peer %q: more than %d devices", p.Name, maxAllow)
		}
		for _, d := range p.Allow {
			if !peerNameRE.MatchString(d) {
				return nil, fmt.Errorf("vpn peers: peer %q: %q is not a device name", p.Name, d)
			}
		}
		names[p.Name], addrs[p.Address], keys[p.PublicKey] = true, true, true
	}
	return f.Peers, nil
}

// savePeers writes the peer list atomically, mode 0600.
func savePeers(path string, peers []Peer) error {
	if peers == nil {
		peers = []Peer{}
	}
	b, err := json.MarshalIndent(peersFile{Version: 1, Peers: peers}, "", "  ")
	if err != nil {
		return err
	}
	if err := store.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("vpn peers: %w", err)
	}
	return nil
}

// freeAddress returns the first address of network after the server's
// own (the first) that no peer has.
func freeAddress(network netip.Prefix, peers []Peer) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, p := range peers {
		used[p.Address] = true
	}
	a := network.Addr().Next() // the server's
	for a = a.Next(); network.Contains(a); a = a.Next() {
		if !used[a] && network.Contains(a.Next()) { // not the broadcast address
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("tunnel range %v is full (%d peers); remove a peer or widen vpn.network", network, len(peers))
}

func clonePeer(p Peer) Peer {
	p.Allow = slices.Clone(p.Allow)
	return p
}
