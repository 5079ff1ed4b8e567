package hikvision

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/icholy/digest"
)

// ISAPI paths the client reads.
const (
	PathDeviceInfo    = "/ISAPI/System/deviceInfo"
	PathAdminAccesses = "/ISAPI/Security/adminAccesses"
	PathInterfaces    = "/ISAPI/System/Network/interfaces"
)

// DefaultTimeout bounds one call (challenge plus credentialed request)
// when Config.Timeout is zero. Devices on the LAN answer in milliseconds;
// a DVR busy recording can take a few seconds.
const DefaultTimeout = 10 * time.Second

// Config configures a Client.
type Config struct {
	// BaseURL is the device's root, e.g. "http://192.168.1.64:8082" or
	// "https://192.168.1.64". It must not contain credentials. If empty,
	// Host and Scheme are used.
	BaseURL string
	// Host is "ip", "ip:port" or "name:port", used when BaseURL is empty.
	Host string
	// Scheme is "http" or "https" for Host. Empty means "http".
	Scheme string
	// Username and Password are the device account. An empty Username
	// means no credentials: only unauthenticated requests are made.
	Username, Password string
	// HTTPClient makes the requests. Nil means a client with its own
	// transport, built from TLSConfig and AcceptSelfSigned. Redirects are
	// never followed, whatever the client: a redirect is reported as an
	// error naming its target.
	HTTPClient *http.Client
	// TLSConfig is used for https when HTTPClient is nil. Nil means the
	// system roots.
	TLSConfig *tls.Config
	// AcceptSelfSigned skips certificate verification for https, because
	// devices ship self-signed certificates. Default false: verify.
	AcceptSelfSigned bool
	// Timeout bounds each call. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives debug lines about requests (never credentials). Nil
	// means discard.
	Logger *slog.Logger
}

// Client reads one device over ISAPI. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	user     string
	pass     string
	hc       *http.Client
	timeout  time.Duration
	log      *slog.Logger
	ownTrans *http.Transport // closed by Close when we built it
}

// New returns a client for the device in cfg.
func New(cfg Config) (*Client, error) {
	raw := cfg.BaseURL
	if raw == "" {
		if cfg.Host == "" {
			return nil, errors.New("isapi client: no device address (BaseURL or Host)")
		}
		scheme := cfg.Scheme
		if scheme == "" {
			scheme = "http"
		}
		raw = scheme + "://" + cfg.Host
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("isapi client: device address %q: %w", raw, err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("isapi client: device address %s: put the user name and password in the client's credentials, not the URL", u.Redacted())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("isapi client: device address %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("isapi client: device address %q has no host", raw)
	}
	u.Path, u.RawQuery, u.Fragment = strings.TrimSuffix(u.Path, "/"), "", ""
	c := &Client{base: u, user: cfg.Username, pass: cfg.Password, timeout: cfg.Timeout, log: cfg.Logger}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "isapi", "device", u.Host)
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSConfig != nil {
			tlsConf = cfg.TLSConfig.Clone()
		}
		if cfg.AcceptSelfSigned {
			tlsConf.InsecureSkipVerify = true
		}
		c.ownTrans = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: c.timeout}).DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: c.timeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		}
		hc.Transport = c.ownTrans
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

// Device returns the host:port the client talks to, for messages.
func (c *Client) Device() string { return c.base.Host }

// Close releases idle connections of a transport the client built.
func (c *Client) Close() {
	if c.ownTrans != nil {
		c.ownTrans.CloseIdleConnections()
	}
}

// DeviceInfo reads /ISAPI/System/deviceInfo.
func (c *Client) DeviceInfo(ctx context.Context) (DeviceInfo, error) {
	body, err := c.Get(ctx, PathDeviceInfo)
	if err != nil {
		return DeviceInfo{}, err
	}
	info, err := ParseDeviceInfo(body)
	return info, c.docErr(PathDeviceInfo, err)
}

// AdminAccesses reads /ISAPI/Security/adminAccesses: the device's real
// service ports keyed by protocol name.
func (c *Client) AdminAccesses(ctx context.Context) (Ports, error) {
	body, err := c.Get(ctx, PathAdminAccesses)
	if err != nil {
		return nil, err
	}
	p, err := ParseAdminAccesses(body)
	return p, c.docErr(PathAdminAccesses, err)
}

// NetworkInterfaces reads /ISAPI/System/Network/interfaces.
func (c *Client) NetworkInterfaces(ctx context.Context) ([]NetworkInterface, error) {
	body, err := c.Get(ctx, PathInterfaces)
	if err != nil {
		return nil, err
	}
	l, err := ParseInterfaces(body)
	return l, c.docErr(PathInterfaces, err)
}

// docErr names the device and path in a parse error.
func (c *Client) docErr(path string, err error) error {
	if err == nil {
		return nil
	}
	var se *StatusError
	if errors.As(err, &se) {
		se.Device, se.Path = c.base.Host, path
		if se.Status.Locked() {
			return c.lockedErr(se.Status, nil)
		}
		return se
	}
	return fmt.Errorf("device %s: GET %s: %w", c.base.Host, path, err)
}

