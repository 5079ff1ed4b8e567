package guard

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
)

func hooks(t *testing.T, p *Policy, r config.Rule) func(netip.AddrPort, string) (func(), error) {
	t.Helper()
	if r.InternalIP == "" {
		r.InternalIP = "192.168.1.64"
	}
	if r.ExternalPort.IsZero() {
		r.ExternalPort = config.PortRange{First: 8000, Last: 8000}
	}
	if err := config.ValidateRule(&r); err != nil {
		t.Fatal(err)
	}
	admit, _, err := p.Hooks(&r)
	if err != nil {
		t.Fatal(err)
	}
	return admit
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestAdmitLimits(t *testing.T) {
	clock := newClock()
	p := newPolicy(t, clock, "")
	admit := hooks(t, p, config.Rule{Name: "r", Protocol: config.Both, Guard: config.Guard{PerIPConnections: 10, PerIPRate: 1, PerIPBurst: 20, PerIPUDPSessions: 2}})

	// Concurrent connections per source.
	var rel []func()
	for i := 0; i < 10; i++ {
		r, err := admit(ap("198.18.0.11:1000"), "tcp")
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		rel = append(rel, r)
	}
	if _, err := admit(ap("198.18.0.11:1011"), "tcp"); !errors.Is(err, forward.ErrRefused) || !strings.Contains(err.Error(), "per_ip_connections") {
		t.Fatalf("11th connection: got %v, want refused by per_ip_connections", err)
	}
	r2, err := admit(ap("198.18.0.12:1000"), "tcp")
	if err != nil {
		t.Fatalf("another source: got %v", err)
	}
	r2()
	rel[0]()
	rel[0]() // releasing twice is harmless
	r, err := admit(ap("198.18.0.11:1012"), "tcp")
	if err != nil {
		t.Fatalf("after a release: got %v", err)
	}
	rel[0] = r

	// The token bucket: 20 burst, 12 used; 8 more, then refused until the
	// clock moves.
	for _, f := range rel {
		f()
	}
	for i := 0; i < 8; i++ {
		r, err := admit(ap("198.18.0.11:2000"), "tcp")
		if err != nil {
			t.Fatalf("burst %d: %v", i, err)
		}
		r()
	}
	if _, err := admit(ap("198.18.0.11:2000"), "tcp"); err == nil || !strings.Contains(err.Error(), "faster than") {
		t.Fatalf("over the rate: got %v", err)
	}
	clock.Add(2 * time.Second)
	for i := 0; i < 2; i++ {
		if r, err := admit(ap("198.18.0.11:2000"), "tcp"); err != nil {
			t.Fatalf("after 2 s: %v", err)
		} else {
			r()
		}
	}

	// UDP sessions.
	u1, err1 := admit(ap("198.18.0.13:5000"), "udp")
	_, err2 := admit(ap("198.18.0.13:5001"), "udp")
	_, err3 := admit(ap("198.18.0.13:5002"), "udp")
	if err1 != nil || err2 != nil || err3 == nil {
		t.Fatalf("udp sessions: got %v %v %v, want the third refused", err1, err2, err3)
	}
	u1()
	if _, err := admit(ap("198.18.0.13:5003"), "udp"); err != nil {
		t.Fatalf("udp after release: %v", err)
	}
	cs, _ := p.Counters("r")
	if cs.Limited != 3 {
		t.Fatalf("got %d limited, want 3", cs.Limited)
	}
}

func TestAdmitIPv6PerSubnet(t *testing.T) {
	p := newPolicy(t, nil, "")
	admit := hooks(t, p, config.Rule{Name: "r", Guard: config.Guard{PerIPConnections: 2, PerIPRate: -1}})
	if _, err := admit(ap("[2001:db8:1:2::1]:1"), "tcp"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit(ap("[2001:db8:1:2::ffff]:1"), "tcp"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit(ap("[2001:db8:1:2:dead::1]:1"), "tcp"); err == nil {
		t.Fatal("a third address in the same /64: got admitted, want refused")
	}
	if _, err := admit(ap("[2001:db8:1:3::1]:1"), "tcp"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

func TestAdmitGlobalPerIP(t *testing.T) {
	p := newPolicy(t, nil, "")
	a := hooks(t, p, config.Rule{Name: "a", Guard: config.Guard{PerIPRate: -1}})
	b := hooks(t, p, config.Rule{Name: "b", InternalIP: "192.168.1.65", Guard: config.Guard{PerIPRate: -1}})
	p.SetGlobal(&config.Config{Limits: config.Limits{MaxConnectionsPerIP: 3}})
	for _, f := range []func(netip.AddrPort, string) (func(), error){a, a, b} {
		if _, err := f(ap("198.18.0.11:1"), "tcp"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b(ap("198.18.0.11:1"), "tcp"); err == nil || !strings.Contains(err.Error(), "max_connections_per_ip") {
		t.Fatalf("4th over all rules: got %v", err)
	}
	if _, err := b(ap("198.18.0.12:1"), "tcp"); err != nil {
		t.Fatalf("another source: %v", err)
	}
}

func TestAdmitACL(t *testing.T) {
	p := newPolicy(t, nil, "")
	admit := hooks(t, p, config.Rule{Name: "r", Allow: []string{"198.18.0.0/28", "2001:db8::/32"}, Deny: []string{"198.18.0.13"}})
	for src, ok := range map[string]bool{"198.18.0.11:1": true, "198.18.0.13:1": false, "198.18.0.17:1": false, "[2001:db8::1]:1": true, "[::ffff:198.18.0.11]:1": true} {
		_, err := admit(ap(src), "tcp")
		if (err == nil) != ok {
			t.Errorf("%s: got %v, want admitted %v", src, err, ok)
		}
	}
	if cs, _ := p.Counters("r"); cs.Denied != 2 {
		t.Fatalf("got %d denied, want 2", cs.Denied)
	}
}

func testBan(src, rule, device string, now time.Time) Ban {
	return Ban{Source: SourceKey(netip.MustParseAddr(src)), Rule: rule, Device: device, Reason: "test",
		Since: now, Until: now.Add(30 * time.Minute)}
}

func TestBansPersist(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	p := newPolicy(t, clock, dir)
	admit := hooks(t, p, config.Rule{Name: "web"})
	p.addBan(testBan("198.18.0.11", "web", "192.168.1.64", clock.Now()))
	if _, err := admit(ap("198.18.0.11:1"), "tcp"); err == nil {
		t.Fatal("banned source admitted")
	}
	// A reload (Hooks again) keeps the ban, and so does another rule to
	// the same device.
	admit = hooks(t, p, config.Rule{Name: "web", MaxConnections: 5})
	rtsp := hooks(t, p, config.Rule{Name: "rtsp", ExternalPort: config.PortRange{First: 554, Last: 554}})
	other := hooks(t, p, config.Rule{Name: "other", InternalIP: "192.168.1.99"})
	if _, err := admit(ap("198.18.0.11:1"), "tcp"); err == nil {
		t.Fatal("after reload: banned source admitted")
	}
	if _, err := rtsp(ap("198.18.0.11:1"), "tcp"); err == nil {
		t.Fatal("same device, other rule: banned source admitted")
	}
	if _, err := other(ap("198.18.0.11:1"), "tcp"); err != nil {
		t.Fatalf("other device: got %v, want admitted", err)
	}
	// A restart reads the file.
	p2 := newPolicy(t, clock, dir)
	if bans := p2.Bans(); len(bans) != 1 || bans[0].Rule != "web" {
		t.Fatalf("after restart: got %+v", bans)
	}
	// The CLI sees it offline.
	if bans, err := ListBans(dir, clock.Now()); err != nil || len(bans) != 1 {
		t.Fatalf("ListBans: got %v %v", bans, err)
	}
	// Expired bans are gone.
	if bans, _ := ListBans(dir, clock.Now().Add(time.Hour)); len(bans) != 0 {
		t.Fatalf("ListBans an hour later: got %v", bans)
	}
	// Forget keeps bans.
	p.Forget([]string{"web"})
	if _, ok := p.Counters("web"); ok {
		t.Fatal("Forget kept the counters")
	}
	if len(p.Bans()) != 1 {
		t.Fatal("Forget dropped the ban")
	}
}

func TestClearBansWhileRunning(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	p := newPolicy(t, clock, dir)
	admit := hooks(t, p, config.Rule{Name: "web"})
	p.addBan(testBan("198.18.0.11", "web", "192.168.1.64", clock.Now()))
	p.addBan(testBan("198.18.0.12", "web", "192.168.1.64", clock.Now()))

	n, err := ClearBans(dir, netip.MustParseAddr("198.18.0.11"), "", clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("ClearBans: got %d %v, want 1", n, err)
	}
	// The gateway picks the clear up (it polls every 20 ms here) ...
	waitFor(t, func() bool { return len(p.Bans()) == 1 })
	if _, err := admit(ap("198.18.0.11:1"), "tcp"); err != nil {
		t.Fatalf("cleared source: got %v", err)
	}
	// ... and does not write the cleared ban back when it saves again.
	clock.Add(time.Second)
	p.addBan(testBan("198.18.0.13", "web", "192.168.1.64", clock.Now()))
	bans, _ := ListBans(dir, clock.Now())
	if len(bans) != 2 || bans[0].Source.Addr().String() != "198.18.0.12" || bans[1].Source.Addr().String() != "198.18.0.13" {
		t.Fatalf("file after a new ban: got %+v", bans)
	}
	// A clear racing with a new ban (the gateway writes before it has read
	// the clear) still wins for the bans it names.
	n, _ = ClearBans(dir, netip.Addr{}, "", clock.Now())
	if n != 2 {
		t.Fatalf("clear all: got %d, want 2", n)
	}
	clock.Add(time.Second)
	p.addBan(testBan("198.18.0.14", "web", "192.168.1.64", clock.Now())) // may run before the poll
	waitFor(t, func() bool { return len(p.Bans()) == 1 })
	if b := p.Bans(); b[0].Source.Addr().String() != "198.18.0.14" {
		t.Fatalf("got %+v, want only the ban made after the clear", b)
	}
	if bans, _ := ListBans(dir, clock.Now()); len(bans) != 1 {
		t.Fatalf("file: got %+v", bans)
	}
}

func TestUnban(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	p := newPolicy(t, clock, dir)
	p.addBan(testBan("198.18.0.11", "web", "d", clock.Now()))
	p.addBan(testBan("198.18.0.11", "rtsp", "d2", clock.Now()))
	p.addBan(testBan("2001:db8::1", "web", "d", clock.Now()))
	if n := p.Unban(netip.MustParseAddr("198.18.0.11"), "rtsp"); n != 1 {
		t.Fatalf("got %d, want 1", n)
	}
	if n := p.Unban(netip.MustParseAddr("2001:db8::beef"), ""); n != 1 {
		t.Fatalf("an address in the banned /64: got %d, want 1", n)
	}
	if bans, _ := ListBans(dir, clock.Now()); len(bans) != 1 || bans[0].Rule != "web" {
		t.Fatalf("file: got %+v", bans)
	}
	if n := p.Unban(netip.Addr{}, ""); n != 1 || len(p.Bans()) != 0 {
		t.Fatalf("unban all: got %d, %v", n, p.Bans())
	}
}

func TestBanFileErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(BanFile(dir), []byte("{not json"), 0o600)
	if _, err := NewPolicy(Config{StateDir: dir}); err == nil || !strings.Contains(err.Error(), "bans.json") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
	os.WriteFile(BanFile(dir), []byte(`{"version": 9, "bans": []}`), 0o600)
	if _, err := ListBans(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("got %v, want a version error", err)
	}
}

// TestLockdown: the device budget counts like the device does (no decay
// until a success), keeps a reserve for sources that logged in before,
// and lets answers camgate verified use the whole budget (issue 14).
func TestLockdown(t *testing.T) {
	clock := newClock()
	p := newPolicy(t, clock, "")
	rs := newRuleState("web")
	tr := newTracker(p, "d")
	ap := &authParams{rule: "web", device: "d", maxFail: 4, deviceMax: 5, window: 10 * time.Minute, ban: 30 * time.Minute}
	ctx := context.Background()
	src := func(i int) netip.Prefix { return SourceKey(netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})) }
	// The owner logs in.
	tk, err := tr.reserve(ctx, src(0), ap, rs, false)
	if err != nil {
		t.Fatal(err)
	}
	tk.settle(success)
	// A guesser spends 2, waits out the window, and tries again: the
	// device still counts the first two, and so does camgate.
	for i := 0; i < 2; i++ {
		tk, _ := tr.reserve(ctx, src(1), ap, rs, false)
		tk.settle(failure)
	}
	clock.Add(11 * time.Minute)
	tk, _ = tr.reserve(ctx, src(2), ap, rs, false)
	tk.settle(failure)
	// 3 of 5 spent: the rest is the reserve.
	for _, i := range []int{1, 2, 3} {
		if _, err := tr.reserve(ctx, src(i), ap, rs, false); !errors.Is(err, errLockdown) {
			t.Fatalf("source %d after 3 device failures: got %v, want lockdown", i, err)
		}
	}
	clock.Add(time.Hour)
	if _, err := tr.reserve(ctx, src(4), ap, rs, false); !errors.Is(err, errLockdown) {
		t.Fatalf("an hour later: got %v, want lockdown still (the device has not forgotten)", err)
	}
	if got := tr.snapshot(); got.Failures != 3 || got.HeldBack != 4 {
		t.Fatalf("snapshot: got %+v, want 3 failures and 4 held back", got)
	}
	// The owner, who logged in before, and a verified answer may.
	for i := 0; i < 2; i++ {
		if tk, err := tr.reserve(ctx, src(0), ap, rs, false); err != nil {
			t.Fatalf("owner: got %v", err)
		} else {
			tk.settle(failure) // typos with another account: 5 of 5
		}
	}
	if _, err := tr.reserve(ctx, src(0), ap, rs, false); !errors.Is(err, errLockdown) {
		t.Fatalf("owner past the budget: got %v, want lockdown", err)
	}
	if tk, err := tr.reserve(ctx, src(5), ap, rs, true); err != nil {
		t.Fatalf("verified answer: got %v", err)
	} else {
		tk.settle(success)
	}
	// The success reset the device's count.
	if tk, err := tr.reserve(ctx, src(3), ap, rs, false); err != nil {
		t.Fatalf("after a success: got %v", err)
	} else {
		tk.settle(neutral)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClearBansWithoutRun: admission itself notices the file changed.
func TestClearBansWithoutRun(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	p, err := NewPolicy(Config{StateDir: dir, Now: clock.Now, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	admit := hooks(t, p, config.Rule{Name: "web"})
	p.addBan(testBan("198.18.0.11", "web", "192.168.1.64", clock.Now()))
	if _, err := admit(ap("198.18.0.11:1"), "tcp"); err == nil {
		t.Fatal("banned source admitted")
	}
	if n, err := ClearBans(dir, netip.Addr{}, "web", clock.Now()); n != 1 || err != nil {
		t.Fatalf("ClearBans: %d %v", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := admit(ap("198.18.0.11:1"), "tcp"); err != nil {
		t.Fatalf("after camgate ban clear: got %v, want admitted", err)
	}
}

func TestAdmitLoopbackExempt(t *testing.T) {
	p := newPolicy(t, nil, "")
	admit := hooks(t, p, config.Rule{Name: "r", Deny: []string{"127.0.0.2"}, Guard: config.Guard{PerIPConnections: 1, PerIPRate: 1, PerIPBurst: 1}})
	for i := 0; i < 5; i++ {
		if _, err := admit(ap("127.0.0.1:1"), "tcp"); err != nil {
			t.Fatalf("loopback connection %d: %v", i, err)
		}
	}
	if _, err := admit(ap("127.0.0.2:1"), "tcp"); err == nil {
		t.Fatal("deny still applies to loopback: got admitted")
	}
}
