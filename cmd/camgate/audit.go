package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/audit"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/router"
	"github.com/camgate/camgate/internal/store"
)

const auditHelp = `
List what is unsafe, worst first (critical, high, medium, low, info), each
finding with a stable id, what it means and the fix:

  rules     risky ports forwarded (server/SDK 8000, telnet, SSH, SADP 37020,
            WS-Discovery 3702), plain HTTP beside HTTPS, rules open to the
            whole internet with no allowlist and no guard, UDP for RTSP, the
            same device port exposed twice;
  devices   firmware builds in the range of CVE-2021-36260 and CVE-2017-7921
            (a heuristic: "possibly vulnerable, verify on the advisory"),
            HTTPS disabled, not activated (SADP), and with
            --try-default-password the factory password admin/12345;
  gateway   the admin UI on plain HTTP or a public address, certificates near
            or past expiry, router mappings no rule needs.

Device credentials come from --password-file or the CAMGATE_DEVICE_PASSWORD
environment variable, never from the command line. Never intrusive: no
exploit is tried, nothing is written, and each device sees at most one failed
login per run (the device locks out an address after a few, and behind
camgate that address is everyone's).

Exit status: 1 when a finding is at least --fail-on (default high), 0
otherwise, 2 for bad arguments. See docs/CHECK-AND-AUDIT.md.`

func runAudit(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "audit", "[flags]", auditHelp)
	path := fl.String("config", "camgate.yaml", "config file")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	user := fl.String("user", "", "device user name for ISAPI (default admin when a password is given)")
	pwFile := fl.String("password-file", "", "file holding the device password (else $CAMGATE_DEVICE_PASSWORD)")
	tryDefault := fl.Bool("try-default-password", false, "try admin/12345 once per device (never by default)")
	noDevices := fl.Bool("no-devices", false, "audit the rules and the gateway only; do not contact devices")
	discoverFor := fl.Duration("discover-timeout", 2*time.Second, "how long SADP/WS-Discovery listens for devices (0 skips discovery)")
	timeout := fl.Duration("timeout", 10*time.Second, "time limit for each request to a device")
	failOn := fl.String("fail-on", "high", "exit 1 when a finding is at least this severe: critical, high, medium, low, info or never")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (passwords never go on the command line: use --password-file or CAMGATE_DEVICE_PASSWORD)", errUsage, fl.Arg(0))
	}
	threshold := audit.Severity(strings.ToLower(*failOn))
	if threshold != "never" && threshold.Rank() < 0 {
		return fmt.Errorf("%w: --fail-on %q: want critical, high, medium, low, info or never", errUsage, *failOn)
	}
	creds, err := deviceCredentials(e, *user, *pwFile)
	if err != nil {
		return err
	}
	cfg, err := store.Load(*path)
	if err != nil {
		return fmt.Errorf("config %s: %w", *path, err)
	}
	c := audit.Config{
		Credentials:        creds,
		TryDefaultPassword: *tryDefault,
		ConfigPath:         *path,
		StateDir:           store.StateDir(*path, cfg),
		SkipDevices:        *noDevices,
		Timeout:            *timeout,
	}
	if *discoverFor > 0 && !*noDevices {
		c.Discover = func(ctx context.Context) ([]discover.Device, error) {
			return discover.Discover(ctx, discover.Options{Timeout: *discoverFor})
		}
	}
	if cfg.Router.Enabled() {
		c.Router = func(ctx context.Context, cfg *config.Config) (*router.Report, error) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			return router.New(router.Config{}).Probe(ctx, cfg)
		}
	}
	rep := audit.Run(ctx, c, cfg)
	if *asJSON {
		if err := writeJSON(e.stdout, &rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(e.stdout); err != nil {
		return err
	}
	if threshold != "never" && rep.AtLeast(threshold) {
		return exitError(1)
	}
	return nil
}

// deviceCredentials reads the device password from a file or the
// environment; never from argv.
func deviceCredentials(e *env, user, pwFile string) (*audit.Credentials, error) {
	var pw string
	switch {
	case pwFile != "":
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --password-file: %v", errUsage, err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("%w: --password-file %s is empty", errUsage, pwFile)
		}
	default:
		pw = e.getenv("CAMGATE_DEVICE_PASSWORD")
	}
	if pw == "" {
		if user != "" {
			return nil, fmt.Errorf("%w: --user %s needs a password: put it in a file for --password-file, or in CAMGATE_DEVICE_PASSWORD", errUsage, user)
		}
		return nil, nil
	}
	if user == "" {
		user = "admin"
	}
	return &audit.Credentials{User: user, Password: pw}, nil
}
