package audit

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
)

// Finding ids about camgate itself and the router.
const (
	IDAdminPlainHTTP      = "gateway-admin-plain-http"
	IDAdminPublic         = "gateway-admin-exposed"
	IDAdminAllInterfaces  = "gateway-admin-all-interfaces"
	IDAdminAllow          = "gateway-admin-allow"
	IDRuleOpaqueHTTPS     = "rule-https-passthrough"
	IDMetricsPublic       = "gateway-metrics-public"
	IDPasswordPolicy      = "gateway-admin-password-policy"
	IDCertExpired         = "gateway-cert-expired"
	IDCertExpiring        = "gateway-cert-expiry"
	IDCertUnreadable      = "gateway-cert-unreadable"
	IDRouterExtraMappings = "router-extra-mappings"
	IDRouterDeviceMapping = "router-device-mapping"
	IDRouterUnreachable   = "router-not-inspected"
)

// certWarning is how close to expiry a certificate gets a finding.
const certWarning = 30 * 24 * time.Hour

// GatewayFindings audits camgate's own admin UI and certificates.
// configPath resolves relative certificate paths; stateDir is where
// generated certificates live ("" skips them).
func GatewayFindings(cfg *config.Config, configPath, stateDir string, now time.Time) []Finding {
	var out []Finding
	out = append(out, adminFindings(cfg)...)
	out = append(out, certFindings(certFiles(cfg, configPath, stateDir), now)...)
	return out
}

func adminFindings(cfg *config.Config) []Finding {
	a := &cfg.Admin
	if !a.IsEnabled() {
		return nil
	}
	ep, err := a.Endpoint()
	if err != nil {
		return nil // validation reports it
	}
	var out []Finding
	add := func(id string, sev Severity, title, meaning, fix string) {
		out = append(out, Finding{ID: id, Severity: sev, Subject: "admin UI", Title: title, Meaning: meaning, Fix: fix,
			Evidence: map[string]string{"admin.listen": orDefault(a.Listen, config.DefaultAdminListen), "insecure_http": fmt.Sprint(a.InsecureHTTP)}})
	}
	addr := ep.Addr.Addr().Unmap()
	if !ep.HTTPS && !addr.IsLoopback() {
		add(IDAdminPlainHTTP, High, fmt.Sprintf("is served over plain HTTP on %s", ep.Addr),
			"The admin password and the session cookie cross the network in clear; anyone on the path (the LAN's Wi-Fi, a forwarded port) can take over camgate and with it every camera rule.",
			"set admin.listen to https://… (the default) and remove insecure_http, or bind plain HTTP to 127.0.0.1 and use an SSH tunnel")
	}
	class, _ := check.Classify(addr)
	switch {
	case addr.IsUnspecified():
		add(IDAdminAllInterfaces, Low, fmt.Sprintf("listens on every interface (%s)", ep.Addr),
			"The admin UI listens on every network this host is on. camgate answers only loopback, private, ULA and link-local sources (and admin.allow), and closes other connections at once; binding to one address keeps even that from the internet side.",
			"bind admin.listen to this host's LAN address (or 127.0.0.1), and never forward its port")
	case class == check.ClassPublic:
		add(IDAdminPublic, High, fmt.Sprintf("listens on the public address %s", addr),
			"The admin UI faces the internet: password guessing and any flaw in it are one request away.",
			"bind admin.listen to a LAN or loopback address and reach it through a VPN")
	}
	if wide := publicAllow(a); len(wide) > 0 {
		add(IDAdminPublic, High, fmt.Sprintf("answers internet sources: admin.allow lists %s", strings.Join(wide, ", ")),
			"camgate's admin UI answers only LAN sources by default; admin.allow opens it to these public addresses, so password guessing and any flaw in it are one request away from them.",
			"remove the public entries from admin.allow and reach the admin UI through a VPN, or list only the single addresses you manage it from")
	} else if len(a.Allow) > 0 {
		add(IDAdminAllow, Info, fmt.Sprintf("also answers %s (admin.allow)", strings.Join(a.Allow, ", ")),
			"Beyond loopback, private, ULA and link-local sources, these may reach the admin UI's login page.",
			"nothing to do if these are your own networks")
	}
	for _, r := range cfg.Rules {
		if r.IsEnabled() && r.Proto().HasTCP() && forwardsTo(&r, ep.Addr) {
			add(IDAdminPublic, High, fmt.Sprintf("is forwarded by rule %s", r.Name),
				"A port-forwarding rule points at camgate's own admin UI, which puts it on the internet.",
				fmt.Sprintf("remove rule %s; reach the admin UI from the LAN or through a VPN", r.Name))
		}
	}
	if a.MetricsPublic {
		add(IDMetricsPublic, Low, "serves /metrics without a token",
			"The metrics name every rule, device address and client count; unauthenticated, they map your cameras for anyone who can reach the admin port.",
			"remove metrics_public and give the scraper an API token")
	}
	add(IDPasswordPolicy, Info, "enforces a strong admin password (no switch turns this off)",
		"camgate refuses admin passwords shorter than 10 characters or that zxcvbn rates below 3 (about 10^8 guesses).",
		"nothing to do")
	return out
}

