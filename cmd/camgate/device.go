package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/camgate/camgate/internal/adminclient"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/enroll"
	"github.com/camgate/camgate/internal/hikvision"
	"github.com/camgate/camgate/internal/store"
)

// passwordEnv is where device add reads the device password when no
// --password-file is given.
const passwordEnv = "CAMGATE_DEVICE_PASSWORD"

const deviceHelp = `
Work with Hikvision devices. Subcommands:

  add    read a device's real ports over ISAPI and add port-forwarding rules
         for it to camgate.yaml

Run "camgate device add --help" for its flags.`

func runDevice(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(e.stdout, "Usage: camgate device <command> [flags]\n%s\n", deviceHelp)
		if len(args) == 0 {
			return fmt.Errorf("%w: missing subcommand (add)", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "add":
		return runDeviceAdd(ctx, e, args[1:])
	default:
		return fmt.Errorf("%w: unknown subcommand %q (want add)", errUsage, args[0])
	}
}

const deviceAddHelp = `
Read a Hikvision device's identity (deviceInfo) and real service ports
(adminAccesses) over ISAPI with Digest authentication, and write the rules
that expose it. When a gateway is running with this config (its admin API
answers at admin.listen), the rules go through its API, as with camgate
rule: validated, applied live and saved by the gateway; pass an API token
with --token-file or CAMGATE_TOKEN. When none answers (or with --file), the
rules are written into the config file, atomically, and a gateway started
later picks them up.

Rules written, every one guarded (docs/SECURITY.md):
  <name>-https   HTTPS that camgate serves (tls: terminate) in front of the
                 device's HTTP port, with the brute-force guard and the
                 exploit filter; --passthrough-https forwards the device's
                 own HTTPS raw instead, which camgate cannot read or guard
  <name>-rtsp    RTSP (TCP), if enabled on the device, with the brute-force
                 guard
  <name>-server  the server/SDK port 8000, only with --with-sdk-port: it is
                 the iVMS-4200/mobile-app port and a frequent attack target
Plain HTTP is never forwarded. The device is recorded in the devices:
section (address, ports, model, firmware) and its password in the state
directory (0600), so that the guard can judge login answers itself and a
wrong guess never reaches the device's lockout counter.
External ports avoid every port already in the file: the device's own port
if free, else +1000 steps (554, 1554, 2554...), else the next free port.

The password comes from --password-file or the CAMGATE_DEVICE_PASSWORD
environment variable, never the command line. camgate makes one login
attempt per request and never retries: a wrong password is reported at
once, before the device's lockout (7 failures lock this address for 30
minutes). If the device says it takes only 2 more failed logins from
this address, device add stops before logging in unless --force. Without a password nothing is read from the device: the rules use
Hikvision's factory ports (HTTP 80, HTTPS 443, RTSP 554, server 8000), or
the HTTP/server ports SADP reports for the address, and the output says so.

If the file does not exist it is created with "version: 1" and the new
rules. Untouched disabled example rules of the starter file (the ones
"camgate serve" writes) are replaced. Details: docs/DEVICES.md`

// deviceAddFlags are the parsed flags of device add.
type deviceAddFlags struct {
	ip, user, passwordFile, name, configPath string
	tokenFile                                string
	withSDK, dryRun, useHTTPS, noDiscover    bool
	file, passthrough, force                 bool
	port, httpPort, httpsPort, rtspPort      int
	timeout                                  time.Duration
}

func runDeviceAdd(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if n := strings.TrimLeft(a, "-"); a != n && (n == "password" || strings.HasPrefix(n, "password=") || n == "pass" || n == "p") {
			return fmt.Errorf("%w: passwords are never taken on the command line (they would show in ps and in shell history); use --password-file FILE or the %s environment variable", errUsage, passwordEnv)
		}
	}
	fl := newFlags(e, "device add", "--ip ADDR [--user admin] [--password-file FILE] [--name dvr1] [--config camgate.yaml] [--with-sdk-port] [--dry-run] [flags]", deviceAddHelp)
	var f deviceAddFlags
	fl.StringVar(&f.ip, "ip", "", "the device's LAN address (required)")
	fl.StringVar(&f.user, "user", "admin", "device user name")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the device password (default: $"+passwordEnv+")")
	fl.StringVar(&f.name, "name", "", "rule name prefix (default: the first free dvr1, dvr2, ...)")
	fl.StringVar(&f.configPath, "config", "camgate.yaml", "config file to add the rules to")
	fl.BoolVar(&f.withSDK, "with-sdk-port", false, "also forward the server/SDK port (8000) for iVMS-4200 and the mobile app")
	fl.BoolVar(&f.passthrough, "passthrough-https", false, "forward the device's own HTTPS raw (unguarded: camgate cannot read it) instead of serving HTTPS in front of its HTTP port")
	fl.BoolVar(&f.force, "force", false, "log in even when the device takes only 2 more failed logins before locking this address")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the rules as YAML instead of writing them")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding an API token for a running gateway (else $CAMGATE_TOKEN)")
	fl.BoolVar(&f.file, "file", false, "edit the config file even if a gateway is running")
	fl.IntVar(&f.port, "port", 0, "port to read ISAPI from (default: --http-port/--https-port, else the HTTP port SADP reports, else 80/443)")
	fl.BoolVar(&f.useHTTPS, "https", false, "read ISAPI over HTTPS (the device's self-signed certificate is accepted)")
	fl.IntVar(&f.httpPort, "http-port", 0, "the device's HTTP port, instead of what it reports")
	fl.IntVar(&f.httpsPort, "https-port", 0, "the device's HTTPS port, instead of what it reports")
	fl.IntVar(&f.rtspPort, "rtsp-port", 0, "the device's RTSP port, instead of what it reports")
	fl.BoolVar(&f.noDiscover, "no-discover", false, "do not run a short SADP/WS-Discovery lookup of the address")
	fl.DurationVar(&f.timeout, "timeout", hikvision.DefaultTimeout, "how long to wait for the device")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	}
	if f.ip == "" {
		return fmt.Errorf("%w: --ip is required (find devices with camgate discover)", errUsage)
	}
	for flag, p := range map[string]int{"port": f.port, "http-port": f.httpPort, "https-port": f.httpsPort, "rtsp-port": f.rtspPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%w: --%s %d is not a port", errUsage, flag, p)
		}
	}
	password, err := devicePassword(e, f.passwordFile)
	if err != nil {
		return err
	}
	out := e.stdout
	if f.dryRun {
		out = e.stderr // stdout carries only the YAML
	}

	// SADP: the device's HTTP and server ports, and whether it is
	// activated, without logging in. Only when we need it.
	var seen *discover.Device
	addr, isIP := netip.ParseAddr(f.ip)
	needPort := f.port == 0 && f.httpPort == 0 && !(f.useHTTPS && f.httpsPort != 0)
	if isIP == nil && !f.noDiscover && (needPort || password == "") {
		fmt.Fprintf(out, "looking for %s with SADP and WS-Discovery...\n", f.ip)
		seen, err = discover.Lookup(ctx, addr, discover.Options{Timeout: 1500 * time.Millisecond})
		switch {
		case err != nil:
			fmt.Fprintf(out, "  discovery failed (%v); carrying on without it\n", err)
		case seen == nil:
			fmt.Fprintf(out, "  %s did not answer discovery\n", f.ip)
		case seen.NotActivated():
			return fmt.Errorf("device %s (%s) is NOT ACTIVATED: has no password; activate it with SADP/the local GUI before exposing it; never forward its ports", f.ip, seen.Model)
		default:
			fmt.Fprintf(out, "  found %s, serial %s (HTTP %s, server %s)\n", dash(seen.Model), dash(seen.Serial), portOrDash(seen.HTTPPort), portOrDash(seen.ServerPort))
		}
	}

	info, ports, assumed, err := readDevice(ctx, out, &f, password, seen)
	if err != nil {
		return err
	}
	overridePorts(ports, &f)

	cfg, created, err := loadOrNew(f.configPath)
	if err != nil {
		return err
	}
	// A running gateway gets the rules through its API (validated,
	// applied live and saved by it), as with camgate rule: writing the
	// file behind its back would be lost on its next save.
	var api *adminclient.Client
	if !created && !f.file {
		api, err = adminclient.Find(ctx, adminclient.Options{ConfigPath: f.configPath, Config: cfg,
			Token: e.getenv("CAMGATE_TOKEN"), TokenFile: f.tokenFile, Timeout: f.timeout})
		if err != nil {
			return err
		}
	}
	if api != nil {
		// Plan against the rules that run, not the file's.
		var running struct {
			Rules []config.Rule `json:"rules"`
		}
		if err := api.Do(ctx, http.MethodGet, "/api/v1/rules", nil, &running); err != nil {
			return err
		}
		cfg.Rules = running.Rules
	}
	removed := dropStarterExamples(cfg)
	plan, err := enroll.Plan(cfg, f.ip, f.user, info, ports, hikvision.PlanOptions{
		Name: f.name, WithSDKPort: f.withSDK, Assumed: assumed, PassthroughHTTPS: f.passthrough,
	})
	if err != nil {
		return err
	}
	if f.dryRun {
		if err := printRulesYAML(e.stdout, plan.Rules); err != nil {
			return err
		}
		printPlanNotes(out, plan)
		fmt.Fprintf(out, "dry run: %s was not changed\n", f.configPath)
		return nil
	}
	if password != "" && !assumed {
		// Before the config names it: a guard that sees the device entry
		// finds the password already there.
		if err := credstore.New(store.StateDir(f.configPath, cfg)).Put(plan.Name, password); err != nil {
			return fmt.Errorf("store the device password: %w", err)
		}
	}
	if api != nil {
		return addThroughAPI(ctx, out, api, removed, plan, cfg.Device(plan.Name))
	}
	cfg.Rules = append(cfg.Rules, plan.Rules...)
	if err := store.Save(f.configPath, cfg); err != nil {
		return fmt.Errorf("write %s: %w", f.configPath, err)
	}
	verb := "Added to"
	if created {
		verb = "Created " + f.configPath + " with"
	}
	if len(removed) > 0 {
		fmt.Fprintf(out, "Replaced the starter file's disabled example rules (%s).\n", strings.Join(removed, ", "))
	}
	fmt.Fprintf(out, "%s %s:\n", verb, pick(created, "these rules", f.configPath))
	printRuleTable(out, plan.Rules)
	printPlanNotes(out, plan)
	fmt.Fprintln(out, "A running gateway applies this on reload: kill -HUP <pid of camgate serve>, or by itself if serve runs with --watch.")
	return nil
}

