package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/adminclient"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

const ruleHelp = `
List and change the port-forwarding rules, like the router's Port
Forwarding menu:

  camgate rule list
  camgate rule add --name dvr-web --external-port 8082 --internal-ip 192.168.1.64 [--internal-port 80]
                   [--protocol tcp|udp|both] [--description TEXT] [--disabled] [--allow CIDR,...] [--deny CIDR,...]
  camgate rule rm NAME
  camgate rule enable NAME
  camgate rule disable NAME

When a gateway is running (its admin API answers at admin.listen), the
change goes through the API: it is validated, applied live (other rules keep
their connections) and saved by the gateway. The API needs a token: create
one in the web UI (API tokens) and pass it with --token-file or the
CAMGATE_TOKEN environment variable. The gateway's certificate is checked
against the one in its state directory (or admin.cert_file).

When no gateway answers, the config file is edited directly (validated, then
written atomically); reload a gateway started later with SIGHUP. --file
forces editing the file.`

// ruleOpts are the flags every rule subcommand takes.
type ruleOpts struct {
	config    string
	tokenFile string
	file      bool
	asJSON    bool
	timeout   time.Duration
}

// ruleAddFlags are the flags of rule add beyond the common ones.
type ruleAddFlags struct {
	r                           config.Rule
	ext, in, proto, allow, deny string
	disabled                    bool
}

// ruleFlags returns the flag set of one rule action; "" (for rule --help)
// has every action's flags.
func ruleFlags(e *env, action string, o *ruleOpts, a *ruleAddFlags) *flag.FlagSet {
	name, usage := "rule "+action, "[flags]"
	if action == "" {
		name, usage = "rule", "<action> [flags]"
	}
	fl := newFlags(e, name, usage, ruleHelp)
	fl.StringVar(&o.config, "config", "camgate.yaml", "config file")
	fl.StringVar(&o.tokenFile, "token-file", "", "file holding an API token (else $CAMGATE_TOKEN)")
	fl.BoolVar(&o.file, "file", false, "edit the config file even if a gateway is running")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the gateway's API")
	if action == "list" || action == "" {
		fl.BoolVar(&o.asJSON, "json", false, "print JSON (list)")
	}
	if action == "add" || action == "" {
		note := ""
		if action == "" {
			note = " (add)"
		}
		fl.StringVar(&a.r.Name, "name", "", "rule name: lower-case letters, digits and '-' (required)"+note)
		fl.StringVar(&a.r.Description, "description", "", "free text"+note)
		fl.StringVar(&a.proto, "protocol", "tcp", "tcp, udp or both"+note)
		fl.StringVar(&a.ext, "external-port", "", "port (or range \"10000-10009\") people connect to (required)"+note)
		fl.StringVar(&a.r.InternalIP, "internal-ip", "", "the device's LAN address (required)"+note)
		fl.StringVar(&a.in, "internal-port", "", "the device's port (default: the external port)"+note)
		fl.BoolVar(&a.disabled, "disabled", false, "add the rule switched off"+note)
		fl.StringVar(&a.allow, "allow", "", "comma-separated source addresses or CIDRs that may connect"+note)
		fl.StringVar(&a.deny, "deny", "", "comma-separated source addresses or CIDRs that may not"+note)
	}
	return fl
}

