package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

const simHelp = `
Run a simulated Hikvision DVR: a device to point camgate at, on loopback or
in a LAN. It serves, on real sockets:

  web page and ISAPI (HTTP, Digest MD5/SHA-256)   deviceInfo, adminAccesses,
      Network/interfaces, userCheck, illegalLoginLock; PUT deviceInfo renames
  HTTPS with a self-signed certificate (off in the vulnerable profile)
  RTSP with Digest: generated H.264 (colour bars and a stamp of camera,
      frame number and wall time) on /Streaming/Channels/N01
      (640x360) and /N02 (352x288), TCP interleaved and UDP
  server/SDK port and SDK-over-TLS port: accept and hold connections
  WebSocket port: an echo
  SADP (UDP 37020) and ONVIF WS-Discovery (UDP 3702) responders

Like the real device, 7 failed logins from one source IP lock that IP for
30 minutes (every authenticated service; --max-failures, --lock-duration).

Profiles:
  default     the seed guide's DVR DS-7208HQHI-K1, recent firmware, HTTPS on
  vulnerable  old firmware build 200318 (before the CVE-2021-36260 fix),
              admin/12345, reported not activated in SADP, HTTPS off
  patched     IP camera on the fixed build 210628, HTTPS on

Default ports are the real device's: HTTP 8082, HTTPS 443, RTSP 554,
server 8000, SDK over TLS 8443, WebSocket 7681, SADP 37020, WS-Discovery
3702. A port flag of 0 picks a free port (the banner shows it), -1 turns the
service off. Ports below 1024 need root; --free-ports picks free ports for
everything.

Credentials: user "admin" (--user). The password comes from --password-file,
else $CAMGATE_SIM_PASSWORD, else the config file's password_file, else the
profile's default (vulnerable: 12345); otherwise a random strong password is
generated and printed once in the banner. Passwords are never accepted on
the command line.

--config reads a YAML file (see docs/SIMULATOR.md); flags win over it.
Stop with Ctrl-C (SIGINT) or SIGTERM.`

type simPortFlag struct {
	name string
	svc  sim.Service
	what string
}

// simPortFlags maps port flags to services.
func simPortFlags() []simPortFlag {
	return []simPortFlag{
		{"http-port", sim.ServiceHTTP, "HTTP port (web page, ISAPI)"},
		{"https-port", sim.ServiceHTTPS, "HTTPS port"},
		{"rtsp-port", sim.ServiceRTSP, "RTSP port"},
		{"rtp-port", sim.ServiceRTP, "even UDP port for RTP, RTCP is the next"},
		{"sdk-port", sim.ServiceSDK, "server/SDK port (DEV_MANAGE)"},
		{"sdk-tls-port", sim.ServiceSDKOverTLS, "SDK-over-TLS port"},
		{"websocket-port", sim.ServiceWebSocket, "WebSocket port"},
		{"sadp-port", sim.ServiceSADP, "SADP UDP port"},
		{"wsd-port", sim.ServiceWSDiscovery, "WS-Discovery UDP port"},
	}
}

