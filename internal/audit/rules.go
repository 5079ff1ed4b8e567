package audit

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/camgate/camgate/internal/check"
	"github.com/camgate/camgate/internal/config"
)

// Finding ids about rules.
const (
	IDRuleSDKPort         = "rule-sdk-port-exposed"
	IDRuleTelnet          = "rule-telnet-exposed"
	IDRuleSSH             = "rule-ssh-exposed"
	IDRuleDiscovery       = "rule-discovery-port-exposed"
	IDRulePlainHTTPBeside = "rule-plain-http-with-https"
	IDRulePlainHTTP       = "rule-plain-http"
	IDRuleOpenToWorld     = "rule-open-to-world"
	IDRuleFilterOff       = "rule-exploit-filter-off"
	IDRuleRTSPUDP         = "rule-rtsp-udp"
	IDRuleDuplicate       = "rule-duplicate-exposure"
	IDRuleDefaultPort     = "rule-default-external-port"
)

// RuleFindings audits the enabled rules of cfg. It does no I/O.
func RuleFindings(cfg *config.Config) []Finding {
	var out []Finding
	var rules []*config.Rule
	for i := range cfg.Rules {
		if cfg.Rules[i].IsEnabled() {
			rules = append(rules, &cfg.Rules[i])
		}
	}
	https := httpsDevices(rules)
	for _, r := range rules {
		out = append(out, kernelNote(ruleFindings(r, https), r, cfg)...)
	}
	out = append(out, duplicates(rules)...)
	return out
}

// service is what a rule carries, as the audit sees it.
type service struct {
	// tcp and udp are the probe kinds check would use; "" when the rule
	// lacks that protocol.
	tcp, udp check.Kind
	port     uint16 // first internal port
}

func serviceOf(r *config.Rule) service {
	s := service{port: r.InternalPortFor(r.ExternalPort.First)}
	if r.Proto().HasTCP() {
		s.tcp, _ = check.ChooseKind(r, "tcp")
	}
	if r.Proto().HasUDP() {
		s.udp, _ = check.ChooseKind(r, "udp")
	}
	return s
}

// plainHTTP reports whether the rule exposes a device's web page without
// TLS.
func plainHTTP(r *config.Rule) bool {
	return serviceOf(r).tcp == check.KindHTTP && !r.TLS.Terminate()
}

// httpsDevices lists the devices some rule exposes over HTTPS (the
// device's own, or camgate terminating TLS).
func httpsDevices(rules []*config.Rule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		if k := serviceOf(r).tcp; k == check.KindHTTPS || (k != "" && r.TLS.Terminate()) {
			out[r.InternalIP] = append(out[r.InternalIP], r.Name)
		}
	}
	return out
}

func ruleSubject(r *config.Rule) string { return "rule " + r.Name }

func ruleEvidence(r *config.Rule) map[string]string {
	return map[string]string{
		"external_port": r.ExternalPort.String(),
		"internal":      fmt.Sprintf("%s:%s", r.InternalIP, r.Internal()),
		"protocol":      string(r.Proto()),
	}
}