func runRule(ctx context.Context, e *env, args []string) error {
	var o ruleOpts
	var a ruleAddFlags
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fl := ruleFlags(e, "", &o, &a)
		if len(args) == 0 {
			fl.SetOutput(e.stderr)
			fl.Usage()
			return fmt.Errorf("%w: missing action (list, add, rm, enable, disable)", errUsage)
		}
		fl.Usage()
		return nil
	}
	action, args := args[0], args[1:]
	switch action {
	case "list", "add", "rm", "enable", "disable":
	default:
		return fmt.Errorf("%w: unknown action %q (list, add, rm, enable, disable)", errUsage, action)
	}
	fl := ruleFlags(e, action, &o, &a)
	r := &a.r
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	var name string
	switch action {
	case "list", "add":
		if len(pos) > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
		}
	default:
		if len(pos) != 1 {
			return fmt.Errorf("%w: camgate rule %s NAME", errUsage, action)
		}
		name = pos[0]
	}
	if action == "add" {
		if r.Name == "" || a.ext == "" || r.InternalIP == "" {
			return fmt.Errorf("%w: rule add needs --name, --external-port and --internal-ip", errUsage)
		}
		if r.ExternalPort, err = config.ParsePortRange(a.ext); err != nil {
			return fmt.Errorf("%w: --external-port: %v", errUsage, err)
		}
		if a.in != "" {
			if r.InternalPort, err = config.ParsePortRange(a.in); err != nil {
				return fmt.Errorf("%w: --internal-port: %v", errUsage, err)
			}
		}
		r.Protocol = config.ParseProtocol(a.proto)
		r.Allow, r.Deny = splitList(a.allow), splitList(a.deny)
		if a.disabled {
			r.SetEnabled(false)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	t, err := ruleTarget(ctx, e, o)
	if err != nil {
		return err
	}
	if t.note != "" {
		fmt.Fprintln(e.stderr, t.note)
	}
	switch action {
	case "list":
		rules, err := t.list(ctx)
		if err != nil {
			return err
		}
		return printRules(e.stdout, rules, o.asJSON)
	case "add":
		err = t.change(ctx, "rule.create", r.Name, func(cfg *config.Config) error {
			if cfg.Rule(r.Name) != nil {
				return fmt.Errorf("a rule called %q exists already", r.Name)
			}
			cfg.Rules = append(cfg.Rules, *r)
			return nil
		}, http.MethodPost, "/api/v1/rules", r)
	case "rm":
		err = t.change(ctx, "rule.delete", name, func(cfg *config.Config) error {
			for i := range cfg.Rules {
				if cfg.Rules[i].Name == name {
					cfg.Rules = append(cfg.Rules[:i], cfg.Rules[i+1:]...)
					return nil
				}
			}
			return fmt.Errorf("no rule called %q", name)
		}, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(name), nil)
	case "enable", "disable":
		on := action == "enable"
		err = t.change(ctx, "rule."+action, name, func(cfg *config.Config) error {
			rule := cfg.Rule(name)
			if rule == nil {
				return fmt.Errorf("no rule called %q", name)
			}
			rule.SetEnabled(on)
			return nil
		}, http.MethodPost, "/api/v1/rules/"+url.PathEscape(name)+"/"+action, nil)
	}
	if err != nil {
		return err
	}
	verb := map[string]string{"add": "added", "rm": "removed", "enable": "enabled", "disable": "disabled"}[action]
	if name == "" {
		name = r.Name
	}
	if t.api != nil {
		fmt.Fprintf(e.stdout, "rule %q %s and applied by the running gateway\n", name, verb)
	} else {
		fmt.Fprintf(e.stdout, "rule %q %s in %s\n", name, verb, o.config)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ruleBackend is where rule changes go: the running gateway's API, or the
// config file.
type ruleBackend struct {
	path     string
	stateDir string
	api      *adminclient.Client
	note     string
}

func ruleTarget(ctx context.Context, e *env, o ruleOpts) (*ruleBackend, error) {
	t := &ruleBackend{path: o.config}
	cfg, err := store.Load(o.config)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("cannot read %s: %w", o.config, pe.Err)
		}
		return nil, problemsError(o.config, err)
	}
	t.stateDir = store.StateDir(o.config, cfg)
	if o.file || !cfg.Admin.IsEnabled() {
		if !cfg.Admin.IsEnabled() && !o.file {
			t.note = "note: the admin API is off (admin.enabled: false), so the file is edited; reload a running gateway with SIGHUP"
		}
		return t, nil
	}
	api, err := adminclient.Find(ctx, adminclient.Options{ConfigPath: o.config, Config: cfg,
		Token: e.getenv("CAMGATE_TOKEN"), TokenFile: o.tokenFile, Timeout: o.timeout})
	if err != nil {
		return nil, err
	}
	t.api = api
	return t, nil
}

func problemsError(path string, err error) error {
	var b strings.Builder
	for _, p := range config.ProblemsOf(err) {
		loc := path
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d", path, p.Line)
			p.Line = 0
		}
		fmt.Fprintf(&b, "\n  %s: %s", loc, p.Error())
	}
	return fmt.Errorf("the rule table has problems; nothing changed:%s", b.String())
}

func (t *ruleBackend) list(ctx context.Context) ([]config.Rule, error) {
	if t.api == nil {
		cfg, err := store.Load(t.path)
		if err != nil {
			return nil, problemsError(t.path, err)
		}
		return cfg.Rules, nil
	}
	var out struct {
		Rules []config.Rule `json:"rules"`
	}
	if err := t.api.Do(ctx, http.MethodGet, "/api/v1/rules", nil, &out); err != nil {
		return nil, err
	}
	return out.Rules, nil
}

// change applies a rule change through the API (method, path, body) or,
// without a gateway, with edit on the file.
func (t *ruleBackend) change(ctx context.Context, action, target string, edit func(*config.Config) error, method, path string, body any) error {
	if t.api != nil {
		return t.api.Do(ctx, method, path, body, nil)
	}
	cfg, err := store.Load(t.path)
	if err != nil {
		return problemsError(t.path, err)
	}
	if err := edit(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return problemsError(t.path, err)
	}
	if err := store.Save(t.path, cfg); err != nil {
		return err
	}
	if err := admin.Append(t.stateDir, admin.AuditEntry{Who: "cli", Action: action, Target: target, From: "local", OK: true,
		Detail: "edited " + t.path}); err != nil {
		return fmt.Errorf("saved, but the audit log: %w", err)
	}
	return nil
}

func printRules(w io.Writer, rules []config.Rule, asJSON bool) error {
	if asJSON {
		type view struct {
			config.Rule
			Enabled bool `json:"enabled"`
		}
		out := make([]view, 0, len(rules))
		for _, r := range rules {
			out = append(out, view{Rule: r, Enabled: r.IsEnabled()})
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDESCRIPTION\tEXTERNAL PORT\tINTERNAL IP\tINTERNAL PORT\tPROTOCOL\tENABLED")
	for i := range rules {
		r := &rules[i]
		en := "yes"
		if !r.IsEnabled() {
			en = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Description, r.ExternalPort, r.InternalIP, r.Internal(), r.Proto(), en)
	}
	return tw.Flush()
}
