// Package router asks the upstream home router to forward camgate's
// external ports to this host, with PCP (RFC 6887), NAT-PMP (RFC 6886) or
// UPnP IGD (versions 2 and 1), so that a user behind such a router gets
// remote access without opening the router's web page.
//
// camgate runs on a LAN box (a Raspberry Pi or NAS next to the DVR). For
// every enabled rule with `router: true`, the router forwards the rule's
// external port(s), per protocol, to this host's LAN address on the same
// port, where camgate listens and relays to the device:
//
//	internet ─► router WAN:8082 ─(mapping)─► camgate host:8082 ─(rule)─► DVR:80
//
// Typical use by `camgate serve`:
//
//	rc := router.New(router.Config{Logger: log, StateDir: stateDir})
//	go rc.Run(ctx)           // renews leases at half-life
//	rc.Sync(ctx, cfg)        // after every successful gateway.Apply
//	...
//	rc.Close(shutdownCtx)    // deletes every mapping it made
//
// Mode auto tries PCP, then NAT-PMP, then UPnP IGD2, then IGD1. Each
// mapping's outcome (mapped, conflict with a suggested free port, refused,
// unsupported, error) is reported per rule and port in Status, together
// with the router's WAN address and a CGNAT / double-NAT verdict.
// Mappings are persisted in StateDir before they are requested, so a
// crashed gateway renews or deletes them at its next start, without
// duplicates.
//
// Non-goals: IPv6 pinholes (PCP and IGD2 can do them; camgate's rules
// are IPv4 port forwards), mapping to other hosts (secure-mode routers
// refuse it, and camgate relays in userspace anyway), and choosing
// external ports on the user's behalf: a conflict is reported with a
// suggestion, never silently remapped.
package router

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
)

// Timeouts. The router is one hop away on the LAN: it answers in
// milliseconds or not at all.
const (
	// defaultRequestTimeout bounds one PCP or NAT-PMP exchange including
	// retransmissions (250 ms, 500 ms, 1 s), and the SSDP search.
	defaultRequestTimeout = 2 * time.Second
	// defaultSOAPTimeout bounds one UPnP HTTP request; some routers' UPnP
	// daemons are slow to write their first byte.
	defaultSOAPTimeout = 3 * time.Second
	// defaultRetryInterval is how long a refused or unanswered mapping
	// waits before it is asked again, and a failed discovery before the
	// next one.
	defaultRetryInterval = time.Minute
	// defaultSyncTimeout bounds one Sync, so serve is never held up for
	// long; mappings not reached stay pending for Run.
	defaultSyncTimeout = 30 * time.Second
	// maxRetryInterval caps the backoff of a mapping that keeps failing.
	maxRetryInterval = time.Hour
	// maxQuietTimeouts is how many requests in a row may go unanswered
	// before a pass stops asking a router that has gone quiet.
	maxQuietTimeouts = 3
	// idleWake is how often Run looks around when nothing is due.
	idleWake = time.Hour
)

// Config configures a Client. The zero value is usable: nothing is
// persisted and the router is found through the default route.
type Config struct {
	// Logger receives state changes of mappings and discovery. Nil
	// means discard.
	Logger *slog.Logger
	// StateDir holds the lease file (router-leases.json) used to reclaim
	// mappings after a crash. Empty means no persistence: mappings left
	// by a crash expire on their own after the lease.
	StateDir string
	// DefaultGateway finds the router when the config names none. Nil
	// means the IPv4 default route from /proc/net/route.
	DefaultGateway func() (netip.Addr, error)
	// UnicastSSDPOnly sends the UPnP search only to the gateway's own
	// address, never to the 239.255.255.250 multicast group. False (the
	// default) sends both; tests on loopback set it so that nothing
	// leaves the machine.
	UnicastSSDPOnly bool
	// RequestTimeout bounds each request to the router: one PCP or
	// NAT-PMP exchange with its retransmissions, one SOAP call, the SSDP
	// search. 0 means 2 s (3 s for SOAP).
	RequestTimeout time.Duration
	// RetryInterval is how long Run waits before asking again for a
	// mapping that failed, and before looking for a router again. 0
	// means one minute.
	RetryInterval time.Duration
	// SyncTimeout bounds one Sync (and one Run pass). 0 means 30 s.
	SyncTimeout time.Duration
}

func (c *Client) requestTimeout() time.Duration {
	return cmp.Or(c.cfg.RequestTimeout, defaultRequestTimeout)
}

func (c *Client) soapTimeout() time.Duration {
	return cmp.Or(c.cfg.RequestTimeout, defaultSOAPTimeout)
}

