package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/internal/adminclient"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/store"
)

const routerHelp = `
Show the upstream router's port mappings (router automation: UPnP IGD,
NAT-PMP, PCP; see docs/ROUTER.md).

  camgate router status [--config camgate.yaml] [--json]

With a running gateway whose admin API answers, and an API token
(--token-file or CAMGATE_TOKEN), it shows that gateway's live state: the
router found, the protocol, the WAN address and every mapping with its
lease.

Otherwise (or with --probe) it asks the router itself, read-only, with the
config's router section: which protocols answer (PCP, NAT-PMP, UPnP),
the WAN address and whether it is public, CGNAT (100.64.0.0/10) or private,
the router's mapping table (UPnP GetGenericPortMappingEntry; PCP and
NAT-PMP cannot list), and where each rule with router: true stands in it.
Nothing is changed on the router. This works with router.mode: off too, to
see what would work before turning it on.

Exit status: 0 when a router answered, 1 when none did.`

func runRouter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stdout, strings.TrimSpace(routerHelp))
		if len(args) == 0 {
			return fmt.Errorf("%w: missing action (status)", errUsage)
		}
		return nil
	}
	if args[0] != "status" {
		return fmt.Errorf("%w: unknown action %q (the only one is status)", errUsage, args[0])
	}
	fl := newFlags(e, "router status", "[--config camgate.yaml] [--json] [--probe] [flags]", routerHelp)
	path := fl.String("config", "camgate.yaml", "config file")
	asJSON := fl.Bool("json", false, "print JSON")
	probe := fl.Bool("probe", false, "ask the router directly even if a gateway is running")
	tokenFile := fl.String("token-file", "", "file holding an API token for a running gateway (else $CAMGATE_TOKEN)")
	timeout := fl.Duration("timeout", 15*time.Second, "how long to wait for the router or the gateway")
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	cfg, err := store.Load(*path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("cannot read %s: %w", *path, pe.Err)
		}
		return problemsError(*path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	token := strings.TrimSpace(e.getenv("CAMGATE_TOKEN"))
	if !*probe && (token != "" || *tokenFile != "") {
		t, err := ruleTarget(ctx, e, ruleOpts{config: *path, tokenFile: *tokenFile, timeout: *timeout})
		if err != nil {
			return err
		}
		if t.api != nil {
			return routerFromAPI(ctx, e, t.api, *asJSON)
		}
	}

	rc := router.New(router.Config{Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	rep, err := rc.Probe(ctx, cfg)
	if *asJSON {
		if jerr := writeJSON(e.stdout, rep); jerr != nil {
			return jerr
		}
	} else {
		printReport(e.stdout, cfg, rep)
	}
	if err != nil {
		if *asJSON {
			return exitError(1)
		}
		return err
	}
	return nil
}

// routerFromAPI shows the running gateway's router status.
func routerFromAPI(ctx context.Context, e *env, api *adminclient.Client, asJSON bool) error {
	var out struct {
		Enabled bool           `json:"enabled"`
		Status  *router.Status `json:"status"`
	}
	if err := api.Do(ctx, http.MethodGet, "/api/v1/router", nil, &out); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, out)
	}
	if !out.Enabled || out.Status == nil {
		fmt.Fprintln(e.stdout, "The running gateway has no router automation.")
		return nil
	}
	printStatus(e.stdout, out.Status)
	if out.Status.Error != "" {
		return exitError(1)
	}
	return nil
}

