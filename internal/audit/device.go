package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/hikvision"
)

// Finding ids about devices (the firmware ones are in firmware.go).
const (
	IDDefaultPassword         = "device-default-password"
	IDDefaultPasswordUntested = "device-default-password-untested"
	IDHTTPSDisabled           = "device-https-disabled"
	IDNotActivated            = "device-not-activated"
	IDLockedOut               = "device-locked-out"
	IDCredentialsRejected     = "device-credentials-rejected"
	IDNotInspected            = "device-not-inspected"
	IDUnreachable             = "device-unreachable"
	IDNotHikvision            = "device-not-hikvision"
)

// The factory account of older Hikvision firmware.
const (
	defaultUser     = "admin"
	defaultPassword = "12345"
)

// DeviceReport is what the audit learnt about one device.
type DeviceReport struct {
	// Address is the rules' internal_ip.
	Address string `json:"address"`
	// Rules are the enabled rules that forward to it.
	Rules []string `json:"rules"`
	// WebURL is where ISAPI was read.
	WebURL string `json:"web_url"`
	// Reachable: the web port answered HTTP.
	Reachable bool `json:"reachable"`
	// Hikvision: the answers look like a Hikvision device.
	Hikvision bool     `json:"hikvision"`
	Firmware  Firmware `json:"firmware"`
	// HTTPSEnabled is the device's adminAccesses HTTPS flag; nil when
	// not read.
	HTTPSEnabled *bool `json:"https_enabled,omitempty"`
	// HTTPSPort is the device's HTTPS port from adminAccesses, 0 if unknown.
	HTTPSPort uint16 `json:"https_port,omitempty"`
	// Activated is SADP's flag; nil when no SADP answer said.
	Activated *bool `json:"activated,omitempty"`
	// Authenticated: ISAPI was read with credentials.
	Authenticated bool `json:"authenticated"`
	// LoginAttempts counts requests that carried credentials, and
	// FailedLogins those the device refused (at most 1 by design).
	LoginAttempts int `json:"login_attempts"`
	FailedLogins  int `json:"failed_logins"`
	// DefaultPassword is "in use", "not in use" or "not tested: why".
	DefaultPassword string `json:"default_password"`
	// Notes say what could not be read and why.
	Notes []string `json:"notes,omitempty"`
}

// target is one device the rules expose.
type target struct {
	addr   string
	rules  []string
	scheme string
	port   uint16
}

// deviceTargets lists the devices of enabled rules, with the web port to
// read ISAPI on: a rule's HTTP port, else its HTTPS port, else SADP's
// HTTP port, else 80.
func deviceTargets(cfg *config.Config, disc []discover.Device) []*target {
	var out []*target
	byAddr := map[string]*target{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() {
			continue
		}
		t := byAddr[r.InternalIP]
		if t == nil {
			t = &target{addr: r.InternalIP}
			byAddr[r.InternalIP] = t
			out = append(out, t)
		}
		t.rules = append(t.rules, r.Name)
		if !r.Proto().HasTCP() {
			continue
		}
		k, _ := check.ChooseKind(r, "tcp")
		port := r.InternalPortFor(r.ExternalPort.First)
		switch {
		case k == check.KindHTTP && t.scheme != "http":
			t.scheme, t.port = "http", port
		case k == check.KindHTTPS && t.scheme == "":
			t.scheme, t.port = "https", port
		}
	}
	for _, t := range out {
		if t.scheme != "" {
			continue
		}
		t.scheme, t.port = "http", 80
		if d := lookupDiscovered(disc, t.addr); d != nil && d.HTTPPort != 0 {
			t.port = d.HTTPPort
		}
	}
	return out
}

func lookupDiscovered(disc []discover.Device, addr string) *discover.Device {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	for i := range disc {
		if disc[i].IP == a.Unmap() {
			return &disc[i]
		}
	}
	return nil
}

