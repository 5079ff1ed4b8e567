package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/adminclient"
	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/nft"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/store"
)

const checkHelp = `
Test each rule in three layers and say, per layer, ✓ (works), ✗ (broken)
or ? (cannot tell), with a one-line reason and a one-line fix:

  gateway  camgate listens on the rule's external port (for each protocol),
           and no other program holds it; for a rule on the kernel path,
           its nftables DNAT is in camgate's table;
  inside   the device answers on its internal port, with a probe that fits
           the port: HTTP GET / (and whether it looks like a Hikvision web
           server), HTTPS (TLS handshake, certificate subject and expiry),
           RTSP OPTIONS (200 or 401 both mean alive), a TCP connect for the
           server/SDK port, a datagram for UDP where that can tell anything;
  outside  the public address is not CGNAT or private, and the same probe
           works through it: a hairpin connection to public-IP:port from
           this host, or from --from. A failed hairpin is "?", not "✗":
           many routers cannot loop back to their own public address.

With vpn: {enabled: true}, the VPN's UDP port is checked too (as "vpn";
name it to check only the VPN):

  gateway  camgate holds the VPN's UDP port;
  outside  a real WireGuard handshake completes through the public address
           (hairpin, or from --from). WireGuard answers only keys it knows,
           so check asks the running gateway's API for a probe key that
           reaches nothing, lives at most a minute and is removed as soon
           as the handshake is over: give check an API token
           (--token-file or CAMGATE_TOKEN).

The public address comes from --public-ip, else from the router when router
mode is configured, else from public_ip in the config. Without RULE
arguments every enabled rule is checked. Run it on the host that runs
camgate serve. Nothing is written to any device and no password is sent.

Exit status: 0 when nothing is ✗, 1 when something is ✗, 2 for bad
arguments. See docs/CHECK-AND-AUDIT.md.`

func runCheck(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "check", "[flags] [RULE...]", checkHelp)
	path := fl.String("config", "camgate.yaml", "config file")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	publicIP := fl.String("public-ip", "", "the site's public IP address (overrides the router and public_ip)")
	from := fl.String("from", "", "run the outside probe from this source `address`, or from network namespace netns:NAME")
	timeout := fl.Duration("timeout", check.DefaultTimeout, "time limit for each probe")
	tokenFile := fl.String("token-file", "", "file holding an API token, for the VPN's probe key (else $CAMGATE_TOKEN)")
	names, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	c := check.Config{From: *from, Timeout: *timeout, KernelRules: nft.InstalledRules}
	if *publicIP != "" {
		ip, err := netip.ParseAddr(*publicIP)
		if err != nil {
			return fmt.Errorf("%w: --public-ip %q is not an IP address", errUsage, *publicIP)
		}
		c.PublicIP = ip
	}
	if _, err := check.ParseFrom(*from); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, err := store.Load(*path)
	if err != nil {
		return fmt.Errorf("config %s: %w", *path, err)
	}
	if cfg.VPN.Enabled {
		c.VPNProbe = vpnProbe(*path, cfg, e.getenv("CAMGATE_TOKEN"), *tokenFile)
	}
	if cfg.Router.Enabled() && !c.PublicIP.IsValid() {
		c.RouterWAN = routerWAN(cfg)
	}
	rep, err := check.Run(ctx, c, cfg, names)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *asJSON {
		if err := writeJSON(e.stdout, &rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(e.stdout); err != nil {
		return err
	}
	if rep.HasFailures() {
		return exitError(1)
	}
	return nil
}

// vpnProbe asks the running gateway's admin API for a probe identity
// of its VPN, for check's handshake; End removes it again.
func vpnProbe(path string, cfg *config.Config, token, tokenFile string) func(ctx context.Context) (check.VPNProbe, error) {
	return func(ctx context.Context) (check.VPNProbe, error) {
		if !cfg.Admin.IsEnabled() {
			return check.VPNProbe{}, errors.New("the admin API is off (admin.enabled: false), and only the running gateway can add a probe key")
		}
		if strings.TrimSpace(token) == "" && tokenFile == "" {
			return check.VPNProbe{}, errors.New("no API token given to ask for one")
		}
		api, err := adminclient.Find(ctx, adminclient.Options{ConfigPath: path, Config: cfg, Token: token, TokenFile: tokenFile})
		if err != nil {
			return check.VPNProbe{}, err
		}
		if api == nil {
			return check.VPNProbe{}, fmt.Errorf("no gateway answers for %s", path)
		}
		pi, err := api.VPNProbe(ctx)
		if err != nil {
			return check.VPNProbe{}, err
		}
		end := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			api.EndVPNProbe(ctx, pi.ID) // the gateway drops it within a minute anyway
		}
		return check.VPNProbe{ServerKey: pi.ServerKey, PrivateKey: pi.PrivateKey, Port: pi.Port, End: end}, nil
	}
}

// routerWAN asks the upstream router for its WAN address, read-only
// (router.Client.Probe changes nothing on the router).
func routerWAN(cfg *config.Config) func(ctx context.Context) (netip.Addr, error) {
	return func(ctx context.Context) (netip.Addr, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rep, err := router.New(router.Config{}).Probe(ctx, cfg)
		if err != nil {
			return netip.Addr{}, err
		}
		if !rep.ExternalIP.IsValid() {
			return netip.Addr{}, fmt.Errorf("the router (%s) did not report a WAN address", rep.Protocol)
		}
		return rep.ExternalIP, nil
	}
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("check dvr-web --json"), and returns the
// positional ones.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fl, args); err != nil {
			return nil, err
		}
		rest := fl.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