func (c *Client) retryInterval() time.Duration {
	return cmp.Or(c.cfg.RetryInterval, defaultRetryInterval)
}

func (c *Client) syncTimeout() time.Duration {
	return cmp.Or(c.cfg.SyncTimeout, defaultSyncTimeout)
}

// Client keeps the router's mappings in line with the rule table. Its
// methods are safe for concurrent use; conversations with the router are
// serialised.
type Client struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{} // wakes Run after Sync changed the plan

	opMu     sync.Mutex // serialises router conversations; guards following
	settings config.Router
	want     map[key]want
	order    []key          // wanted keys in rule order
	dups     []Mapping      // rules whose port another rule already claimed
	leases   map[key]*lease // current mappings, via m
	stale    []*lease       // mappings to delete: removed rules, other routers, earlier runs
	m        mapper         // the router in use; nil until one answers
	local    netip.Addr     // this host's LAN address toward m
	discErr  error          // why m is nil
	discAt   time.Time      // last discovery attempt
	extIP    netip.Addr
	epoch    epochMark
	loaded   bool // state file read
	closed   bool
	saved    []byte // last state file content written
	updated  time.Time

	mu     sync.Mutex // guards following
	status Status
}

// want is one mapping the rule table asks for.
type want struct {
	rule   string
	desc   string
	listen string     // the rule's listen address
	la     netip.Addr // parsed; invalid if it does not parse
}

// listensFor reports whether the rule listens where the router will send
// its traffic: on every address, or on local itself.
func (w want) listensFor(local netip.Addr) bool {
	return w.la.IsValid() && (w.la.IsUnspecified() || w.la.Unmap() == local)
}

// epochMark remembers the router's last epoch to notice reboots.
type epochMark struct {
	valid  bool
	server uint32
	client time.Time
}

// New returns a Client. It does nothing until Sync.
func New(cfg Config) *Client {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Client{cfg: cfg, log: log.With("component", "router"), kick: make(chan struct{}, 1),
		want: map[key]want{}, leases: map[key]*lease{}}
	c.status = Status{Mode: string(config.RouterOff), WAN: WANUnknown, Mappings: []Mapping{}}
	return c
}

// Status returns a snapshot. It never waits for the router.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Mappings = slices.Clone(c.status.Mappings)
	return s
}

// Sync reconciles the router's mappings with cfg: for cfg.Router.Mode
// other than off, every enabled rule with Router=true gets a mapping per
// protocol and external port (one per port of a range) to this host's
// LAN address, internal port = external port. Mappings of removed or
// disabled rules are deleted. Sync is bounded by Config.SyncTimeout;
// per-mapping problems are reported in Status, and the error is only for
// total failure (no router found: ErrNoRouter).
func (c *Client) Sync(ctx context.Context, cfg *config.Config) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.closed {
		return ErrClosed
	}
	defer c.wake()
	ctx, cancel := context.WithTimeout(ctx, c.syncTimeout())
	defer cancel()
	c.loadStateLocked()
	rc := cfg.Router
	changed := settingsChanged(c.settings, rc)
	c.settings = rc
	c.setWantLocked(cfg)
	if !rc.Enabled() {
		c.dropMapperLocked()
		c.removeStaleLocked(ctx, true)
		c.finishLocked()
		return nil
	}
	if c.m == nil || changed || c.localChanged() {
		if err := c.discoverLocked(ctx); err != nil {
			c.removeStaleLocked(ctx, true)
			c.finishLocked()
			return err
		}
	}
	c.reconcileLocked(ctx, true)
	c.refreshExternalIPLocked(ctx)
	c.finishLocked()
	return nil
}

// Run renews leases at half-life, retries failed mappings and deletes
// stale ones, until ctx is done.
func (c *Client) Run(ctx context.Context) {
	t := time.NewTimer(idleWake)
	defer t.Stop()
	for {
		t.Reset(c.nextWake())
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
			c.maintain(ctx)
		}
	}
}

// Close deletes every mapping this client made (clean shutdown) and
// makes later Syncs fail with ErrClosed. Mappings the router did not
// confirm deleted stay in the state file for the next start; they also
// expire by themselves when their lease runs out.
func (c *Client) Close(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.loadStateLocked()
	c.want, c.order, c.dups = map[key]want{}, nil, nil
	for _, k := range sortedKeys(c.leases) {
		c.stale = append(c.stale, c.leases[k])
	}
	c.leases = map[key]*lease{}
	c.removeStaleLocked(ctx, true)
	c.finishLocked()
	if n := len(c.stale); n > 0 {
		return fmt.Errorf("%d router mapping(s) could not be deleted (the router did not confirm); they expire with their lease, and the next start retries", n)
	}
	return nil
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