// addThroughAPI adds the planned rules to the running gateway in one
// batch, after removing the starter file's untouched examples.
func addThroughAPI(ctx context.Context, out io.Writer, api *adminclient.Client, removed []string, plan hikvision.Plan, dev *config.Device) error {
	for _, name := range removed {
		if err := api.Do(ctx, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(name), nil, nil); err != nil {
			return fmt.Errorf("remove the starter example rule %q: %w", name, err)
		}
	}
	batch := map[string]any{"rules": plan.Rules}
	if dev != nil {
		// The device entry goes in the same transaction: the rules name it.
		batch["devices"] = []config.Device{*dev}
	}
	if err := api.Do(ctx, http.MethodPost, "/api/v1/rules:batch", batch, nil); err != nil {
		return err
	}
	if len(removed) > 0 {
		fmt.Fprintf(out, "Replaced the starter file's disabled example rules (%s).\n", strings.Join(removed, ", "))
	}
	fmt.Fprintf(out, "Added to the running gateway (%s), which applied them and saved its config file:\n", api.Base())
	printRuleTable(out, plan.Rules)
	printPlanNotes(out, plan)
	return nil
}

func pick(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// devicePassword reads the password from the file, else the environment.
// A trailing newline (as editors and echo write) is not part of it.
func devicePassword(e *env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	}
	return e.getenv(passwordEnv), nil
}