func ruleFindings(r *config.Rule, https map[string][]string) []Finding {
	var out []Finding
	add := func(id string, sev Severity, title, meaning, fix string) {
		out = append(out, Finding{ID: id, Severity: sev, Subject: ruleSubject(r), Rules: []string{r.Name},
			Device: r.InternalIP, Title: title, Meaning: meaning, Fix: fix, Evidence: ruleEvidence(r)})
	}
	s := serviceOf(r)
	in := r.Internal()
	switch {
	case s.tcp == check.KindSDK:
		add(IDRuleSDKPort, High,
			fmt.Sprintf("forwards the device's server/SDK port (%d)", s.port),
			"The server port speaks Hikvision's proprietary SDK protocol (iVMS-4200, the mobile apps). It has had its own vulnerabilities, and camgate cannot read it, so neither the brute-force guard nor the exploit filter can protect it.",
			fmt.Sprintf("remove rule %s and reach the device through camgate's VPN instead (vpn: {enabled: true}, then camgate vpn add PHONE --allow %s): the apps, the web page and RTSP all work through it with no port open but WireGuard's (docs/VPN.md)", r.Name, vpnDevice(r)))
	case in.Contains(23) && r.Proto().HasTCP():
		add(IDRuleTelnet, Critical, "forwards telnet (port 23)",
			"Telnet sends the device's root password in clear and has been the way in for IoT botnets (Mirai and its kind).",
			fmt.Sprintf("remove rule %s and turn telnet off on the device", r.Name))
	case in.Contains(22) && r.Proto().HasTCP():
		add(IDRuleSSH, High, "forwards SSH (port 22) to the device",
			"A camera's SSH gives a root shell; Hikvision's hardening guide says to disable it, and it should never face the internet.",
			fmt.Sprintf("remove rule %s and turn SSH off on the device (Configuration → Security → Security Service)", r.Name))
	}
	if in.Contains(37020) || in.Contains(3702) {
		add(IDRuleDiscovery, High, "forwards a discovery port (SADP 37020 or WS-Discovery 3702)",
			"SADP and WS-Discovery are LAN-only multicast protocols. SADP also carries write commands (activate, reset password); exposed, it lets anyone on the internet talk to it and advertises the device.",
			fmt.Sprintf("remove rule %s: never forward 37020 or 3702", r.Name))
	}
	if s.tcp == check.KindHTTPS && !r.TLS.Terminate() && openToWorld(r) {
		add(IDRuleOpaqueHTTPS, Medium, "passes the device's own HTTPS through, where camgate cannot read it",
			"camgate sees only encrypted bytes: the exploit filter cannot stop a request such as CVE-2021-36260's PUT /SDK/webLanguage, and password guesses over it reach the device's lock count unseen (behind camgate that lock shuts out every remote user). camgate only slows new connections per source.",
			fmt.Sprintf("forward the device's HTTP port with tls: terminate and guard: auth instead of rule %s (what camgate device add writes), or add allow: [the CIDRs you connect from]", r.Name))
	}
	if plainHTTP(r) {
		if others := https[r.InternalIP]; len(others) > 0 {
			add(IDRulePlainHTTPBeside, Medium,
				fmt.Sprintf("exposes the device's web page over plain HTTP although rule %s offers HTTPS", others[0]),
				"Over plain HTTP the login exchange, the session and the video stream cross the internet unencrypted; keeping HTTP open next to HTTPS leaves the weaker door open.",
				fmt.Sprintf("remove rule %s, or set tls: terminate on it so camgate serves it over HTTPS", r.Name))
		} else {
			add(IDRulePlainHTTP, Low, "exposes the device's web page over plain HTTP",
				"The login exchange, the session and the video stream cross the internet unencrypted.",
				fmt.Sprintf("set tls: terminate on rule %s (camgate serves HTTPS in front of the device), or enable HTTPS on the device and forward that instead; or remove the rule and reach the page through camgate's VPN (camgate vpn add PHONE --allow %s, docs/VPN.md)", r.Name, vpnDevice(r)))
		}
	}
	if openToWorld(r) && !r.Proto().HasTCP() {
		add(IDRuleOpenToWorld, Low, "is open to the whole internet, with no allowlist",
			"Anyone can send datagrams to the device's UDP port; UDP carries no login camgate could guard, so an allowlist is the only protection.",
			fmt.Sprintf("add allow: [the CIDRs you connect from] to rule %s", r.Name))
	} else if openToWorld(r) && !r.AuthGuard() {
		add(IDRuleOpenToWorld, Medium, "is open to the whole internet, with no allowlist and no brute-force guard",
			"Anyone can try passwords. Hikvision devices lock the source address after 7 failures for 30 minutes, and behind camgate every remote user shares camgate's address, so one guesser locks everyone out; without a lock, nothing stops the guessing.",
			fmt.Sprintf("add allow: [the CIDRs you connect from] to rule %s, or guard: auth (camgate bans a source after a few failed logins, below the device's lockout)", r.Name))
	}
	if r.GuardService() == config.ServiceHTTP && !r.HikvisionFilter() && openToWorld(r) {
		add(IDRuleFilterOff, Medium, "has camgate's Hikvision exploit filter turned off",
			"The filter drops requests that exploit known Hikvision web-server flaws (CVE-2021-36260's /SDK/webLanguage, CVE-2017-7921's auth= bypass) before they reach the device.",
			fmt.Sprintf("remove guard.hikvision: false (or guard: off) from rule %s", r.Name))
	}
	if s.udp != "" && (in.Contains(554) || in.Contains(8554) || mentionsRTSP(r)) {
		add(IDRuleRTSPUDP, Low, "forwards UDP for RTSP",
			"RTSP over UDP does not work through port forwarding: the media ports are negotiated inside the RTSP exchange and are not the forwarded ones, so remote players time out and fall back to TCP anyway. The open UDP port only adds exposure.",
			fmt.Sprintf("set protocol: tcp on rule %s and have remote players use RTSP over TCP (interleaved), e.g. ffplay -rtsp_transport tcp", r.Name))
	}
	if r.Proto().HasTCP() && isDefaultPort(r.ExternalPort) {
		add(IDRuleDefaultPort, Info, fmt.Sprintf("uses the factory port %s as its external port", r.ExternalPort),
			"Internet-wide scanners probe 80, 443, 554 and 8000 for Hikvision devices first. Another external port does not make the device safe, but it cuts the noise in the logs.",
			fmt.Sprintf("consider another external_port for rule %s (for example 18000-18999)", r.Name))
	}
	return out
}

