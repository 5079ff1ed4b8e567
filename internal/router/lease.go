package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/camgate/camgate/internal/store"
)

// mapper is one protocol's way of asking the router for mappings.
type mapper interface {
	protocol() Protocol
	gateway() netip.Addr
	// add creates or renews l's mapping for lifetime.
	add(ctx context.Context, l *lease, lifetime time.Duration) (grant, error)
	// remove deletes l's mapping; a mapping already gone is no error.
	remove(ctx context.Context, l *lease) error
	externalIP(ctx context.Context) (netip.Addr, error)
	// describe returns the router's self-description and control URL,
	// when the protocol has them.
	describe() (device, control string)
}

// suggester is a mapper that can find a free port after a conflict.
type suggester interface {
	suggest(ctx context.Context, l *lease, avoid func(proto string, port uint16) bool) (uint16, string)
}

// grant is what the router gave for a mapping request.
type grant struct {
	lifetime  time.Duration
	permanent bool           // UPnP lease 0: until the router reboots
	external  netip.AddrPort // PCP: the assigned external address and port
	epoch     uint32         // PCP/NAT-PMP server epoch
	hasEpoch  bool
}

// key names one mapping: a protocol and an external port.
type key struct {
	Proto string // tcp or udp
	Port  uint16
}

// lease is one mapping camgate holds, or may hold, on a router. The
// exported fields are persisted in the state file so that a crashed
// gateway can renew (PCP needs the nonce) or delete them at its next
// start; the rest is the live state.
type lease struct {
	Rule       string     `json:"rule"`
	Proto      string     `json:"protocol"`
	Port       uint16     `json:"port"` // external = internal port: camgate listens there
	Internal   netip.Addr `json:"internal_address"`
	Method     Protocol   `json:"method"`
	Gateway    netip.Addr `json:"gateway"`
	Desc       string     `json:"description,omitempty"`
	Nonce      string     `json:"nonce,omitempty"`       // PCP mapping nonce, hex
	Service    string     `json:"service,omitempty"`     // UPnP service type
	Control    string     `json:"control_url,omitempty"` // UPnP control URL
	ExternalIP netip.Addr `json:"external_ip,omitzero"`  // PCP: previous external address
	Expires    time.Time  `json:"expires,omitzero"`      // zero: permanent, or not granted
	// Held is true from just before the request is sent until the router
	// has definitely refused or deleted the mapping.
	Held bool `json:"held"`

	state     State
	msg       string
	suggested uint16
	renewAt   time.Time
	retryAt   time.Time
	fails     int  // failures in a row, for the retry backoff
	wasHeld   bool // Held before the current request was planned
}

func (l *lease) key() key { return key{l.Proto, l.Port} }

// family groups the two UPnP versions: a mapping made over one can be
// renewed or deleted over the other.
func family(p Protocol) string {
	if p == ProtoUPnPIGD1 || p == ProtoUPnPIGD2 {
		return "upnp"
	}
	return string(p)
}

// belongsTo reports whether m can renew or delete l.
func (l *lease) belongsTo(m mapper, local netip.Addr) bool {
	return m != nil && family(l.Method) == family(m.protocol()) && l.Gateway == m.gateway() && l.Internal == local
}

// mapperFor rebuilds a mapper for a lease from an earlier run or another
// protocol, so that it can be deleted.
func mapperFor(l *lease, timeout time.Duration) (mapper, error) {
	switch l.Method {
	case ProtoPCP:
		return &pcpMapper{gw: l.Gateway, local: l.Internal, timeout: timeout}, nil
	case ProtoNATPMP:
		return newNATPMPMapper(l.Gateway, l.Internal, timeout), nil
	case ProtoUPnPIGD1, ProtoUPnPIGD2:
		return upnpMapperFor(l.Method, l.Gateway, l.Internal, l.Service, l.Control, timeout)
	}
	return nil, fmt.Errorf("unknown method %q", l.Method)
}

// stateFileName is the lease file inside Config.StateDir.
const stateFileName = "router-leases.json"

// stateVersion is the lease file's schema version.
const stateVersion = 1

type stateDoc struct {
	Version int      `json:"version"`
	Leases  []*lease `json:"leases"`
}

// valid checks a lease read from disk well enough to send it to a router.
func (l *lease) valid() error {
	switch {
	case l.Proto != "tcp" && l.Proto != "udp":
		return fmt.Errorf("protocol %q", l.Proto)
	case l.Port == 0:
		return errors.New("port 0")
	case !l.Gateway.Is4() || !l.Internal.Is4():
		return errors.New("gateway or internal address is not IPv4")
	}
	switch l.Method {
	case ProtoPCP:
		if _, err := parseNonce(l.Nonce); err != nil {
			return err
		}
	case ProtoNATPMP, ProtoUPnPIGD1, ProtoUPnPIGD2:
	default:
		return fmt.Errorf("method %q", l.Method)
	}
	return nil
}

// readState loads the leases an earlier run left behind. A missing file
// is no error; a damaged one is reported and ignored, because the worst
// outcome is a mapping that expires on its own.
func readState(path string) ([]*lease, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", path, err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("%s has version %d; this camgate reads %d", path, doc.Version, stateVersion)
	}
	var out []*lease
	var errs []error
	for i, l := range doc.Leases {
		if l == nil {
			continue
		}
		if err := l.valid(); err != nil {
			errs = append(errs, fmt.Errorf("%s: lease %d: %w", path, i, err))
			continue
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

// encodeState renders the leases the router may hold, in a stable order.
func encodeState(ls []*lease) ([]byte, error) {
	doc := stateDoc{Version: stateVersion, Leases: []*lease{}}
	for _, l := range ls {
		if l.Held {
			doc.Leases = append(doc.Leases, l)
		}
	}
	slices.SortFunc(doc.Leases, func(a, b *lease) int {
		if a.Proto != b.Proto {
			if a.Proto < b.Proto {
				return -1
			}
			return 1
		}
		return int(a.Port) - int(b.Port)
	})
	return json.MarshalIndent(doc, "", "  ")
}

// writeState saves the lease file atomically (store.WriteFile).
func writeState(dir string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("router state: %w", err)
	}
	return store.WriteFile(filepath.Join(dir, stateFileName), data, 0o600)
}
