// Package ddns keeps a DNS name pointed at the site's public address, the
// way HiDDNS or a router's "Dynamic DNS" page does, so viewers can use a
// name instead of a home IP that changes.
//
//	u := ddns.New(ddns.Config{Source: src, StateDir: dir, Logger: log})
//	u.SetSettings(cfg.DDNS) // again on every reload
//	go u.Run(ctx)
//	st := u.Status()        // for the dashboard
//
// It speaks three protocols: dyndns2 (No-IP, Dyn and most providers in a
// router's list), DuckDNS, and a URL template for anything else. The
// public address comes from Source (router automation's external address,
// or the config's public_ip). An update is sent only when that address
// differs from the one last set, which is remembered in the state
// directory across restarts. Answers are handled as each protocol says:
// dyndns2's badauth, nohost, notfqdn, abuse and the like stop updates
// until the next reload (retrying would get the account blocked);
// 911, dnserr, HTTP 5xx and network errors back off exponentially.
//
// Passwords and tokens are read from files at each update and never
// logged, shown or put in an error: not even inside a URL, which is why
// HTTP errors are reduced to their cause.
//
// The package does not resolve the name to check it, and does not
// register names or accounts.
package ddns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

// AddrSource says what the site's public address is now. An invalid
// Addr with a nil error means "not known yet".
type AddrSource interface {
	PublicAddr(ctx context.Context) (netip.Addr, error)
}

// AddrFunc adapts a function to AddrSource.
type AddrFunc func(ctx context.Context) (netip.Addr, error)

// PublicAddr calls f.
func (f AddrFunc) PublicAddr(ctx context.Context) (netip.Addr, error) { return f(ctx) }

// Config configures an Updater.
type Config struct {
	// Source gives the public address. Required.
	Source AddrSource
	// StateDir keeps ddns.json, the last address set, so a restart does
	// not send a needless update. Empty means memory only.
	StateDir string
	// BaseDir resolves relative password_file and token_file paths (the
	// config file's folder). Empty means the working directory.
	BaseDir string
	// Client sends the updates. Nil means a client with a 20s timeout.
	Client *http.Client
	// Logger receives updates and failures, never secrets. Nil discards.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// RetryBase is the first wait after a network error or an HTTP 5xx,
	// doubled on each failure in a row up to MaxRetry. 0 means 1 minute.
	RetryBase time.Duration
	// MaxRetry caps the backoff. 0 means 1 hour.
	MaxRetry time.Duration
	// ServerErrorWait is the least wait after dyndns2's 911 or dnserr.
	// 0 means 30 minutes, which the protocol asks for.
	ServerErrorWait time.Duration
	// UserAgent identifies camgate to the provider (dyndns2 requires
	// one). Empty means "camgate".
	UserAgent string
}

// State is where an Updater stands.
type State string

// The states shown on the dashboard.
const (
	StateOff      State = "off"     // no ddns section
	StateWaiting  State = "waiting" // the public address is not known yet
	StateUpToDate State = "up to date"
	StateBackoff  State = "retrying" // a transient failure; NextTry says when
	StateStopped  State = "stopped"  // a fatal answer; Fix says what to do
)

// Status is the updater's state for the dashboard and /api/v1/status.
type Status struct {
	Provider string `json:"provider"`
	Hostname string `json:"hostname,omitempty"`
	State    State  `json:"state"`
	// PublicIP is the public address last seen from the source.
	PublicIP netip.Addr `json:"public_ip,omitzero"`
	// Address is the address the name was last set to, and Updated when.
	Address netip.Addr `json:"address,omitzero"`
	Updated time.Time  `json:"updated,omitzero"`
	// Result is the provider's last answer ("good", "nochg", "badauth",
	// "OK", "HTTP 503", ...).
	Result string `json:"result,omitempty"`
	// Error says what went wrong and Fix what to do about it.
	Error   string    `json:"error,omitempty"`
	Fix     string    `json:"fix,omitempty"`
	NextTry time.Time `json:"next_try,omitzero"`
	// Updates counts the update requests sent since the start.
	Updates int `json:"updates"`
}

// Updater keeps one name updated. Its methods are safe for concurrent use.
type Updater struct {
	c      Config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	wake   chan struct{}

	mu       sync.Mutex // guards following
	settings config.DDNS
	status   Status
	failures int
}

