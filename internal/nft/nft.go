// Package nft is camgate's kernel data plane: plain port-forwarding rules
// written as nftables DNAT into one table that camgate owns, so the kernel
// forwards their packets and camgate's process costs nothing per packet.
//
// The table is "camgate" in the inet family. It holds five base chains
// (filter at prerouting before DNAT for allow/deny and per-source limits,
// dstnat and output for DNAT, srcnat for masquerade and reflection, and
// forward for byte counters), and per rule a few named sets and counters.
// Apply replaces the base chains' rules and the sets of added and changed
// rules in one netlink batch, which the kernel applies atomically: a batch
// that fails changes nothing. Connections already set up keep their
// conntrack NAT bindings across every Apply, so an untouched rule's
// streams never notice a reload. Named counters and per-source meters of
// untouched rules are kept as they are.
//
//	t, err := nft.Open(nft.Config{Logger: log}) // fails without CAP_NET_ADMIN, nftables or forwarding
//	placed, err := t.Apply(rules)             // one transaction
//	stats := t.Stats()                        // nft counters and conntrack
//	t.Close()                                 // removes the table
//
// A table left by a camgate that was killed is reclaimed by the first
// Apply, in the same transaction that writes the new rules. The package
// never reads or writes any other table (fw4, docker, miniupnpd).
//
// Non-goals: IPv6 and NAT64 (IPv6 viewers stay on the userspace path),
// host names as targets, and anything that reads the traffic.
package nft

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// TableName is the name of camgate's table, in the inet family.
const TableName = "camgate"

// Config configures a Table.
type Config struct {
	// Logger receives transaction logs. Nil discards.
	Logger *slog.Logger
	// Routes answers masquerade=auto. Nil means this host's routing table
	// (/proc/net/route).
	Routes func() ([]Route, error)
}

// Rule is one kernel forwarding rule.
type Rule struct {
	// Name is the config rule's name.
	Name string
	// TCP and UDP select the protocols forwarded.
	TCP, UDP bool
	// Listen is the address viewers connect to; the unspecified address
	// means any address of this host.
	Listen netip.Addr
	// First and Last are the external port range.
	First, Last uint16
	// Target is the device's IPv4 address and TargetFirst the internal port
	// matching First; ports map one to one.
	Target      netip.Addr
	TargetFirst uint16
	// Allow and Deny are source prefixes (IPv6 ones are ignored). An empty
	// Allow admits every source not denied.
	Allow, Deny []netip.Prefix
	// MaxConns caps the rule's concurrent TCP connections; 0 means none.
	MaxConns int
	// PerIPConns caps concurrent TCP connections per source; 0 means none.
	PerIPConns int
	// PerIPRate and PerIPBurst limit new TCP connections per source per
	// second; a zero rate means none.
	PerIPRate  float64
	PerIPBurst int
	// PerIPUDP caps UDP sessions per source; 0 means none.
	PerIPUDP int
	// Masquerade is "on", "off" or "auto" (empty): auto masquerades only
	// when the device would not route its replies back through this host.
	Masquerade string
}

func (r *Rule) equal(o *Rule) bool {
	return r.Name == o.Name && r.TCP == o.TCP && r.UDP == o.UDP && r.Listen == o.Listen &&
		r.First == o.First && r.Last == o.Last && r.Target == o.Target && r.TargetFirst == o.TargetFirst &&
		r.MaxConns == o.MaxConns && r.PerIPConns == o.PerIPConns && r.PerIPRate == o.PerIPRate &&
		r.PerIPBurst == o.PerIPBurst && r.PerIPUDP == o.PerIPUDP && r.Masquerade == o.Masquerade &&
		slices.Equal(r.Allow, o.Allow) && slices.Equal(r.Deny, o.Deny)
}

// Placement says how a rule was installed.
type Placement struct {
	// Masquerade is true when the device sees this host's address rather
	// than the viewer's.
	Masquerade bool `json:"masquerade"`
	// Why explains the masquerade decision.
	Why string `json:"why"`
}

// Errors that say why the kernel path cannot be used.
var (
	ErrNoCapability = errors.New("camgate lacks CAP_NET_ADMIN")
	ErrNoForwarding = errors.New("IPv4 forwarding is off (sysctl net.ipv4.ip_forward=0)")
)

// Table is camgate's nftables table.
type Table struct {
	log    *slog.Logger
	routes func() ([]Route, error)

	mu      sync.Mutex // guards following
	present bool       // the table exists and holds what rules says
	rules   map[string]*installed
	gen     uint64
	closed  bool
	// bans are the banned sources per device, as last given to SetBans.
	bans map[netip.Addr][]netip.Addr
}

// installed is a rule as written into the kernel, with the names of its
// sets (which carry a generation, so a changed rule's new sets never
// collide with the old ones in the same batch).
type installed struct {
	rule  Rule
	place Placement
	hair  netip.Prefix // source prefix that needs reflection, when not masquerading
	gen   uint64
}