func runSim(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "sim", "[--profile default|vulnerable|patched] [--config sim.yaml] [flags]", simHelp)
	configPath := fl.String("config", "", "YAML file with the simulator's settings")
	profile := fl.String("profile", "default", "device profile: default, vulnerable or patched")
	listen := fl.String("listen", "0.0.0.0", "address every service listens on")
	advertise := fl.String("advertise", "", "IPv4 address to report as the device's own (default: the address each request arrives on)")
	gateway := fl.String("gateway", "", "default gateway reported in SADP and ISAPI (default: first host of the subnet)")
	ifaces := fl.String("interface", "", "comma-separated interfaces for SADP/WS-Discovery multicast (default: every up multicast interface)")
	user := fl.String("user", "", `admin user name (default "admin")`)
	passwordFile := fl.String("password-file", "", "file holding the admin password (first line)")
	freePorts := fl.Bool("free-ports", false, "put every service on a free port (then apply the port flags given)")
	ports := map[string]*int{}
	for _, p := range simPortFlags() {
		def := "free"
		if n := sim.ProfileDefault.Ports().Port(p.svc); n > 0 {
			def = fmt.Sprint(n)
		}
		ports[p.name] = fl.Int(p.name, 0, fmt.Sprintf("%s (default %s); 0 = a free port, -1 = off", p.what, def))
	}
	var https, activated optBool
	fl.Var(&https, "https", "serve HTTPS: true or false (default: the profile's choice)")
	name := fl.String("name", "", "device name")
	model := fl.String("model", "", "model number")
	serial := fl.String("serial", "", "serial number (model + date + serial)")
	mac := fl.String("mac", "", "MAC address")
	firmware := fl.String("firmware", "", `firmware version, like "V4.30.085"`)
	build := fl.String("build", "", `firmware build date YYMMDD, like "210628"`)
	fl.Var(&activated, "activated", "what SADP reports as Activated: true or false (default: the profile's)")
	maxFailures := fl.Int("max-failures", 7, "failed logins that lock a source IP; -1 = never lock")
	lockFor := fl.Duration("lock-duration", 30*time.Minute, "how long a locked source stays locked")
	tlsCert := fl.String("tls-cert", "", "PEM certificate for HTTPS (default: self-signed, generated at start)")
	tlsKey := fl.String("tls-key", "", "PEM key for --tls-cert")
	logFormat := fl.String("log-format", "text", "log format: text or json")
	logLevel := fl.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (passwords are read from --password-file or $CAMGATE_SIM_PASSWORD)", errUsage, fl.Arg(0))
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	log, err := newLogger(e.stderr, *logFormat, *logLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	var file *sim.File
	if *configPath != "" {
		if file, err = sim.LoadFile(*configPath); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	pname := "default"
	if file != nil && file.Profile != "" {
		pname = file.Profile
	}
	if set["profile"] {
		pname = *profile
	}
	p, err := sim.ParseProfile(pname)
	if err != nil {
		return fmt.Errorf("%w: --profile: %v", errUsage, err)
	}
	cfg := sim.Config{Profile: p, Ports: p.Ports(), Logger: log}
	if file != nil {
		if err := file.Apply(&cfg); err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, *configPath, err)
		}
	}
	if err := applySimFlags(&cfg, set, simFlagValues{
		listen: *listen, advertise: *advertise, gateway: *gateway, ifaces: *ifaces, user: *user,
		freePorts: *freePorts, ports: ports, https: https.v, name: *name, model: *model, serial: *serial,
		mac: *mac, firmware: *firmware, build: *build, activated: activated.v, maxFailures: *maxFailures,
		lockFor: *lockFor, tlsCert: *tlsCert, tlsKey: *tlsKey,
	}); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	// The password: never from argv.
	var credSource string
	switch {
	case *passwordFile != "":
		if cfg.Password, err = sim.ReadPasswordFile(*passwordFile); err != nil {
			return err
		}
		credSource = "password from --password-file " + *passwordFile
	case e.getenv("CAMGATE_SIM_PASSWORD") != "":
		cfg.Password = e.getenv("CAMGATE_SIM_PASSWORD")
		credSource = "password from $CAMGATE_SIM_PASSWORD"
	case file != nil && file.PasswordFile != "":
		if cfg.Password, err = sim.ReadPasswordFile(file.PasswordFile); err != nil {
			return err
		}
		credSource = "password from password_file " + file.PasswordFile
	case p.DefaultPassword() != "":
		credSource = fmt.Sprintf("password %s (the old firmware's factory default)", p.DefaultPassword())
	}

	d, err := sim.New(cfg)
	if err != nil {
		return explainBindError(err)
	}
	if credSource == "" {
		credSource = fmt.Sprintf("password %s (generated for this run and shown only here; set --password-file or $CAMGATE_SIM_PASSWORD to choose one)", d.Password())
	}
	d.WriteBanner(e.stdout, fmt.Sprintf("user %s, %s", d.User(), credSource))
	fmt.Fprintln(e.stdout, "Stop with Ctrl-C.")
	if err := d.Run(ctx); err != nil {
		return err
	}
	log.Info("simulator stopped")
	return nil
}