// New returns an Updater, off until SetSettings gives it a provider.
func New(c Config) *Updater {
	if c.Source == nil {
		panic("ddns: Config.Source is required")
	}
	u := &Updater{c: c, log: c.Logger, client: c.Client, now: c.Now, wake: make(chan struct{}, 1)}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("component", "ddns")
	if u.client == nil {
		u.client = &http.Client{Timeout: 20 * time.Second}
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.status = Status{Provider: string(config.DDNSOff), State: StateOff}
	return u
}

func (u *Updater) retryBase() time.Duration { return orDefault(u.c.RetryBase, time.Minute) }
func (u *Updater) maxRetry() time.Duration  { return orDefault(u.c.MaxRetry, time.Hour) }
func (u *Updater) serverWait() time.Duration {
	return orDefault(u.c.ServerErrorWait, 30*time.Minute)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// SetSettings applies the config's ddns section; serve calls it on every
// reload. Changed settings clear a stop and a backoff (the owner fixed
// something) and check at once. Unchanged settings clear only a stop: the
// owner may have fixed the password file and reloaded, and one retry per
// reload is not the hammering the protocols forbid.
func (u *Updater) SetSettings(d config.DDNS) {
	u.mu.Lock()
	if !d.Enabled() && !u.settings.Enabled() {
		u.mu.Unlock()
		return
	}
	if d == u.settings && u.status.State != StateOff && u.status.State != StateStopped {
		u.mu.Unlock()
		return
	}
	u.settings = d
	u.failures = 0
	u.status = Status{Provider: string(d.EffectiveProvider()), Hostname: d.Hostname, State: StateWaiting, Updates: u.status.Updates}
	if !d.Enabled() {
		u.status.State = StateOff
	} else if st, ok := u.loadState(d); ok {
		u.status.Address, u.status.Updated, u.status.Result = st.Address, st.Updated, "remembered"
	}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Status returns a copy of the current state.
func (u *Updater) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

// Run checks the public address every interval (sooner after a settings
// change, later while backing off) until ctx is done.
func (u *Updater) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-u.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		t.Reset(u.Check(ctx))
	}
}

// Check looks at the public address once, sends an update if it changed
// and the updater is not stopped or backing off, and returns how long to
// wait before the next check.
func (u *Updater) Check(ctx context.Context) time.Duration {
	u.mu.Lock()
	d, st := u.settings, u.status
	u.mu.Unlock()
	every := d.Every()
	if !d.Enabled() || st.State == StateStopped {
		return every
	}
	now := u.now()
	if st.State == StateBackoff && now.Before(st.NextTry) {
		return st.NextTry.Sub(now)
	}
	ip, err := u.c.Source.PublicAddr(ctx)
	if err != nil || !ip.IsValid() {
		msg := "camgate does not know the public address yet"
		if err != nil {
			msg = fmt.Sprintf("cannot learn the public address: %v", err)
		}
		u.set(d, func(s *Status) {
			s.State, s.Error = StateWaiting, msg
			s.Fix = "turn on router automation (router.mode: auto) so camgate reads the router's WAN address, or set public_ip in camgate.yaml"
		})
		return every
	}
	ip = ip.Unmap()
	if ip == st.Address {
		u.set(d, func(s *Status) {
			s.PublicIP, s.State, s.Error, s.Fix, s.NextTry = ip, StateUpToDate, "", "", time.Time{}
		})
		return every
	}
	res := u.update(ctx, d, ip)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.settings != d { // changed while the request was out: start over
		return 0
	}
	s := &u.status
	s.PublicIP, s.Result, s.Updates = ip, res.answer, s.Updates+1
	switch res.kind {
	case resultOK:
		u.failures = 0
		s.State, s.Address, s.Updated, s.Error, s.Fix, s.NextTry = StateUpToDate, ip, now, "", "", time.Time{}
		u.saveState(d, ip, now)
		u.log.Info("dynamic DNS updated", "provider", d.EffectiveProvider(), "hostname", d.Hostname, "address", ip, "answer", res.answer)
		return every
	case resultFatal:
		s.State, s.Error, s.Fix, s.NextTry = StateStopped, res.err, res.fix, time.Time{}
		u.log.Error("dynamic DNS update refused; updates stop until the config is reloaded", "provider", d.EffectiveProvider(), "hostname", d.Hostname, "answer", res.answer, "err", res.err, "fix", res.fix)
		return every
	default:
		u.failures++
		wait := u.retryBase() << min(u.failures-1, 20)
		if wait > u.maxRetry() || wait <= 0 {
			wait = u.maxRetry()
		}
		if res.serverError && wait < u.serverWait() {
			wait = u.serverWait()
		}
		s.State, s.Error, s.Fix, s.NextTry = StateBackoff, res.err, res.fix, now.Add(wait)
		u.log.Warn("dynamic DNS update failed; retrying later", "provider", d.EffectiveProvider(), "hostname", d.Hostname, "answer", res.answer, "err", res.err, "retry_in", wait)
		return wait
	}
}

// set edits the status if the settings are still d.
func (u *Updater) set(d config.DDNS, f func(*Status)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.settings == d {
		f(&u.status)
	}
}

type resultKind int

const (
	resultOK resultKind = iota
	resultRetry
	resultFatal
)

// result is one update's outcome. err and fix never hold a secret.
type result struct {
	kind        resultKind
	answer      string
	err, fix    string
	serverError bool // dyndns2 911 or dnserr: wait at least ServerErrorWait
}

func (u *Updater) update(ctx context.Context, d config.DDNS, ip netip.Addr) result {
	switch d.EffectiveProvider() {
	case config.DDNSDyndns2, config.DDNSNoIP, config.DDNSDyn:
		return u.dyndns2(ctx, d, ip)
	case config.DDNSDuckDNS:
		return u.duckdns(ctx, d, ip)
	case config.DDNSURL:
		return u.template(ctx, d, ip)
	}
	return result{kind: resultFatal, err: fmt.Sprintf("unknown provider %q", d.Provider), fix: "set ddns.provider to dyndns2, noip, dyn, duckdns or url"}
}

// maxAnswer bounds what is read of an answer: dyndns2 and DuckDNS answer
// in a few bytes per host.
const maxAnswer = 4 << 10

// get sends req and returns the status and the start of the body. A
// transport error is reduced to its cause: *url.Error's text holds the
// URL, which holds DuckDNS's token.
func (u *Updater) get(req *http.Request) (int, string, error) {
	ua := u.c.UserAgent
	if ua == "" {
		ua = "camgate"
	}
	req.Header.Set("User-Agent", ua)
	resp, err := u.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, "", fmt.Errorf("cannot reach %s: %v", req.URL.Host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// call sends GET server?params, with basic auth when user is set, and
// returns the status, the answer and the server's host; or, for a request
// that could not be made or got no answer, the result to report.
func (u *Updater) call(ctx context.Context, server string, params url.Values, user, pass string) (int, string, string, *result) {
	notSent := &result{kind: resultFatal, answer: "not sent", err: "the ddns server or url is not a URL", fix: "check ddns.server or ddns.url"}
	su, err := url.Parse(server)
	if err != nil {
		return 0, "", "", notSent
	}
	q := su.Query()
	for k, v := range params {
		q[k] = v
	}
	su.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, su.String(), nil)
	if err != nil {
		return 0, "", "", notSent
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	code, body, err := u.get(req)
	if err != nil {
		r := netError(err)
		return 0, "", su.Host, &r
	}
	return code, body, su.Host, nil
}

// netError is the result of a request that got no answer.
func netError(err error) result {
	return result{kind: resultRetry, answer: "no answer", err: err.Error(), fix: "check this host's internet connection and DNS; camgate retries with backoff"}
}

// httpError classifies a non-2xx status that the protocol gave no
// meaning of its own.
func httpError(host string, code int) result {
	r := result{answer: fmt.Sprintf("HTTP %d", code), err: fmt.Sprintf("%s answered HTTP %d", host, code)}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		r.kind, r.fix = resultFatal, "check the user name and the password or token file"
	case code == http.StatusTooManyRequests || code >= 500:
		r.kind, r.fix = resultRetry, "the provider is busy or down; camgate retries with backoff"
	default:
		r.kind, r.fix = resultFatal, "check the ddns server or url setting"
	}
	return r
}

// readSecret reads a password or token file: its first line, trimmed.
// Errors name the file, never its content.
func (u *Updater) readSecret(field, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("ddns.%s is not set", field)
	}
	if !filepath.IsAbs(path) && u.c.BaseDir != "" {
		path = filepath.Join(u.c.BaseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("ddns.%s %s: %v", field, path, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "", fmt.Errorf("ddns.%s %s is empty", field, path)
	}
	return s, nil
}

func secretError(err error) result {
	return result{kind: resultFatal, answer: "not sent", err: err.Error(), fix: "put the secret alone in that file, readable by the camgate user (chmod 600), then reload"}
}

// saved is ddns.json: the last address set for a provider and name.
type saved struct {
	Provider string     `json:"provider"`
	Hostname string     `json:"hostname"`
	Address  netip.Addr `json:"address"`
	Updated  time.Time  `json:"updated"`
}

func (u *Updater) stateFile() string {
	if u.c.StateDir == "" {
		return ""
	}
	return filepath.Join(u.c.StateDir, "ddns.json")
}

func (u *Updater) loadState(d config.DDNS) (saved, bool) {
	var s saved
	f := u.stateFile()
	if f == "" {
		return s, false
	}
	b, err := os.ReadFile(f)
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, s.Provider == string(d.EffectiveProvider()) && s.Hostname == d.Hostname && s.Address.IsValid()
}

func (u *Updater) saveState(d config.DDNS, ip netip.Addr, when time.Time) {
	f := u.stateFile()
	if f == "" {
		return
	}
	b, _ := json.Marshal(saved{Provider: string(d.EffectiveProvider()), Hostname: d.Hostname, Address: ip, Updated: when})
	if err := store.WriteFile(f, b, 0o600); err != nil {
		u.log.Warn("cannot remember the address set; a restart will send one more update", "err", err)
	}
}
