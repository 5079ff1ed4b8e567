package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/camgate/camgate/internal/discover"
)

// ifaceList is a repeatable string flag (--interface eth0 --interface eth1,
// or --interface eth0,eth1).
type ifaceList []string

func (l *ifaceList) String() string { return strings.Join(*l, ",") }

func (l *ifaceList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

const discoverHelp = `
Find Hikvision cameras, DVRs and NVRs on the local network. camgate sends a
SADP inquiry (UDP 37020) and an ONVIF WS-Discovery probe (UDP 3702) to
239.255.255.250 from each interface, waits for replies, and prints one row
per device: IP, model, serial, firmware, activation, HTTP port, server
(SDK) port and ONVIF address. It only asks; it never sends SADP commands
that change a device (activate, reset, update).

A device that reports "not activated" has no password yet: activate it with
SADP or its local screen first, and never forward its ports.

Next step: camgate device add --ip <IP> --user admin --password-file <file>`

func runDiscover(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "discover", "[--interface NAME ...] [--timeout 3s] [--json]", discoverHelp)
	var ifaces ifaceList
	fs.Var(&ifaces, "interface", "interface to probe from (repeatable; default: every up, non-loopback IPv4 interface)")
	timeout := fs.Duration("timeout", discover.DefaultTimeout, "how long to wait for replies")
	asJSON := fs.Bool("json", false, "print the devices as JSON on stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	devs, err := discover.Discover(ctx, discover.Options{
		Interfaces: ifaces,
		Timeout:    *timeout,
		Progress:   func(p discover.Progress) { printProgress(e.stderr, p) },
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if devs == nil {
			devs = []discover.Device{}
		}
		return writeJSON(e.stdout, devs)
	}
	printDevices(e.stdout, devs)
	return nil
}

func printProgress(w io.Writer, p discover.Progress) {
	switch p.Kind {
	case discover.Probing:
		fmt.Fprintf(w, "probing %s...\n", p.Format())
	case discover.Reply:
		fmt.Fprintf(w, "  %s: reply from %s (%s), %d so far\n", p.Format(), p.From, strings.ToUpper(string(p.Source)), p.Replies)
	case discover.Failed:
		fmt.Fprintf(w, "  %s: %v\n", p.Format(), p.Err)
	case discover.Done:
		fmt.Fprintf(w, "%s: %d %s\n", p.Format(), p.Replies, plural(p.Replies, "reply", "replies"))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// printDevices writes the device table, then a loud warning for every
// device that is not activated.
func printDevices(w io.Writer, devs []discover.Device) {
	if len(devs) == 0 {
		fmt.Fprintln(w, "No devices answered. Check that this host is on the cameras' LAN, that --interface names the right interface,")
		fmt.Fprintln(w, "and that no firewall drops UDP 37020/3702 replies. Newer firmware has ONVIF (WS-Discovery) off by default; SADP still answers.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tMODEL\tSERIAL\tFIRMWARE\tACTIVATED\tHTTP\tSERVER\tONVIF\tFOUND BY")
	for _, d := range devs {
		act := "?"
		if d.Activated != nil {
			act = "yes"
			if !*d.Activated {
				act = "NO (!)"
			}
		}
		onvif := "-"
		if len(d.ONVIF) > 0 {
			onvif = d.ONVIF[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.IP, dash(d.Model), dash(d.Serial), dash(d.Firmware), act,
			portOrDash(d.HTTPPort), portOrDash(d.ServerPort), onvif, d.SourceList())
	}
	tw.Flush()
	for _, d := range devs {
		if d.NotActivated() {
			fmt.Fprintf(w, "\n!!! %s (%s) is NOT ACTIVATED: has no password; activate it with SADP/the local GUI before exposing it; never forward its ports.\n",
				d.IP, dash(d.Model))
		}
	}
	fmt.Fprintf(w, "\n%d %s. Add one with: camgate device add --ip <IP> --user admin --password-file <file>\n",
		len(devs), plural(len(devs), "device", "devices"))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func portOrDash(p uint16) string {
	if p == 0 {
		return "-"
	}
	return strconv.Itoa(int(p))
}