// deviceFindings inspects every device of the enabled rules.
func deviceFindings(ctx context.Context, c *Config, cfg *config.Config) ([]Finding, []DeviceReport) {
	var disc []discover.Device
	var discErr error
	if c.Discover != nil && len(deviceTargets(cfg, nil)) > 0 {
		disc, discErr = c.Discover(ctx)
	}
	var out []Finding
	var reps []DeviceReport
	for _, t := range deviceTargets(cfg, disc) {
		d := &deviceAudit{c: c, t: t, rep: DeviceReport{Address: t.addr, Rules: t.rules,
			WebURL: t.scheme + "://" + net.JoinHostPort(t.addr, strconv.Itoa(int(t.port)))}}
		if discErr != nil {
			d.note("discovery failed: %v", discErr)
		}
		d.run(ctx, lookupDiscovered(disc, t.addr))
		out = append(out, d.findings...)
		reps = append(reps, d.rep)
	}
	return out, reps
}

// deviceAudit inspects one device.
//
// The login budget: a device locks a source address after a few failed
// logins, and behind camgate that address is every remote user's. So an
// audit makes at most one failed login per device:
//
//   - an unauthenticated probe comes first; it carries no credentials
//     and so cannot fail a login. If it shows the address is already
//     locked, nothing else is tried;
//   - each credentialed request is made only while no credentialed
//     request to this device has failed (for any reason) in this run, so
//     the first failure is also the last;
//   - --try-default-password tries admin/12345 once, and only when the
//     answer is not already known: given credentials for "admin" that
//     work settle it without a try (the password is, or is not, 12345);
//     given credentials that failed have used up the budget, so the
//     default is reported untested.
type deviceAudit struct {
	c        *Config
	t        *target
	rep      DeviceReport
	findings []Finding
	// failed is set after the first credentialed request that did not
	// succeed; no credentialed request follows it.
	failed bool
	locked bool
}

func (d *deviceAudit) note(format string, args ...any) {
	d.rep.Notes = append(d.rep.Notes, fmt.Sprintf(format, args...))
}

func (d *deviceAudit) add(id string, sev Severity, title, meaning, fix string, ev map[string]string) {
	d.findings = append(d.findings, Finding{ID: id, Severity: sev, Subject: "device " + d.t.addr,
		Rules: d.t.rules, Device: d.t.addr, Title: title, Meaning: meaning, Fix: fix, Evidence: ev})
}

func (d *deviceAudit) client(user, pass string) (*hikvision.Client, error) {
	return hikvision.New(hikvision.Config{BaseURL: d.rep.WebURL, Username: user, Password: pass,
		AcceptSelfSigned: true, Timeout: d.c.timeout(), Logger: d.c.Logger})
}

func (d *deviceAudit) run(ctx context.Context, disc *discover.Device) {
	if disc != nil {
		d.fromDiscovery(disc)
	}
	anon, err := d.client("", "")
	if err != nil {
		d.note("%v", err)
		return
	}
	defer anon.Close()
	pr, err := anon.Probe(ctx)
	if err != nil {
		d.add(IDUnreachable, Info, fmt.Sprintf("could not be inspected: %s does not answer", d.rep.WebURL),
			"camgate reads the device's firmware and settings over its web port (ISAPI). Nothing was learnt about this device beyond what discovery said.",
			"check the device is on and that the rules point at its web port; then run the audit again", map[string]string{"error": err.Error()})
		d.rep.DefaultPassword = "not tested: the device does not answer"
		d.firmwareFindings()
		return
	}
	d.rep.Reachable, d.rep.Hikvision = true, pr.Hikvision
	if pr.Locked {
		d.lockedOut(nil)
	}
	if !pr.Hikvision {
		d.add(IDNotHikvision, Info, fmt.Sprintf("does not look like a Hikvision device (at %s)", d.rep.WebURL),
			"The device checks (firmware, HTTPS, default password) are written for Hikvision's ISAPI and were skipped.",
			"nothing to do if this is another brand; otherwise check the rule points at the device's web port", map[string]string{"server": pr.Server})
		d.rep.DefaultPassword = "not tested: not a Hikvision device"
		d.firmwareFindings()
		return
	}
	if creds := d.c.Credentials; creds != nil && !d.locked {
		d.readWith(ctx, creds.User, creds.Password, false)
	}
	d.defaultPassword(ctx)
	if !d.rep.Authenticated && !d.rep.Firmware.Known() {
		d.add(IDNotInspected, Info, "could not be inspected fully: firmware and HTTPS state unknown (no credentials given, no SADP answer)",
			"Without credentials camgate cannot read the device's firmware build or its HTTPS setting, so it cannot tell whether a known vulnerability applies.",
			"run camgate audit --user admin --password-file FILE (the password is read from the file or CAMGATE_DEVICE_PASSWORD, never the command line)", nil)
	}
	d.firmwareFindings()
}

