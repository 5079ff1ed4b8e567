package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/store"
)

const banHelp = `
List or clear the sources banned by the brute-force guard (guard: auth;
see docs/SECURITY.md).

  camgate ban list  [--config camgate.yaml] [--rule R] [--source IP] [--json]
  camgate ban clear [--config camgate.yaml] [--rule R] [--source IP]

The ban list lives in the state directory (bans.json), so it survives
reloads and restarts, and these commands work whether or not camgate is
running. A running gateway writes the file on every change and checks it
for clears at least once a second (and whenever a connection arrives), so
a cleared source can connect again at once. clear with neither --rule nor
--source clears every ban. A ban lists the rule whose traffic earned it
and applies to every rule forwarding to the same device.`

func runBan(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stdout, strings.TrimSpace(banHelp))
		if len(args) == 0 {
			return fmt.Errorf("%w: missing action (list or clear)", errUsage)
		}
		return nil
	}
	action := args[0]
	if action != "list" && action != "clear" {
		return fmt.Errorf("%w: unknown action %q (use list or clear)", errUsage, action)
	}
	fl := newFlags(e, "ban "+action, "[--config camgate.yaml] [--rule R] [--source IP]", banHelp)
	path := fl.String("config", "camgate.yaml", "config file (its state_dir holds the ban list)")
	stateDir := fl.String("state-dir", "", "state directory; overrides the config's")
	rule := fl.String("rule", "", "only bans earned on this rule")
	source := fl.String("source", "", "only bans of this address (an IPv6 address matches its /64)")
	asJSON := fl.Bool("json", false, "print JSON (list)")
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	var src netip.Addr
	if *source != "" {
		a, err := netip.ParseAddr(*source)
		if err != nil {
			return fmt.Errorf("%w: --source %q is not an IP address", errUsage, *source)
		}
		src = a.Unmap()
	}
	dir := *stateDir
	if dir == "" {
		cfg, err := store.Load(*path)
		var pe *fs.PathError
		if errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot read %s: %w", *path, pe.Err)
		}
		// A config with problems still names its state directory.
		dir = store.StateDir(*path, cfg)
	}
	now := time.Now()
	if action == "clear" {
		n, err := guard.ClearBans(dir, src, *rule, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "cleared %d ban(s)%s\n", n, describeFilter(*rule, *source))
		return nil
	}
	bans, err := guard.ListBans(dir, now)
	if err != nil {
		return err
	}
	out := bans[:0]
	for _, b := range bans {
		if (*rule == "" || b.Rule == *rule) && (!src.IsValid() || b.Source.Contains(src)) {
			out = append(out, b)
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(e.stdout, "no bans in force%s\n", describeFilter(*rule, *source))
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tRULE\tDEVICE\tSINCE\tUNTIL\tREASON")
	for _, b := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sourceString(b.Source), b.Rule, b.Device,
			b.Since.Local().Format(time.DateTime), b.Until.Local().Format(time.DateTime), b.Reason)
	}
	return tw.Flush()
}

func sourceString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func describeFilter(rule, source string) string {
	var parts []string
	if rule != "" {
		parts = append(parts, "rule "+rule)
	}
	if source != "" {
		parts = append(parts, "source "+source)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