// publicAllow returns the admin.allow entries that take in public
// addresses (anything but loopback, private, ULA and link-local).
func publicAllow(a *config.Admin) []string {
	var out []string
	for i, p := range a.AllowPrefixes() {
		first, last := p.Masked().Addr(), lastAddr(p)
		if !config.AdminSourceAllowed(first, nil) || !config.AdminSourceAllowed(last, nil) || p.Bits() == 0 {
			out = append(out, a.Allow[i])
		}
	}
	return out
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// forwardsTo reports whether rule r forwards to the admin endpoint.
func forwardsTo(r *config.Rule, ep netip.AddrPort) bool {
	ip, err := netip.ParseAddr(r.InternalIP)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	local := ip.IsLoopback() || ip == ep.Addr().Unmap()
	return local && r.Internal().Contains(ep.Port())
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// certFile is a certificate camgate serves, and who serves it.
type certFile struct {
	path, use string
}

// certFiles lists the configured certificate files and the PEM files in
// the state directory (generated self-signed certificates, ACME cache).
func certFiles(cfg *config.Config, configPath, stateDir string) []certFile {
	rel := func(p string) string {
		if filepath.IsAbs(p) || configPath == "" {
			return p
		}
		return filepath.Join(filepath.Dir(configPath), p)
	}
	var out []certFile
	seen := map[string]bool{}
	addFile := func(p, use string) {
		if p == "" || seen[p] {
			return
		}
		seen[p] = true
		out = append(out, certFile{p, use})
	}
	if cfg.Admin.IsEnabled() && cfg.Admin.CertFile != "" {
		addFile(rel(cfg.Admin.CertFile), "admin UI (admin.cert_file)")
	}
	for _, r := range cfg.Rules {
		if r.IsEnabled() && r.TLS.Terminate() && r.TLS.CertFile != "" {
			addFile(rel(r.TLS.CertFile), fmt.Sprintf("rule %s (tls.cert_file)", r.Name))
		}
	}
	if stateDir != "" {
		var found []string
		filepath.WalkDir(stateDir, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if de.IsDir() && strings.Count(strings.TrimPrefix(p, stateDir), string(filepath.Separator)) > 2 {
				return filepath.SkipDir
			}
			if !de.IsDir() && (strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, ".crt")) && !strings.Contains(filepath.Base(p), "key") {
				found = append(found, p)
			}
			return nil
		})
		slices.Sort(found)
		for _, p := range found {
			addFile(p, "generated, in the state directory")
		}
	}
	return out
}

// certFindings reports certificates past or near expiry.
func certFindings(files []certFile, now time.Time) []Finding {
	var out []Finding
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			out = append(out, Finding{ID: IDCertUnreadable, Severity: Medium, Subject: "certificate " + f.path,
				Title: fmt.Sprintf("(used by the %s) cannot be read", f.use), Meaning: "camgate will fail to serve TLS with it at the next start or reload.",
				Fix: "check the path and the file's permissions", Evidence: map[string]string{"error": err.Error()}})
			continue
		}
		block, _ := pem.Decode(data)
		for block != nil && block.Type != "CERTIFICATE" {
			block, _ = pem.Decode(nil)
		}
		if block == nil {
			continue // a key or another PEM file
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			out = append(out, Finding{ID: IDCertUnreadable, Severity: Medium, Subject: "certificate " + f.path,
				Title: fmt.Sprintf("(used by the %s) does not parse", f.use), Meaning: "camgate cannot serve TLS with a broken certificate.",
				Fix: "replace the file with a valid PEM certificate", Evidence: map[string]string{"error": err.Error()}})
			continue
		}
		ev := map[string]string{"subject": c.Subject.String(), "not_after": c.NotAfter.UTC().Format(time.RFC3339), "use": f.use}
		switch {
		case now.After(c.NotAfter):
			out = append(out, Finding{ID: IDCertExpired, Severity: High, Subject: "certificate " + f.path, Evidence: ev,
				Title:   fmt.Sprintf("(used by the %s) expired on %s", f.use, c.NotAfter.UTC().Format("2006-01-02")),
				Meaning: "Browsers and apps refuse the connection or teach users to click through warnings, which is how an impostor gets in.",
				Fix:     "renew it (a generated self-signed certificate is renewed when deleted and camgate restarts)"})
		case c.NotAfter.Sub(now) < certWarning:
			out = append(out, Finding{ID: IDCertExpiring, Severity: Medium, Subject: "certificate " + f.path, Evidence: ev,
				Title:   fmt.Sprintf("(used by the %s) expires on %s", f.use, c.NotAfter.UTC().Format("2006-01-02")),
				Meaning: "In less than 30 days clients will refuse it.",
				Fix:     "renew it before then"})
		}
	}
	return out
}

