// Package audit lists what is unsafe about a camgate site, ranked by
// severity, each finding with a stable id, what it means and the fix:
//
//   - rules: risky ports forwarded (the server/SDK port, telnet, SSH,
//     discovery), plain HTTP beside HTTPS, rules open to the whole
//     internet without an allowlist or the brute-force guard, RTSP over
//     UDP, the same device port exposed twice;
//   - devices, read over ISAPI (credentials optional) and SADP: firmware
//     builds in the range of known vulnerabilities (worded as heuristics,
//     never as certain), HTTPS disabled, not activated, and, only when
//     asked, the factory password admin/12345;
//   - the gateway itself: the admin UI on plain HTTP or on a public
//     address, certificates near or past expiry, and router mappings the
//     rules do not need.
//
// Usage:
//
//	rep := audit.Run(ctx, audit.Config{Credentials: creds, Discover: fn}, cfg)
//	rep.WriteText(os.Stdout)          // or json.Marshal(rep)
//	if rep.AtLeast(audit.High) { ... }
//
// Never intrusive: no exploit is tried, nothing is written to a device,
// and each device sees at most one failed login per Run (see device.go
// for how the credentials and --try-default-password share that budget).
//
// Non-goals: scanning the LAN for devices that no rule exposes, and
// proving a vulnerability; firmware checks compare build dates and
// version ranges against advisories and say "possibly".
package audit

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/router"
)

// Severity ranks a finding.
type Severity string

// The severities, worst first.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	Info     Severity = "info"
)

// Severities lists the severities, worst first.
func Severities() []Severity { return []Severity{Critical, High, Medium, Low, Info} }

// Rank is 4 for critical down to 0 for info, -1 for an unknown name.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	case Info:
		return 0
	}
	return -1
}

// Finding is one problem.
type Finding struct {
	// ID is stable across releases ("rule-sdk-port-exposed"); scripts
	// and the web UI key on it. docs/CHECK-AND-AUDIT.md lists them all.
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: "rule dvr-server",
	// "device 192.168.1.64", "admin UI", "router".
	Subject string `json:"subject"`
	// Rule and Device name the rule(s) and device address concerned, when
	// there are any.
	Rules  []string `json:"rules,omitempty"`
	Device string   `json:"device,omitempty"`
	// Title says what was found, in one line.
	Title string `json:"title"`
	// Meaning says why it matters.
	Meaning string `json:"meaning"`
	// Fix says what to do.
	Fix string `json:"fix"`
	// Evidence is what the finding was decided from (firmware build,
	// adminAccesses entry, mapping...).
	Evidence map[string]string `json:"evidence,omitempty"`
}

// Report is the outcome of Run. It marshals to JSON as is.
type Report struct {
	// Findings, worst first.
	Findings []Finding `json:"findings"`
	// Devices says what was learnt about each device and how many logins
	// were tried, so the user can see the audit stayed within budget.
	Devices []DeviceReport `json:"devices"`
	// Counts by severity.
	Counts map[Severity]int `json:"counts"`
}

// AtLeast reports whether any finding is at least as severe as s.
func (r *Report) AtLeast(s Severity) bool {
	for _, f := range r.Findings {
		if f.Severity.Rank() >= s.Rank() {
			return true
		}
	}
	return false
}

// Credentials are a device account.
type Credentials struct {
	User, Password string
}

// Config configures a Run. The zero value audits the rules and the
// gateway, and reads devices without credentials (an unauthenticated
// probe only).
type Config struct {
	// Credentials are tried on every device (one set for all). Nil means
	// none: firmware comes from SADP only, HTTPS state is not read.
	Credentials *Credentials
	// TryDefaultPassword makes one login as admin/12345 on each device,
	// unless the Credentials already settle the question or a login has
	// already failed (see device.go). Default false: never.
	TryDefaultPassword bool
	// Discover runs a short SADP/WS-Discovery pass for Activated and
	// firmware. Nil means no discovery.
	Discover func(ctx context.Context) ([]discover.Device, error)
	// Router probes the upstream router read-only (its WAN address and
	// mapping list). Nil means the router is not looked at.
	Router func(ctx context.Context, cfg *config.Config) (*router.Report, error)
	// ConfigPath is the config file, to resolve relative certificate
	// paths. Empty means the current directory.
	ConfigPath string
	// StateDir is camgate's state directory, where generated
	// certificates live. Empty means certificates there are not checked.
	StateDir string
	// SkipDevices leaves devices alone: rules and gateway only.
	SkipDevices bool
	// Timeout bounds each request to a device. Zero means 10 s.
	Timeout time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Logger receives debug lines (never credentials). Nil discards.
	Logger *slog.Logger
}

func (c *Config) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 10 * time.Second
	}
	return c.Timeout
}

// Run audits cfg. It never fails: what cannot be inspected becomes an
// info finding that says so.
func Run(ctx context.Context, c Config, cfg *config.Config) Report {
	var rep Report
	rep.Findings = append(rep.Findings, RuleFindings(cfg)...)
	if !c.SkipDevices {
		f, devs := deviceFindings(ctx, &c, cfg)
		rep.Findings = append(upgradePlainHTTP(rep.Findings, devs), f...)
		rep.Devices = devs
	}
	rep.Findings = append(rep.Findings, GatewayFindings(cfg, c.ConfigPath, c.StateDir, c.now())...)
	if c.Router != nil && cfg.Router.Enabled() {
		rep.Findings = append(rep.Findings, routerFindings(ctx, &c, cfg)...)
	}
	if rep.Devices == nil {
		rep.Devices = []DeviceReport{}
	}
	Sort(rep.Findings)
	rep.Counts = map[Severity]int{}
	for _, f := range rep.Findings {
		rep.Counts[f.Severity]++
	}
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	return rep
}

// Sort orders findings worst first, then by id and subject.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity.Rank(), a.Severity.Rank()),
			cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.Subject, b.Subject),
		)
	})
}