// readDevice reads the device through package enroll, with the port
// flags folded into its target.
func readDevice(ctx context.Context, out io.Writer, f *deviceAddFlags, password string, seen *discover.Device) (hikvision.DeviceInfo, hikvision.Ports, bool, error) {
	if password == "" {
		return enroll.Assume(out, seen, "no password was given (--password-file or "+passwordEnv+"), so camgate did not log in to the device")
	}
	port := f.port
	if port == 0 && f.useHTTPS {
		port = f.httpsPort
	}
	if port == 0 && !f.useHTTPS {
		port = f.httpPort
	}
	return enroll.Read(ctx, out, enroll.Target{Address: f.ip, User: f.user, Password: password, HTTPS: f.useHTTPS,
		Port: port, Seen: seen, Force: f.force, Timeout: f.timeout})
}

// overridePorts applies --http-port, --https-port and --rtsp-port: the
// device's port numbers, keeping what the device said about enabled.
func overridePorts(p hikvision.Ports, f *deviceAddFlags) {
	for proto, port := range map[string]int{hikvision.ProtoHTTP: f.httpPort, hikvision.ProtoHTTPS: f.httpsPort, hikvision.ProtoRTSP: f.rtspPort} {
		if port == 0 {
			continue
		}
		enabled := true
		if s, ok := p.Get(proto); ok {
			enabled = s.Enabled
		}
		p.Set(proto, uint16(port), enabled)
	}
}

// loadOrNew loads the config, or starts a minimal "version: 1" one if the
// file does not exist yet. An invalid file is refused: fix it first.
func loadOrNew(path string) (*config.Config, bool, error) {
	cfg, err := store.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &config.Config{Version: config.CurrentVersion}, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s has problems; fix them first (camgate validate --config %s):\n%w", path, path, err)
	}
	return cfg, false, nil
}

// dropStarterExamples removes the starter file's example rules if they
// are still exactly as written (disabled placeholders for 192.168.1.64),
// so that a first device gets the natural ports 443 and 554. It returns
// the names removed.
func dropStarterExamples(cfg *config.Config) []string {
	starter, err := config.Parse([]byte(store.Starter))
	if err != nil {
		return nil
	}
	var removed []string
	keep := cfg.Rules[:0:0]
	for _, r := range cfg.Rules {
		ex := starter.Rule(r.Name)
		if ex != nil && !r.IsEnabled() && r.SameForwarding(ex) && r.Description == ex.Description {
			removed = append(removed, r.Name)
			continue
		}
		keep = append(keep, r)
	}
	cfg.Rules = keep
	return removed
}

func printRulesYAML(w io.Writer, rules []config.Rule) error {
	b, err := yaml.Marshal(struct {
		Rules []config.Rule `yaml:"rules"`
	}{rules})
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func printRuleTable(w io.Writer, rules []config.Rule) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rules {
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s:%s\t%s\n", r.Name, r.Proto(), r.ExternalPort, r.InternalIP, r.Internal(), r.Description)
	}
	tw.Flush()
}

func printPlanNotes(w io.Writer, p hikvision.Plan) {
	for _, n := range p.Notes {
		fmt.Fprintf(w, "Not added: %s.\n", n)
	}
	for _, s := range p.Warnings {
		fmt.Fprintf(w, "WARNING: %s.\n", s)
	}
}
