package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DDNSProvider names a dynamic DNS protocol or service.
type DDNSProvider string

// The providers camgate speaks (docs/DDNS.md).
const (
	DDNSOff DDNSProvider = "off"
	// DDNSDyndns2 is the dyndns2 protocol (No-IP, Dyn, Dynu, Google
	// Domains' successors, most routers' list). Server names the
	// provider's update URL; "noip" and "dyn" are presets.
	DDNSDyndns2 DDNSProvider = "dyndns2"
	DDNSNoIP    DDNSProvider = "noip"
	DDNSDyn     DDNSProvider = "dyn"
	// DDNSDuckDNS is duckdns.org's token API.
	DDNSDuckDNS DDNSProvider = "duckdns"
	// DDNSURL is any provider with an update URL: a template with {ip},
	// {hostname} and {token}.
	DDNSURL DDNSProvider = "url"
)

// DDNS defaults and bounds.
const (
	DefaultDDNSInterval = 5 * time.Minute
	MinDDNSInterval     = 30 * time.Second
)

// DDNSServers are the update URLs of the dyndns2 presets and DuckDNS.
var ddnsServers = map[DDNSProvider]string{
	DDNSNoIP:    "https://dynupdate.no-ip.com/nic/update",
	DDNSDyn:     "https://members.dyndns.org/v3/update",
	DDNSDuckDNS: "https://www.duckdns.org/update",
}

// DDNS keeps a DNS name pointing at the site's public address, which
// camgate learns from the router (router automation) or from public_ip.
// The zero value is off. Secrets never go in camgate.yaml: the password or
// token is read from PasswordFile or TokenFile.
type DDNS struct {
	// Provider is off, dyndns2, noip, dyn, duckdns or url. Empty means off.
	Provider DDNSProvider `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Hostname is the name to keep updated: "mycams.ddns.net" (dyndns2),
	// "mycams" or "mycams.duckdns.org" (DuckDNS), {hostname} in URL.
	// Several names, comma-separated, where the provider takes them.
	Hostname string `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	// Server is the dyndns2 update URL, such as
	// "https://dynupdate.no-ip.com/nic/update". Empty means the preset's
	// (noip, dyn, duckdns); dyndns2 needs it.
	Server string `yaml:"server,omitempty" json:"server,omitempty"`
	// Username is the dyndns2 account name (not a secret).
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// PasswordFile holds the dyndns2 password (or update key), alone in
	// the file. Relative paths are against the config file's folder.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// TokenFile holds the DuckDNS token, or the {token} of a URL template.
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	// URL is the update URL template for provider url, for example
	// "https://dyn.example.net/update?host={hostname}&ip={ip}&key={token}".
	// A 2xx answer is success.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Interval is how often camgate looks at the public address. An
	// update is sent only when it changed. 0 means DefaultDDNSInterval.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// EffectiveProvider returns the provider, with empty meaning off.
func (d DDNS) EffectiveProvider() DDNSProvider {
	p := DDNSProvider(strings.ToLower(strings.TrimSpace(string(d.Provider))))
	if p == "" {
		return DDNSOff
	}
	return p
}

// Enabled reports whether a provider is set.
func (d DDNS) Enabled() bool { return d.EffectiveProvider() != DDNSOff }

// UpdateServer returns the update URL: Server, else the preset's.
func (d DDNS) UpdateServer() string {
	if d.Server != "" {
		return d.Server
	}
	return ddnsServers[d.EffectiveProvider()]
}

// Every returns the effective check interval.
func (d DDNS) Every() time.Duration {
	if d.Interval <= 0 {
		return DefaultDDNSInterval
	}
	return d.Interval.D()
}

func validateDDNS(d *DDNS, add func(field, format string, args ...any)) {
	p := d.EffectiveProvider()
	switch p {
	case DDNSOff:
		return
	case DDNSDyndns2, DDNSNoIP, DDNSDyn, DDNSDuckDNS, DDNSURL:
	default:
		add("provider", "%q is not off, dyndns2, noip, dyn, duckdns or url", string(d.Provider))
		return
	}
	if strings.TrimSpace(d.Hostname) == "" && p != DDNSURL {
		add("hostname", "missing; the name to keep pointed at this site, such as \"mycams.ddns.net\"")
	}
	for _, h := range strings.Split(d.Hostname, ",") {
		if h = strings.TrimSpace(h); h != "" && !hostnameOK(h) {
			add("hostname", "%q is not a host name", h)
		}
	}
	switch p {
	case DDNSDyndns2, DDNSNoIP, DDNSDyn:
		if p == DDNSDyndns2 && d.Server == "" {
			add("server", "missing; the provider's dyndns2 update URL, such as \"https://dynupdate.no-ip.com/nic/update\" (or use provider: noip or dyn)")
		}
		if d.Username == "" {
			add("username", "missing; the account name at the provider")
		}
		if d.PasswordFile == "" {
			add("password_file", "missing; a file holding only the password (chmod 600), never the password itself in camgate.yaml")
		}
	case DDNSDuckDNS:
		if d.TokenFile == "" {
			add("token_file", "missing; a file holding only your DuckDNS token (chmod 600)")
		}
	case DDNSURL:
		switch {
		case d.URL == "":
			add("url", "missing; the update URL with {ip} where the address goes, such as \"https://dyn.example.net/update?host={hostname}&ip={ip}&key={token}\"")
		case !strings.Contains(d.URL, "{ip}"):
			add("url", "has no {ip}; put {ip} where the provider expects the address")
		case strings.Contains(d.URL, "{token}") && d.TokenFile == "":
			add("token_file", "missing; the url uses {token}, which is read from this file")
		}
		if u, err := url.Parse(strings.NewReplacer("{ip}", "x", "{hostname}", "x", "{token}", "x").Replace(d.URL)); d.URL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			add("url", "is not an http:// or https:// URL")
		}
	}
	if s := d.UpdateServer(); s != "" && p != DDNSURL {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("server", "%q is not an http:// or https:// URL", s)
		} else if u.User != nil {
			add("server", "carries a user name or password; use username and password_file instead")
		}
	}
	if d.Interval < 0 || (d.Interval > 0 && d.Interval.D() < MinDDNSInterval) {
		add("interval", "%s is too short; at least %s (providers block clients that ask too often)", d.Interval.D(), MinDDNSInterval)
	}
}

// hostnameOK accepts DNS names of letters, digits, '-' and '.'.
func hostnameOK(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.HasPrefix(h, "-")
}

// String names the provider and host for logs and the dashboard.
func (d DDNS) String() string {
	return fmt.Sprintf("%s %s", d.EffectiveProvider(), d.Hostname)
}