// Get fetches path and returns the body of a 200 answer.
//
// It makes at most one credentialed attempt: an unauthenticated request
// first, whose 401 carries the Digest challenge (that is not a failed
// login), then one request with credentials computed from that fresh
// challenge. A 401 to that request is ErrUnauthorized and is not retried;
// an answer that says the address is locked is ErrLocked. A challenge is
// never reused across calls, so a stale nonce cannot cost a second try.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = c.base.Path + path

	resp, body, err := c.roundTrip(ctx, &u, "")
	if err != nil {
		return nil, err
	}
	c.log.Debug("isapi request", "path", path, "status", resp.StatusCode, "credentials", false)
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return nil, c.statusErr(path, resp, body)
	}
	if le := c.lockFrom(resp, body); le != nil {
		return nil, le
	}
	if c.user == "" {
		return nil, &AuthError{Device: c.base.Host, RemainingAttempts: -1, NoCredentials: true}
	}
	chal, err := digest.FindChallenge(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("device %s: GET %s: %w (the device offers %s; enable digest authentication on it)",
			c.base.Host, path, ErrNoDigest, schemes(resp.Header))
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method: http.MethodGet, URI: u.RequestURI(), Count: 1,
		Username: c.user, Password: c.pass,
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: GET %s: %w: %v", c.base.Host, path, ErrNoDigest, err)
	}

	resp, body, err = c.roundTrip(ctx, &u, cred.String())
	if err != nil {
		return nil, err
	}
	c.log.Debug("isapi request", "path", path, "status", resp.StatusCode, "credentials", true)
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusUnauthorized:
		if le := c.lockFrom(resp, body); le != nil {
			return nil, le
		}
		if ch, err := digest.FindChallenge(resp.Header); err == nil && ch.Stale {
			return nil, fmt.Errorf("device %s: GET %s: the device called its own fresh nonce stale; not retrying, try again", c.base.Host, path)
		}
		ae := &AuthError{Device: c.base.Host, RemainingAttempts: -1}
		if st, err := ParseStatus(body); err == nil {
			ae.RemainingAttempts = st.RetryLoginTime
		}
		return nil, ae
	default:
		return nil, c.statusErr(path, resp, body)
	}
}

// roundTrip sends one GET and reads a bounded body.
func (c *Client) roundTrip(ctx context.Context, u *url.URL, authorization string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("device %s: %w", c.base.Host, err)
	}
	req.Header.Set("Accept", "application/xml, text/xml, */*")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("device %s: GET %s: %w", c.base.Host, u.Path, stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDoc+1))
	if err != nil {
		return nil, nil, fmt.Errorf("device %s: GET %s: read body: %w", c.base.Host, u.Path, err)
	}
	if len(body) > maxDoc {
		return nil, nil, fmt.Errorf("device %s: GET %s: body larger than %d bytes", c.base.Host, u.Path, maxDoc)
	}
	return resp, body, nil
}

// stripURL drops the *url.Error wrapper, whose text repeats the URL; our
// own message already names the device and path.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusErr turns a non-200, non-401 answer into ErrLocked or a
// *StatusError.
func (c *Client) statusErr(path string, resp *http.Response, body []byte) error {
	if le := c.lockFrom(resp, body); le != nil {
		return le
	}
	se := &StatusError{Device: c.base.Host, Path: path, HTTPStatus: resp.StatusCode}
	if st, err := ParseStatus(body); err == nil && st.IsStatus() {
		se.Status = st
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		se.Location = resp.Header.Get("Location")
	}
	return se
}

// lockFrom recognises a locked-out answer: a status body saying so
// (lockStatus=lock, a subStatusCode such as "userLocked", unlockTime), or
// a 401/403 whose text speaks of a lock. It returns nil otherwise.
func (c *Client) lockFrom(resp *http.Response, body []byte) *LockedError {
	st, err := ParseStatus(body)
	if err == nil && st.IsStatus() {
		if st.Locked() || (st.LockStatus == "" && st.UnlockTime > 0) {
			return c.lockedErr(st, resp)
		}
		if st.LockStatus != "" {
			return nil // the device says explicitly it is not locked
		}
	}
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		text := string(body)
		if len(text) > 4096 {
			text = text[:4096]
		}
		if mentionsLock(text) || mentionsLock(resp.Header.Get("X-Lock-Status")) {
			return c.lockedErr(Status{RetryLoginTime: -1}, resp)
		}
	}
	return nil
}

func (c *Client) lockedErr(st Status, resp *http.Response) *LockedError {
	le := &LockedError{Device: c.base.Host, Remaining: st.UnlockTime}
	for _, s := range []string{st.SubStatusCode, st.StatusString, st.ErrorMsg} {
		if s != "" && mentionsLock(s) {
			le.Detail = s
			break
		}
	}
	if le.Detail == "" && st.LockStatus != "" {
		le.Detail = "lockStatus " + st.LockStatus
	}
	if le.Remaining == 0 && resp != nil {
		if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
			le.Remaining = time.Duration(secs) * time.Second
		}
	}
	return le
}

// schemes lists the authentication schemes a 401 offered, for messages.
func schemes(h http.Header) string {
	var out []string
	for _, v := range h.Values("WWW-Authenticate") {
		s, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "no WWW-Authenticate challenge"
	}
	return strings.Join(out, ", ")
}