// openToWorld reports whether every source address may connect.
func openToWorld(r *config.Rule) bool {
	allow := r.AllowPrefixes()
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

func mentionsRTSP(r *config.Rule) bool {
	s := strings.ToLower(r.Name + " " + r.Description)
	return strings.Contains(s, "rtsp")
}

func isDefaultPort(pr config.PortRange) bool {
	for _, p := range []uint16{80, 443, 554, 8000} {
		if pr.Contains(p) {
			return true
		}
	}
	return false
}

// duplicates finds enabled rules that forward to the same device port
// with a common protocol.
func duplicates(rules []*config.Rule) []Finding {
	var out []Finding
	for i, a := range rules {
		for _, b := range rules[i+1:] {
			if !sameHost(a.InternalIP, b.InternalIP) || !a.Internal().Overlaps(b.Internal()) {
				continue
			}
			common := (a.Proto().HasTCP() && b.Proto().HasTCP()) || (a.Proto().HasUDP() && b.Proto().HasUDP())
			if !common {
				continue
			}
			out = append(out, Finding{ID: IDRuleDuplicate, Severity: Medium,
				Subject: fmt.Sprintf("rules %s and %s", a.Name, b.Name), Rules: []string{a.Name, b.Name}, Device: a.InternalIP,
				Title: fmt.Sprintf("(external ports %s and %s) both forward to %s port %s",
					a.ExternalPort, b.ExternalPort, a.InternalIP, overlap(a.Internal(), b.Internal())),
				Meaning: "The same device port is reachable through two doors. Each is one more place to keep allowlists and guards in step, and the forgotten one is usually the weaker.",
				Fix:     fmt.Sprintf("keep one of %s and %s and remove the other", a.Name, b.Name),
				Evidence: map[string]string{"internal": a.InternalIP + ":" + overlap(a.Internal(), b.Internal()),
					a.Name: a.ExternalPort.String(), b.Name: b.ExternalPort.String()}})
		}
	}
	return out
}

func overlap(a, b config.PortRange) string {
	return config.PortRange{First: max(a.First, b.First), Last: min(a.Last, b.Last)}.String()
}

// sameHost compares internal_ip values, as addresses when they parse.
func sameHost(a, b string) bool {
	pa, ea := netip.ParseAddr(a)
	pb, eb := netip.ParseAddr(b)
	if ea == nil && eb == nil {
		return pa.Unmap() == pb.Unmap()
	}
	return strings.EqualFold(a, b)
}

// upgradePlainHTTP turns rule-plain-http into rule-plain-http-with-https
// for devices whose adminAccesses shows HTTPS on: the safer door exists
// on the device, only the rule does not use it.
func upgradePlainHTTP(fs []Finding, devs []DeviceReport) []Finding {
	for i := range fs {
		f := &fs[i]
		if f.ID != IDRulePlainHTTP {
			continue
		}
		for _, d := range devs {
			if d.Address != f.Device || d.HTTPSEnabled == nil || !*d.HTTPSEnabled {
				continue
			}
			f.ID, f.Severity = IDRulePlainHTTPBeside, Medium
			f.Title = fmt.Sprintf("exposes the device's web page over plain HTTP although the device has HTTPS on (port %d)", d.HTTPSPort)
			f.Fix = fmt.Sprintf("forward the device's HTTPS port %d instead of rule %s, or set tls: terminate on it", d.HTTPSPort, f.Rules[0])
			f.Evidence["device_https_port"] = fmt.Sprint(d.HTTPSPort)
		}
	}
	return fs
}

// vpnDevice names the device a rule forwards to for a `camgate vpn add
// --allow` suggestion: the rule's device, else a placeholder.
func vpnDevice(r *config.Rule) string {
	if r.Device != "" {
		return r.Device
	}
	return "DEVICE"
}