func (d *deviceAudit) fromDiscovery(disc *discover.Device) {
	d.rep.Activated = disc.Activated
	if disc.Firmware != "" {
		v, b := ParseFirmware(disc.Firmware)
		d.rep.Firmware = Firmware{Model: disc.Model, DeviceType: disc.DeviceType, Version: v, Build: b, Source: "sadp"}
	}
	if disc.NotActivated() {
		d.add(IDNotActivated, Critical, "is not activated (SADP reports Activated=false)",
			"An unactivated Hikvision device has no admin password yet: whoever reaches it first sets one and owns it. It must never be exposed.",
			"activate it from the LAN (its web page, SADP tool or iVMS-4200) with a strong password, then run the audit again",
			map[string]string{"sadp_activated": "false", "model": disc.Model})
	}
}

// readWith reads deviceInfo, then adminAccesses, with one account. It
// reports whether deviceInfo succeeded. tryingDefault marks the one
// admin/12345 attempt.
func (d *deviceAudit) readWith(ctx context.Context, user, pass string, tryingDefault bool) bool {
	if d.failed || d.locked {
		return false
	}
	cl, err := d.client(user, pass)
	if err != nil {
		d.note("%v", err)
		return false
	}
	defer cl.Close()
	d.rep.LoginAttempts++
	info, err := cl.DeviceInfo(ctx)
	if err != nil {
		d.credentialError(err, tryingDefault)
		return false
	}
	d.rep.Authenticated = true
	v, _ := ParseFirmware(info.FirmwareVersion)
	if v == "" {
		v = info.FirmwareVersion
	}
	build := info.BuildDate
	if build.IsZero() {
		_, build = ParseFirmware(info.FirmwareReleasedDate)
	}
	d.rep.Firmware = Firmware{Model: info.Model, DeviceType: info.DeviceType, Version: v, Build: build, Source: "isapi"}

	d.rep.LoginAttempts++
	ports, err := cl.AdminAccesses(ctx)
	if err != nil {
		d.credentialError(err, false)
		d.note("adminAccesses not read: %v", err)
		return true
	}
	svc, ok := ports.Get(hikvision.ProtoHTTPS)
	on := ok && svc.Enabled
	d.rep.HTTPSEnabled = &on
	if on {
		d.rep.HTTPSPort = svc.Port
	}
	if !on {
		ev := map[string]string{"adminAccesses": "no HTTPS entry"}
		if ok {
			ev["adminAccesses"] = fmt.Sprintf("HTTPS port %d enabled=false", svc.Port)
		}
		d.add(IDHTTPSDisabled, Medium, "has HTTPS turned off",
			"Without HTTPS the device's web page and ISAPI work only in clear: logins and settings cross the network unencrypted, and camgate can forward only plain HTTP to it.",
			"turn HTTPS on (Configuration → Network → Advanced Settings → HTTPS), forward the HTTPS port instead of HTTP, or put tls: terminate on the HTTP rule", ev)
	}
	return true
}

