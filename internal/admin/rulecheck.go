package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/check"
)

// A rule check (POST /api/v1/rules/{name}/check) changes nothing, but it
// makes outbound probes: a connection to camgate's own listener, to the
// device, and a hairpin through the router. It is treated as an action:
// full-scope login, cross-origin protection (as every POST), an audit
// entry, and limits so that a script or a held-down key cannot turn the
// gateway into a port scanner of its own LAN.
const (
	// checkBurst checks may run back to back from one source: enough to
	// test a Hikvision preset's four rules and retry one or two.
	checkBurst = 6
	// checkRefill gives a source one more check every 5 s (12 a minute
	// sustained) once its burst is spent.
	checkRefill = 5 * time.Second
	// checkParallel bounds checks running at once, gateway-wide.
	checkParallel = 2
	// checkDeadline bounds one check. A rule whose layers all answer takes
	// well under a second; a dead device costs check.DefaultTimeout per
	// layer, and a TCP+UDP rule has six layers. The admin server's write
	// timeout (30 s) is longer.
	checkDeadline = 15 * time.Second
	// maxCheckSources bounds the limiter's memory under a spray of source
	// addresses.
	maxCheckSources = 1024
)

// checkLimiter is a token bucket per source address (IPv6 per /64, as
// for login throttling).
type checkLimiter struct {
	mu sync.Mutex // guards following
	m  map[netip.Prefix]*checkBucket
}

type checkBucket struct {
	tokens float64
	last   time.Time
}

func newCheckLimiter() *checkLimiter { return &checkLimiter{m: map[netip.Prefix]*checkBucket{}} }

// take spends one check for src, or returns how long src must wait for
// the next one.
func (l *checkLimiter) take(src netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(src)
	b := l.m[key]
	if b == nil {
		l.evictLocked(now)
		b = &checkBucket{tokens: checkBurst, last: now}
		l.m[key] = b
	}
	b.refill(now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(checkRefill))
	}
	b.tokens--
	return 0
}

func (b *checkBucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(checkBurst, b.tokens+float64(now.Sub(b.last))/float64(checkRefill))
	}
	b.last = now
}

// evictLocked drops buckets that have refilled (they hold nothing a new
// bucket would not), then the stalest while the map is full.
func (l *checkLimiter) evictLocked(now time.Time) {
	if len(l.m) < maxCheckSources {
		return
	}
	for k, b := range l.m {
		if now.Sub(b.last) >= checkBurst*checkRefill {
			delete(l.m, k)
		}
	}
	evictStalest(l.m, maxCheckSources, func(b *checkBucket) time.Time { return b.last })
}

// checkRequest is the optional body of a rule check.
type checkRequest struct {
	// PublicIP is the site's public address, like `camgate check
	// --public-ip`; it wins over the router's and the config's.
	PublicIP string `json:"public_ip"`
}

// checkRule runs `camgate check` for one rule and returns the report
// (check.Report's JSON, with that rule only).
func (s *Server) checkRule(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req checkRequest
	// The body is optional: a bare POST checks with the router's or the
	// config's public address.
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	c := check.Config{Logger: s.log, KernelRules: s.kernelRules}
	if v := strings.TrimSpace(req.PublicIP); v != "" {
		ip, err := netip.ParseAddr(v)
		if err != nil || ip.Zone() != "" {
			return apiError{Status: http.StatusUnprocessableEntity, Message: "public_ip is not an IP address",
				Problems: problem("public_ip", "%q is not an IP address; leave it empty to use the router's or the config's", v)}
		}
		c.PublicIP = ip.Unmap()
	}
	cfg := s.site.Config()
	if cfg.Rule(name) == nil {
		return errorf(http.StatusNotFound, "no rule called %q", name)
	}
	select {
	case s.checking <- struct{}{}:
		defer func() { <-s.checking }()
	default:
		w.Header().Set("Retry-After", "5")
		return errorf(http.StatusTooManyRequests, "%d rule checks are running already; try again in a few seconds", checkParallel)
	}
	if wait := s.checks.take(clientIP(r), s.now()); wait > 0 {
		secs := int(wait.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return errorf(http.StatusTooManyRequests, "too many rule checks from %s; try again in %d s", clientIP(r), secs)
	}
	// serve runs the router client even with router.mode off (to clean up
	// old mappings), so only an enabled mode makes its WAN address count,
	// as for `camgate check`.
	if s.router != nil && cfg.Router.Enabled() {
		c.RouterWAN = routerWAN(s.router)
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkDeadline)
	defer cancel()
	rep, err := check.Run(ctx, c, cfg, []string{name})
	if errors.Is(err, check.ErrUnknownRule) {
		return errorf(http.StatusNotFound, "no rule called %q", name)
	}
	if err != nil {
		s.record(r, "rule.check", name, false, err.Error())
		return err
	}
	detail := fmt.Sprintf("%d ok, %d failed, %d unknown", rep.OK, rep.Failed, rep.Unknown)
	if c.PublicIP.IsValid() {
		detail += "; public_ip " + c.PublicIP.String()
	}
	s.record(r, "rule.check", name, true, detail)
	writeJSON(w, http.StatusOK, &rep)
	return nil
}

// routerWAN reads the WAN address the router client last learnt. It asks
// the router nothing: the client keeps its status up to date, and a check
// must not wait for a slow router.
func routerWAN(rs RouterStatus) func(ctx context.Context) (netip.Addr, error) {
	return func(ctx context.Context) (netip.Addr, error) {
		st := rs.Status()
		if !st.ExternalIP.IsValid() {
			if st.Error != "" {
				return netip.Addr{}, fmt.Errorf("the router has not reported a WAN address: %s", st.Error)
			}
			return netip.Addr{}, errors.New("the router has not reported a WAN address yet")
		}
		return st.ExternalIP, nil
	}
}