func printStatus(w io.Writer, st *router.Status) {
	fmt.Fprintf(w, "Router automation (running gateway): mode %s\n", st.Mode)
	if st.Gateway.IsValid() {
		fmt.Fprintf(w, "Gateway:     %s (this host: %s)\n", st.Gateway, dash(st.LocalAddress.String()))
	}
	if st.Protocol != "" {
		fmt.Fprintf(w, "Protocol:    %s\n", st.Protocol)
	}
	if st.Device != "" {
		fmt.Fprintf(w, "Device:      %s\n", st.Device)
	}
	printWAN(w, st.ExternalIP.String(), st.WAN, st.Advice)
	if st.Error != "" {
		fmt.Fprintf(w, "Problem:     %s\n", st.Error)
	}
	if len(st.Mappings) == 0 {
		fmt.Fprintln(w, "\nNo rule has router: true (or router.mode is off).")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tPROTO\tPORT\tTO\tSTATE\tEXPIRES\tDETAIL")
	for _, m := range st.Mappings {
		exp := "-"
		if !m.Expires.IsZero() {
			exp = time.Until(m.Expires).Round(time.Second).String()
		}
		detail := m.Message
		if m.SuggestedPort != 0 && !strings.Contains(detail, fmt.Sprint(m.SuggestedPort)) {
			detail += fmt.Sprintf(" (try external port %d)", m.SuggestedPort)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s:%d\t%s\t%s\t%s\n", m.Rule, m.Protocol, m.ExternalPort, m.InternalAddr, m.InternalPort, m.State, exp, dash(detail))
	}
	tw.Flush()
	if st.Stale > 0 {
		fmt.Fprintf(w, "\n%d mapping(s) of removed rules or an earlier run are still being deleted.\n", st.Stale)
	}
}

func printWAN(w io.Writer, ip string, class router.WANClass, advice string) {
	if ip == "" || ip == "invalid IP" {
		ip = "unknown"
	}
	fmt.Fprintf(w, "WAN address: %s (%s)\n", ip, class)
	if advice != "" {
		fmt.Fprintf(w, "             %s\n", advice)
	}
}

func printReport(w io.Writer, cfg *config.Config, rep *router.Report) {
	note := ""
	if !cfg.Router.Enabled() {
		note = " (off: camgate maps nothing; this shows what would work)"
	}
	fmt.Fprintf(w, "Router automation: mode %s%s\n", rep.Mode, note)
	if !rep.Gateway.IsValid() {
		fmt.Fprintf(w, "Problem:     %s\n", rep.Error)
		return
	}
	fmt.Fprintf(w, "Gateway:     %s (this host: %s)\n", rep.Gateway, rep.LocalAddress)
	for i, ch := range rep.Checks {
		label := "Protocols:"
		if i > 0 {
			label = ""
		}
		yes := "no "
		if ch.Available {
			yes = "yes"
		}
		fmt.Fprintf(w, "%-12s %-10s %s  %s\n", label, ch.Protocol, yes, ch.Detail)
	}
	if rep.Protocol != "" {
		fmt.Fprintf(w, "In use:      %s\n", rep.Protocol)
	}
	if rep.Device != "" {
		fmt.Fprintf(w, "Device:      %s\n", rep.Device)
	}
	printWAN(w, rep.ExternalIP.String(), rep.WAN, rep.Advice)
	if rep.Error != "" {
		fmt.Fprintf(w, "Problem:     no router answered; check router.gateway, and that UPnP/NAT-PMP is on in the router\n")
		return
	}
	fmt.Fprintln(w)
	if len(rep.Entries) > 0 {
		fmt.Fprintln(w, "The router's mappings:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROTO\tEXTERNAL\tINTERNAL\tLEASE\tDESCRIPTION")
		for _, e := range rep.Entries {
			lease := "permanent"
			if e.LeaseSeconds > 0 {
				lease = (time.Duration(e.LeaseSeconds) * time.Second).String()
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s:%d\t%s\t%s\n", e.Protocol, e.ExternalPort, e.InternalClient, e.InternalPort, lease, dash(e.Description))
		}
		tw.Flush()
	} else if rep.EntriesNote == "" {
		fmt.Fprintln(w, "The router has no mappings.")
	}
	if rep.EntriesNote != "" {
		fmt.Fprintf(w, "Note: %s\n", rep.EntriesNote)
	}
	if len(rep.Rules) == 0 {
		fmt.Fprintln(w, "\nNo enabled rule has router: true.")
		return
	}
	fmt.Fprintln(w, "\nRules with router: true:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RULE\tPROTO\tPORT\tSTATE\tDETAIL")
	for _, m := range rep.Rules {
		state, detail := string(m.State), m.Message
		if m.State == router.StatePending {
			state = "not mapped"
			detail = strings.TrimPrefix(detail, "not mapped")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", m.Rule, m.Protocol, m.ExternalPort, state, dash(detail))
	}
	tw.Flush()
}