// credentialError records a failed credentialed request and closes the
// budget.
func (d *deviceAudit) credentialError(err error, tryingDefault bool) {
	d.failed = true
	switch {
	case errors.Is(err, hikvision.ErrLocked):
		d.lockedOut(err)
	case errors.Is(err, hikvision.ErrUnauthorized):
		d.rep.FailedLogins++
		if !tryingDefault {
			d.add(IDCredentialsRejected, Info, "refused the user name and password given to the audit",
				"camgate read nothing that needs a login. It stopped after this one failure, so as not to bring the device closer to its lockout.",
				"check --user and the password file (or CAMGATE_DEVICE_PASSWORD) and run the audit again", nil)
		}
	default:
		// Not a refused password, but a credentialed request that did not
		// succeed still ends the credentialed part, to stay in budget.
		d.note("credentialed request failed: %v", err)
	}
}

func (d *deviceAudit) lockedOut(err error) {
	if d.locked {
		return
	}
	d.locked = true
	ev := map[string]string{}
	if err != nil {
		ev["answer"] = err.Error()
	}
	d.add(IDLockedOut, Medium, "is locking out this host's address right now (too many failed logins)",
		"The device refuses every login from camgate's address until the lock expires (30 minutes by default), so remote users cannot log in either. Someone, or a misconfigured app, has been trying wrong passwords.",
		"wait for the lock to expire; turn on guard: auth on the rules (camgate bans guessers before the device locks) and check which client sends wrong passwords", ev)
}

// defaultPassword decides the admin/12345 question within the budget.
func (d *deviceAudit) defaultPassword(ctx context.Context) {
	creds := d.c.Credentials
	switch {
	case d.locked:
		d.rep.DefaultPassword = "not tested: the device is locking out this address"
	case creds != nil && creds.User == defaultUser && d.rep.Authenticated:
		// The given admin password works, so the question is settled
		// without another login.
		if creds.Password == defaultPassword {
			d.rep.DefaultPassword = "in use"
			d.defaultInUse()
		} else {
			d.rep.DefaultPassword = "not in use"
		}
	case creds != nil && creds.User == defaultUser && creds.Password == defaultPassword && d.rep.FailedLogins > 0:
		d.rep.DefaultPassword = "not in use"
	case !d.c.TryDefaultPassword:
		d.rep.DefaultPassword = "not tested: --try-default-password not given"
	case d.failed:
		d.rep.DefaultPassword = "not tested: a login already failed in this run"
		d.add(IDDefaultPasswordUntested, Info, "was not tested for the default password admin/12345",
			"A login with the given credentials already failed, and the audit makes at most one failed login per device so as not to trigger its lockout.",
			"fix the credentials, or run the audit without them, to test the default password", nil)
	default:
		before := d.rep.FailedLogins
		if d.readWith(ctx, defaultUser, defaultPassword, true) {
			d.rep.DefaultPassword = "in use"
			d.defaultInUse()
		} else if d.rep.FailedLogins > before {
			d.rep.DefaultPassword = "not in use"
		} else {
			d.rep.DefaultPassword = "not tested: the attempt did not get an answer"
		}
	}
}

func (d *deviceAudit) defaultInUse() {
	d.add(IDDefaultPassword, Critical, "accepts the factory password admin/12345",
		"Anyone who reaches the device can log in as its administrator: the factory password is the first thing every scanner and botnet tries.",
		"change the admin password now (8-16 characters, at least two kinds: letters, digits, symbols), and then the audit's --password-file",
		map[string]string{"user": defaultUser})
}

// firmwareFindings adds the firmware heuristics once the firmware is as
// well known as it will get.
func (d *deviceAudit) firmwareFindings() {
	if d.rep.Firmware.Known() {
		fs := FirmwareFindings(d.rep.Firmware, d.t.addr, d.c.now())
		for i := range fs {
			fs[i].Rules = slices.Clone(d.t.rules)
		}
		d.findings = append(d.findings, fs...)
	}
}