type simFlagValues struct {
	listen, advertise, gateway, ifaces, user string
	freePorts                                bool
	ports                                    map[string]*int
	https                                    bool
	name, model, serial, mac, firmware       string
	build                                    string
	activated                                bool
	maxFailures                              int
	lockFor                                  time.Duration
	tlsCert, tlsKey                          string
}

// applySimFlags sets on cfg what the command line set explicitly.
func applySimFlags(cfg *sim.Config, set map[string]bool, v simFlagValues) error {
	var errs []error
	addr := func(flagName, s string, dst *netip.Addr) {
		if !set[flagName] {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: %v", flagName, s, err))
			return
		}
		*dst = a
	}
	addr("listen", v.listen, &cfg.Listen)
	addr("advertise", v.advertise, &cfg.Advertise)
	addr("gateway", v.gateway, &cfg.Gateway)
	if set["interface"] {
		cfg.MulticastInterfaces = nil
		for _, n := range strings.Split(v.ifaces, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cfg.MulticastInterfaces = append(cfg.MulticastInterfaces, n)
			}
		}
	}
	if set["user"] {
		cfg.User = v.user
	}
	if v.freePorts {
		for _, s := range sim.Services() {
			if cfg.Ports.Port(s) > 0 {
				cfg.Ports.SetPort(s, 0)
			}
		}
	}
	for _, p := range simPortFlags() {
		if !set[p.name] {
			continue
		}
		n := *v.ports[p.name]
		if n < -1 || n > 65535 {
			errs = append(errs, fmt.Errorf("--%s %d: want 1-65535, 0 (free port) or -1 (off)", p.name, n))
			continue
		}
		cfg.Ports.SetPort(p.svc, n)
	}
	if set["https"] {
		cfg.HTTPSEnabled = &v.https
	}
	id := &cfg.Identity
	for _, f := range []struct {
		flag string
		v    string
		dst  *string
	}{
		{"name", v.name, &id.DeviceName}, {"model", v.model, &id.Model}, {"serial", v.serial, &id.SerialNumber},
		{"firmware", v.firmware, &id.FirmwareVersion}, {"build", v.build, &id.FirmwareBuild},
	} {
		if set[f.flag] {
			*f.dst = f.v
		}
	}
	if set["mac"] {
		m, err := net.ParseMAC(v.mac)
		if err != nil || len(m) != 6 {
			errs = append(errs, fmt.Errorf("--mac %q: want six bytes like 44:19:b6:3c:5a:71", v.mac))
		} else {
			id.MAC = m
		}
	}
	if set["activated"] {
		id.Activated = &v.activated
	}
	if set["max-failures"] {
		cfg.MaxFailedLogins = v.maxFailures
		if v.maxFailures == 0 {
			errs = append(errs, errors.New("--max-failures 0: use -1 to never lock"))
		}
	}
	if set["lock-duration"] {
		if v.lockFor <= 0 {
			errs = append(errs, fmt.Errorf("--lock-duration %v: want a positive duration", v.lockFor))
		}
		cfg.LockDuration = v.lockFor
	}
	if set["tls-cert"] || set["tls-key"] {
		if v.tlsCert == "" || v.tlsKey == "" {
			errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
		}
		cfg.TLSCertFile, cfg.TLSKeyFile = v.tlsCert, v.tlsKey
	}
	return errors.Join(errs...)
}

// explainBindError adds what to do about the usual bind failures.
func explainBindError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w\nports below 1024 (HTTPS 443, RTSP 554) need root or CAP_NET_BIND_SERVICE; run with --free-ports, or move them, e.g. --https-port 8443 --rtsp-port 8554", err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w\nanother program (another camgate sim?) has that port; choose other ports or use --free-ports", err)
	}
	return err
}

// optBool is a boolean flag that remembers whether it was given, so an
// absent flag keeps the profile's value. "--https" alone means true.
type optBool struct{ v, set bool }

func (b *optBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return fmt.Sprint(b.v)
}

func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	b.v, b.set = v, true
	return nil
}

func (b *optBool) IsBoolFlag() bool { return true }