// routerFindings compares the router's mapping table with the rules.
func routerFindings(ctx context.Context, c *Config, cfg *config.Config) []Finding {
	rep, err := c.Router(ctx, cfg)
	if err != nil || rep == nil {
		msg := "no answer"
		if err != nil {
			msg = err.Error()
		}
		return []Finding{{ID: IDRouterUnreachable, Severity: Info, Subject: "router",
			Title:   "did not answer, so its port mappings were not compared with the rules",
			Meaning: "camgate could not compare the router's mappings with the rules.",
			Fix:     "check `camgate router status`", Evidence: map[string]string{"error": msg}}}
	}
	return RouterFindings(cfg, rep.LocalAddress, rep.Entries)
}

// RouterFindings compares the router's mapping table with the rules:
// mappings to this host (local) or with camgate's description prefix that
// no enabled rule needs, and mappings straight to a device, which bypass
// camgate (a Hikvision device's own UPnP does this).
func RouterFindings(cfg *config.Config, local netip.Addr, entries []router.Entry) []Finding {
	type key struct {
		proto string
		port  uint16
	}
	needed := map[key]bool{}
	devices := map[netip.Addr][]string{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if !r.IsEnabled() {
			continue
		}
		for p := int(r.ExternalPort.First); p <= int(r.ExternalPort.Last); p++ {
			if r.Proto().HasTCP() {
				needed[key{"tcp", uint16(p)}] = true
			}
			if r.Proto().HasUDP() {
				needed[key{"udp", uint16(p)}] = true
			}
		}
		if a, err := netip.ParseAddr(r.InternalIP); err == nil {
			devices[a.Unmap()] = append(devices[a.Unmap()], r.Name)
		}
	}
	prefix := strings.ToLower(cfg.Router.Prefix())
	var out []Finding
	var extra []string
	for _, e := range entries {
		client, _ := netip.ParseAddr(e.InternalClient)
		client = client.Unmap()
		desc := fmt.Sprintf("%s %d → %s:%d", strings.ToLower(e.Protocol), e.ExternalPort, e.InternalClient, e.InternalPort)
		if e.Description != "" {
			desc += fmt.Sprintf(" (%q)", e.Description)
		}
		if rules, ok := devices[client]; ok && client != local {
			out = append(out, Finding{ID: IDRouterDeviceMapping, Severity: High, Subject: "router", Rules: rules, Device: client.String(),
				Title:    "forwards a port straight to a device: " + desc,
				Meaning:  "This mapping bypasses camgate, and with it the allowlists, the brute-force guard and the exploit filter. Hikvision devices create such mappings themselves when their UPnP setting is on.",
				Fix:      "turn UPnP off on the device (Configuration → Network → Advanced Settings → NAT) and delete the mapping on the router",
				Evidence: map[string]string{"mapping": desc}})
			continue
		}
		ours := (local.IsValid() && client == local) || strings.HasPrefix(strings.ToLower(e.Description), prefix)
		if ours && !needed[key{strings.ToLower(e.Protocol), e.ExternalPort}] {
			extra = append(extra, desc)
		}
	}
	if len(extra) > 0 {
		out = append(out, Finding{ID: IDRouterExtraMappings, Severity: Medium, Subject: "router",
			Title:    fmt.Sprintf("maps %d port(s) to this host that no enabled rule needs", len(extra)),
			Meaning:  "Every open port is exposure; a mapping left behind by a removed rule or another program keeps a door open that nobody watches.",
			Fix:      "delete them on the router (upnpc -d PORT PROTO, or the router's UPnP page), or add the rules that need them",
			Evidence: map[string]string{"mappings": strings.Join(extra, "; ")}})
	}
	return out
}
