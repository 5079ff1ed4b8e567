package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

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