// Open checks that the kernel path is usable here and returns the table
// handle. It changes nothing in the kernel; a stale table from a crashed
// camgate is reclaimed by the first Apply (or by Close).
func Open(c Config) (*Table, error) {
	if err := Usable(); err != nil {
		return nil, err
	}
	t := &Table{log: c.Logger, routes: c.Routes, rules: map[string]*installed{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("component", "nft")
	if t.routes == nil {
		t.routes = HostRoutes
	}
	return t, nil
}

// Usable reports why the kernel path cannot be used here, or nil: it needs
// CAP_NET_ADMIN, an nftables kernel, and IPv4 forwarding switched on.
func Usable() error {
	if !hasNetAdmin() {
		return ErrNoCapability
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		return fmt.Errorf("nftables is not usable: %w", err)
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return fmt.Errorf("read ip_forward: %w", err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		return ErrNoForwarding
	}
	return nil
}

// hasNetAdmin reports whether the process's effective capability set
// holds CAP_NET_ADMIN.
func hasNetAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_NET_ADMIN) != 0
}

func (t *Table) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Apply makes rules the installed set in one transaction and returns how
// each was placed. On error the kernel is unchanged.
func (t *Table) Apply(rules []Rule) (map[string]Placement, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("nft table is closed")
	}
	routes, err := t.routes()
	if err != nil {
		t.log.Warn("read routes for masquerade=auto; masquerading", "err", err)
	}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	tbl := t.table()
	if len(rules) == 0 {
		var gone []Rule
		for _, o := range t.rules {
			gone = append(gone, o.rule)
		}
		if err := t.removeLocked(c); err != nil {
			return nil, err
		}
		if _, err := cutFlows(gone); err != nil {
			t.log.Warn("end the connections of removed kernel rules", "err", err)
		}
		return map[string]Placement{}, nil
	}
	fresh := !t.present
	if fresh && t.existsLocked(c) {
		c.DelTable(tbl) // a crashed camgate's table: reclaimed in this same batch
		t.log.Info("reclaiming the nftables table of an earlier camgate", "table", "inet "+TableName)
	}
	c.AddTable(tbl)
	ch := addChains(c, tbl)
	if !fresh {
		for _, bc := range ch.all() {
			c.FlushChain(bc)
		}
	}
	old := t.rules
	if fresh {
		old = map[string]*installed{}
	}
	next := map[string]*installed{}
	gen := t.gen
	for i := range rules {
		r := &rules[i]
		place, hair := placeRule(r, routes)
		if o := old[r.Name]; o != nil && o.rule.equal(r) && o.place == place {
			next[r.Name] = o
			continue
		}
		gen++
		in := &installed{rule: *r, place: place, hair: hair, gen: gen}
		if err := addObjects(c, tbl, in, old[r.Name] == nil); err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		next[r.Name] = in
	}
	for name, o := range old {
		if next[name] == o {
			continue
		}
		delSets(c, tbl, o)
		if next[name] == nil {
			delCounters(c, tbl, name)
		}
	}
	for _, dev := range devices(rules) {
		// Ban sets outlive the rules: the guard's bans of a device apply
		// to every rule forwarding to it (see SetBans).
		set := &nftables.Set{Table: tbl, Name: banSet(dev), KeyType: nftables.TypeIPAddr}
		if err := c.AddSet(set, banElements(t.bans[dev])); err != nil {
			return nil, fmt.Errorf("bans of %s: %w", dev, err)
		}
	}
	for i := range rules {
		if err := addRules(c, ch, next[rules[i].Name]); err != nil {
			return nil, fmt.Errorf("rule %q: %w", rules[i].Name, err)
		}
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables transaction: %w", err)
	}
	t.present, t.rules, t.gen = true, next, gen
	var gone []Rule
	for name, o := range old {
		if next[name] != o {
			gone = append(gone, o.rule)
		}
	}
	if n, err := cutFlows(gone); err != nil {
		t.log.Warn("end the connections of removed kernel rules", "err", err)
	} else if n > 0 {
		t.log.Debug("ended connections of removed or replaced kernel rules", "conntrack_entries", n)
	}
	out := make(map[string]Placement, len(next))
	for name, in := range next {
		out[name] = in.place
	}
	return out, nil
}

// existsLocked reports whether a table of ours is in the kernel.
func (t *Table) existsLocked(c *nftables.Conn) bool {
	_, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	return err == nil
}

// removeLocked deletes the table if it is there.
func (t *Table) removeLocked(c *nftables.Conn) error {
	if !t.present && !t.existsLocked(c) {
		return nil
	}
	c.DelTable(t.table())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove table %s: %w", TableName, err)
	}
	t.present, t.rules = false, map[string]*installed{}
	return nil
}

// Close removes the table, including a stale one nothing was applied
// over. Connections already forwarded keep flowing until conntrack
// forgets them; new ones are no longer forwarded.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return t.removeLocked(c)
}

// banSet names the set of sources banned from a device.
func banSet(dev netip.Addr) string { return "bans-" + dev.String() }

func devices(rules []Rule) []netip.Addr {
	var out []netip.Addr
	for _, r := range rules {
		if !slices.Contains(out, r.Target) {
			out = append(out, r.Target)
		}
	}
	return out
}

func banElements(srcs []netip.Addr) []nftables.SetElement {
	var els []nftables.SetElement
	for _, a := range srcs {
		if a.Is4() {
			b := a.As4()
			els = append(els, nftables.SetElement{Key: b[:]})
		}
	}
	return els
}

// SetBans replaces the banned sources of each device that kernel rules
// forward to, in one transaction: the brute-force guard bans a source from
// every rule to the device whose logins it failed, kernel rules included.
// IPv6 sources are ignored (the kernel path is IPv4).
func (t *Table) SetBans(bans map[netip.Addr][]netip.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bans = bans
	if !t.present || t.closed {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	var rules []Rule
	for _, in := range t.rules {
		rules = append(rules, in.rule)
	}
	for _, dev := range devices(rules) {
		set := &nftables.Set{Table: t.table(), Name: banSet(dev), KeyType: nftables.TypeIPAddr}
		c.FlushSet(set)
		if els := banElements(bans[dev]); len(els) > 0 {
			if err := c.SetAddElements(set, els); err != nil {
				return err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: update bans: %w", err)
	}
	return nil
}
