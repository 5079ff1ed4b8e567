// Command camgate is a port-forwarding gateway for CCTV: it plays the part
// of a router's "Port Forwarding / Virtual Server" table for Hikvision IP
// cameras, DVRs and NVRs, and finds, checks and protects them.
//
// main only parses the command line and wires packages together; the logic
// lives in internal/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// env is what a command may touch of the outside world, so commands can be
// run from tests with their own streams and environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the gateway and its admin UI (on by default; admin.enabled: false turns it off)", runServe},
		{"validate", "check a config file and report every problem", runValidate},
		{"demo", "start a simulated DVR and a gateway in front of it, on loopback", runDemo},
		{"sim", "run a simulated Hikvision DVR", runSim},
		{"discover", "find Hikvision devices on the LAN (SADP and WS-Discovery)", runDiscover},
		{"device", "read a device's ports and add rules for it (device add)", runDevice},
		{"rule", "list, add, remove, enable or disable rules", runRule},
		{"check", "test each rule from the gateway, the LAN and outside", runCheck},
		{"audit", "list security problems in the rules, devices and gateway", runAudit},
		{"router", "show the upstream router's port mappings (router status)", runRouter},
		{"vpn", "add, list or remove the built-in WireGuard VPN's peers (vpn add NAME --allow dvr1 --qr phone.png)", runVPN},
		{"ban", "list or clear sources banned by the brute-force guard", runBan},
		{"share", "make, list or revoke links that show one camera live (share add|list|rm)", runShare},
		{"admin", "admin account tasks (admin reset-password)", runAdmin},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// errUsage marks an error caused by bad arguments (exit code 2).
var errUsage = errors.New("usage")

// exitError carries a specific exit code without more output.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		// A usage error: the usage goes to stderr, stdout stays empty.
		usage(e.stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var code exitError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &code):
			return int(code)
		case errors.Is(err, errUsage):
			fmt.Fprintf(e.stderr, "camgate %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(e.stderr, "camgate %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "camgate: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "camgate: port forwarding for CCTV (Hikvision IP cameras, DVRs and NVRs)")
	fmt.Fprintln(w, "\nUsage: camgate <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"camgate <command> --help\" for a command's flags. Docs: README.md, docs/.")
}

// newFlags returns a FlagSet that prints a usage line, the command's
// description and its flags on --help, and returns errors instead of
// exiting.
func newFlags(e *env, name, usageLine, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("camgate "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: camgate %s %s\n\n%s\n", name, usageLine, strings.TrimSpace(description))
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(e.stdout, "\nFlags:")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			fs.SetOutput(e.stderr)
		}
	}
	return fs
}

// parseFlags parses args and maps a bad flag to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// writeJSON prints v as indented JSON, the --json output of every command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
