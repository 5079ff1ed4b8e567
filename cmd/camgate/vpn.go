package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/internal/store"
	"github.com/camgate/camgate/internal/vpn"
)

const vpnHelp = `
Manage the built-in WireGuard VPN's peers (vpn: {enabled: true} in
camgate.yaml turns it on):

  camgate vpn add NAME --allow dvr1,dvr2 [--expires 30d] [--qr FILE.png] [--endpoint HOST[:PORT]]
  camgate vpn list
  camgate vpn rm NAME

add prints the peer's WireGuard config (wg-quick format: the devices it may
reach are its AllowedIPs) and, with --qr, writes it as a QR code PNG for the
WireGuard app to scan. The config holds the peer's private key and is shown
only this once. --allow takes device names as "device add --name" gave
them. --expires takes 30d, 12h, 2w, a date (2027-01-31) or never (default).

rm cuts the peer's tunnel at once. An expired peer cannot connect; it stays
listed until removed.

The commands go through the running gateway's admin API, like "camgate
rule": pass an API token with --token-file or CAMGATE_TOKEN.`

func runVPN(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stdout, strings.TrimSpace(vpnHelp))
		if len(args) == 0 {
			return fmt.Errorf("%w: missing action (add, list, rm)", errUsage)
		}
		return nil
	}
	action, args := args[0], args[1:]
	var o ruleOpts
	fl := newFlags(e, "vpn "+action, "[flags]", vpnHelp)
	fl.StringVar(&o.config, "config", "camgate.yaml", "config file")
	fl.StringVar(&o.tokenFile, "token-file", "", "file holding an API token (else $CAMGATE_TOKEN)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the gateway's API")
	var allow, expires, qrFile, endpoint string
	switch action {
	case "list":
		fl.BoolVar(&o.asJSON, "json", false, "print JSON")
	case "add":
		fl.StringVar(&allow, "allow", "", "comma-separated device names the peer may reach (required)")
		fl.StringVar(&expires, "expires", "", "when the peer stops working: 30d, 12h, 2w, 2027-01-31 or never")
		fl.StringVar(&qrFile, "qr", "", "write the config as a QR code PNG to this file")
		fl.StringVar(&endpoint, "endpoint", "", "host[:port] phones dial (default: vpn.endpoint, then public_ip)")
		fl.BoolVar(&o.asJSON, "json", false, "print JSON")
	case "rm":
	default:
		return fmt.Errorf("%w: unknown action %q (add, list, rm)", errUsage, action)
	}
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	var name string
	if action == "list" {
		if len(pos) > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
		}
	} else {
		if len(pos) != 1 {
			return fmt.Errorf("%w: camgate vpn %s NAME", errUsage, action)
		}
		name = pos[0]
	}
	if action == "add" {
		if err := vpn.ValidName(name); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if allow == "" {
			return fmt.Errorf("%w: vpn add needs --allow with the devices the peer may reach", errUsage)
		}
		if _, err := vpn.ParseExpiry(expires, time.Now()); err != nil {
			return fmt.Errorf("%w: --expires: %v", errUsage, err)
		}
	}
	t, err := ruleTarget(ctx, e, o)
	if err != nil {
		return err
	}
	if t.api == nil {
		return fmt.Errorf("no gateway answers for %s: the VPN's peers are managed by the running gateway (start it with camgate serve, with vpn: {enabled: true})", o.config)
	}
	switch action {
	case "list":
		var out struct {
			Enabled bool       `json:"enabled"`
			VPN     vpn.Status `json:"vpn"`
		}
		if err := t.api.Do(ctx, http.MethodGet, "/api/v1/vpn", nil, &out); err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(e.stdout, out)
		}
		if !out.Enabled {
			fmt.Fprintln(e.stdout, "the VPN is off; set vpn: {enabled: true} in", o.config)
			return nil
		}
		printPeers(e.stdout, out.VPN, time.Now())
		return nil
	case "rm":
		return t.api.Do(ctx, http.MethodDelete, "/api/v1/vpn/peers/"+url.PathEscape(name), nil, nil)
	}
	body := map[string]any{"name": name, "allow": splitList(allow), "expires": expires, "endpoint": endpoint}
	var out struct {
		Peer   vpn.Peer `json:"peer"`
		Config string   `json:"config"`
		QRPNG  string   `json:"qr_png"`
	}
	if err := t.api.Do(ctx, http.MethodPost, "/api/v1/vpn/peers", body, &out); err != nil {
		return err
	}
	if qrFile != "" {
		png, err := base64.StdEncoding.DecodeString(out.QRPNG)
		if err != nil {
			return fmt.Errorf("the gateway's QR code: %w", err)
		}
		if err := store.WriteFile(qrFile, png, 0o600); err != nil {
			return fmt.Errorf("peer added, but its QR code: %w", err)
		}
	}
	if o.asJSON {
		return writeJSON(e.stdout, map[string]any{"peer": out.Peer, "config": out.Config})
	}
	fmt.Fprint(e.stdout, out.Config)
	fmt.Fprintf(e.stderr, "\npeer %s added (tunnel address %s). The config above holds its private key and is shown only now.\n", out.Peer.Name, out.Peer.Address)
	if qrFile != "" {
		fmt.Fprintf(e.stderr, "QR code written to %s (mode 0600): scan it with the WireGuard app, then delete it.\n", qrFile)
	}
	return nil
}

func printPeers(w io.Writer, st vpn.Status, now time.Time) {
	fmt.Fprintf(w, "udp port %d, tunnel %s, endpoint %s, public key %s, refused packets %d",
		st.Port, st.Network, orDash(st.Endpoint), st.PublicKey, st.Refused)
	if st.Probes > 0 {
		fmt.Fprintf(w, ", check's probe keys alive %d", st.Probes)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tDEVICES\tEXPIRES\tHANDSHAKE\tRX\tTX\tREFUSED")
	for _, p := range st.Peers {
		exp := "never"
		if !p.Expires.IsZero() {
			exp = p.Expires.Format(time.DateTime)
			if p.Expired {
				exp = "expired"
			}
		}
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = now.Sub(p.LastHandshake).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", p.Name, p.Address, strings.Join(p.Allow, ","), exp, hs, p.RxBytes, p.TxBytes, p.Refused)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
