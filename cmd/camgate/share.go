package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const shareHelp = `
Make, list and revoke share links: a link shows one camera channel live in
a browser, with no login and nothing else, until it expires or is revoked
(docs/LIVE.md).

  camgate share add  --device dvr --channel 102 [--expires 24h] [--max-viewers N] [--label TEXT]
  camgate share list [--json]
  camgate share rm   ID

Links live in the running gateway, so these commands go through its admin
API, with an API token (--token-file FILE or $CAMGATE_TOKEN; create one in
the web UI under API tokens). add prints the link once: camgate keeps only
a hash of its secret. The link's host is the admin UI's address as this
command reached it; give the neighbour the address they can reach (the
public address, when admin listens there). rm stops anyone watching at once.`

// shareView is a link as the API lists it.
type shareView struct {
	ID         string    `json:"id"`
	Label      string    `json:"label"`
	Device     string    `json:"device"`
	Channel    int       `json:"channel"`
	MaxViewers int       `json:"max_viewers"`
	Expires    time.Time `json:"expires"`
	State      string    `json:"state"`
	Viewers    int       `json:"viewers"`
}

func runShare(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stdout, strings.TrimSpace(shareHelp))
		if len(args) == 0 {
			return fmt.Errorf("%w: missing action (add, list or rm)", errUsage)
		}
		return nil
	}
	action, args := args[0], args[1:]
	if action != "add" && action != "list" && action != "rm" {
		return fmt.Errorf("%w: unknown action %q (use add, list or rm)", errUsage, action)
	}
	var o ruleOpts
	fl := newFlags(e, "share "+action, "[flags]", shareHelp)
	fl.StringVar(&o.config, "config", "camgate.yaml", "config file (it says where the gateway's API listens)")
	fl.StringVar(&o.tokenFile, "token-file", "", "file holding an API token (else $CAMGATE_TOKEN)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the gateway's API")
	device := fl.String("device", "", "device name, as in the devices section (add)")
	channel := fl.Int("channel", 0, "channel, such as 101 (camera 1 main stream) or 102 (its sub-stream) (add)")
	expires := fl.Duration("expires", 24*time.Hour, "how long the link works (add)")
	maxViewers := fl.Int("max-viewers", 0, "viewers at a time; 0 means no limit (add)")
	label := fl.String("label", "", "a note, such as \"for the neighbour\" (add)")
	fl.BoolVar(&o.asJSON, "json", false, "print JSON")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	t, err := ruleTarget(ctx, e, o)
	if err != nil {
		return err
	}
	if t.api == nil {
		return fmt.Errorf("share links live in the running gateway, and none answers for %s: start camgate serve (with admin enabled) first", o.config)
	}
	switch action {
	case "add":
		if *device == "" || *channel == 0 {
			return fmt.Errorf("%w: share add needs --device and --channel", errUsage)
		}
		var out struct {
			Share  shareView `json:"share"`
			Secret string    `json:"secret"`
			Path   string    `json:"path"`
		}
		body := map[string]any{"device": *device, "channel": *channel, "expires": expires.String(), "max_viewers": *maxViewers, "label": *label}
		if err := t.api.Do(ctx, "POST", "/api/v1/shares", body, &out); err != nil {
			return err
		}
		link := strings.TrimSuffix(t.api.Base(), "/") + out.Path
		if o.asJSON {
			return writeJSON(e.stdout, map[string]any{"share": out.Share, "url": link})
		}
		fmt.Fprintf(e.stdout, "share %s: %s/%d until %s\n%s\n(shown once: camgate keeps only a hash of it)\n",
			out.Share.ID, out.Share.Device, out.Share.Channel, out.Share.Expires.Local().Format(time.RFC1123), link)
		return nil
	case "rm":
		if fl.NArg() != 1 {
			return fmt.Errorf("%w: share rm needs the link's ID (see share list)", errUsage)
		}
		id := fl.Arg(0)
		if err := t.api.Do(ctx, "DELETE", "/api/v1/shares/"+url.PathEscape(id), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked share %s\n", id)
		return nil
	}
	var out struct {
		Shares []shareView `json:"shares"`
	}
	if err := t.api.Do(ctx, "GET", "/api/v1/shares", nil, &out); err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(e.stdout, out.Shares)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tCHANNEL\tEXPIRES\tSTATE\tVIEWERS")
	for _, s := range out.Shares {
		v := strconv.Itoa(s.Viewers)
		if s.MaxViewers > 0 {
			v += "/" + strconv.Itoa(s.MaxViewers)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%s\n", s.ID, s.Label, s.Device, s.Channel, s.Expires.Local().Format("2006-01-02 15:04"), s.State, v)
	}
	return tw.Flush()
}
