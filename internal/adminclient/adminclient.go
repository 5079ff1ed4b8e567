// Package adminclient lets a command-line tool change a running gateway
// through its admin API instead of writing camgate.yaml behind its back:
// Find looks for the gateway that serves a config file (its admin.listen
// address, dialled on loopback) and returns a Client for it, or nil when
// none answers, in which case the caller may edit the file itself.
//
//	c, err := adminclient.Find(ctx, adminclient.Options{ConfigPath: path, Config: cfg, Token: os.Getenv("CAMGATE_TOKEN")})
//	if c != nil {
//		err = c.Do(ctx, http.MethodPost, "/api/v1/rules", &rule, nil)
//	}
//
// HTTPS is verified by pinning the gateway's own certificate (from its
// state directory or admin.cert_file), so a self-signed certificate needs
// no CA and no host name. The package does not retry, and never logs or
// echoes the token.
package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
	"github.com/camgate/camgate/internal/vpn"
)

// Options say which gateway to find and how to authenticate.
type Options struct {
	// ConfigPath is the config file the gateway serves. Required.
	ConfigPath string
	// Config is that file, loaded. Required.
	Config *config.Config
	// Token is the API token (the caller reads it from $CAMGATE_TOKEN,
	// say). TokenFile, when set, wins: its first line is the token.
	Token     string
	TokenFile string
	// Timeout bounds each API call. Zero means 10 seconds.
	Timeout time.Duration
}

// probeTimeout bounds the dial that tells whether a gateway runs: on
// loopback it answers in microseconds, or is refused at once.
const probeTimeout = 2 * time.Second

// Client calls a running gateway's admin API with a bearer token.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// Find returns a Client for the gateway serving o.ConfigPath, or nil (and
// no error) when its admin API is off or nothing answers on its address.
// A gateway that answers but no token is given is an error: the change
// must go through it.
func Find(ctx context.Context, o Options) (*Client, error) {
	cfg := o.Config
	if !cfg.Admin.IsEnabled() {
		return nil, nil
	}
	ep, err := cfg.Admin.Endpoint()
	if err != nil {
		return nil, err
	}
	addr := ep.Addr
	if addr.Addr().IsUnspecified() {
		lo := netip.MustParseAddr("127.0.0.1")
		if addr.Addr().Is6() {
			lo = netip.IPv6Loopback()
		}
		addr = netip.AddrPortFrom(lo, addr.Port())
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	c, err := d.DialContext(dctx, "tcp", addr.String())
	cancel()
	if err != nil {
		// Nobody listens: no gateway is running with this config.
		return nil, nil
	}
	c.Close()
	token := strings.TrimSpace(o.Token)
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return nil, err
		}
		token, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		token = strings.TrimSpace(token)
	}
	if token == "" {
		return nil, fmt.Errorf("a gateway is running (its API answers at %s), so the change must go through it: "+
			"create an API token in the web UI (API tokens) and pass --token-file FILE or set CAMGATE_TOKEN "+
			"(or use --file to edit the file anyway, then reload the gateway with SIGHUP)", addr)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	base := "http://" + addr.String()
	hc := &http.Client{Timeout: timeout}
	if ep.HTTPS {
		base = "https://" + addr.String()
		certPath, _, _ := admin.CertPaths(cfg.Admin, o.ConfigPath, store.StateDir(o.ConfigPath, cfg))
		tc, err := PinnedTLS(certPath)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: nil}
	}
	return &Client{base: base, token: token, hc: hc}, nil
}

// Base returns the API's base URL, such as https://127.0.0.1:8443.
func (c *Client) Base() string { return c.base }

// PinnedTLS trusts exactly the certificate in certPath: the gateway's
// own, self-signed or not, so that no CA or host name is involved.
func PinnedTLS(certPath string) (*tls.Config, error) {
	b, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("cannot read the gateway's certificate to verify it: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", certPath)
	}
	want, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below, by comparing the certificate with
		// the pinned one; a self-signed certificate has no CA to check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want.Raw) {
				return fmt.Errorf("the gateway's certificate is not the one in %s", certPath)
			}
			return nil
		},
	}, nil
}

// Error is a refusal from the gateway: its HTTP status and message (such
// as 409 "camgate.yaml changed on disk: reload it first").
type Error struct {
	Status   int
	Message  string
	Problems []config.Problem
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("the gateway refused (%d %s): %s", e.Status, http.StatusText(e.Status), e.Message)
	if len(e.Problems) > 1 {
		for _, p := range e.Problems {
			msg += "\n  " + p.Error()
		}
	}
	return msg
}

// Do sends body (JSON, unless nil) with method to path and decodes the
// answer into out (unless nil). An answer of 300 or more is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("gateway API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var ae struct {
			Error    string           `json:"error"`
			Problems []config.Problem `json:"problems"`
		}
		json.Unmarshal(b, &ae)
		if ae.Error == "" {
			ae.Error = strings.TrimSpace(string(b))
		}
		return &Error{Status: resp.StatusCode, Message: ae.Error, Problems: ae.Problems}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("gateway API %s %s: %w", method, path, err)
		}
	}
	return nil
}

// VPNProbe asks the gateway for a short-lived WireGuard probe identity
// (POST /api/v1/vpn/probe), with which `camgate check` completes a real
// handshake against the VPN's port. End it with EndVPNProbe; the gateway
// forgets it by itself within a minute anyway.
func (c *Client) VPNProbe(ctx context.Context) (vpn.ProbeIdentity, error) {
	var pi vpn.ProbeIdentity
	err := c.Do(ctx, http.MethodPost, "/api/v1/vpn/probe", map[string]any{}, &pi)
	return pi, err
}

// EndVPNProbe removes a probe identity (DELETE /api/v1/vpn/probe/ID).
func (c *Client) EndVPNProbe(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/vpn/probe/"+url.PathEscape(id), nil, nil)
}
