package hikvision

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/config"
)

// PlanOptions tune PlanRules.
type PlanOptions struct {
	// Name prefixes the rule names ("dvr1" gives "dvr1-https",
	// "dvr1-rtsp"). Empty means the first free "dvrN" (N = 1, 2, ...) in
	// the existing table.
	Name string
	// DeviceIP is the rules' internal_ip. Required.
	DeviceIP string
	// WithSDKPort adds the server/SDK port (DEV_MANAGE, 8000). Default
	// off: it is the iVMS-4200/mobile-app port and a frequent attack target.
	WithSDKPort bool
	// Reserved are external TCP ports that are not free even though no
	// rule uses them (the admin UI's port, for example).
	Reserved []uint16
	// Assumed says the ports were not read from the device (defaults or
	// SADP); descriptions and notes say so.
	Assumed bool
	// PassthroughHTTPS forwards the device's own HTTPS port raw instead
	// of camgate terminating TLS in front of its HTTP port. Default off:
	// camgate cannot read what passes through, so neither the exploit
	// filter nor the brute-force guard can protect it (issue 14).
	PassthroughHTTPS bool
}

// Plan is the rule set for one device, ready to append to the table.
type Plan struct {
	// Name is the rule-name prefix used.
	Name string `json:"name"`
	// Rules are the new rules, in table order.
	Rules []config.Rule `json:"rules"`
	// Warnings are things the user should act on (plain HTTP exposed,
	// RTSP off on the device...).
	Warnings []string `json:"warnings,omitempty"`
	// Notes explain what was left out and why.
	Notes []string `json:"notes,omitempty"`
}

// ErrNameTaken means rules with the plan's names already exist.
var ErrNameTaken = errors.New("rule names already in use")

// externalStep is the stride of the external-port scheme: a device port
// P is exposed on P if free, else P+1000, P+2000, ... (554 → 1554 →
// 2554), else the next free port above P. The stride keeps the device's
// port recognisable in the external one, which helps when reading a
// router table or a phone app's settings.
const externalStep = 1000

// PlanRules returns the rules that expose a device, given its ports (as
// read from adminAccesses, or DefaultPorts when it could not be read).
// Every rule it writes is protected, so that a fresh setup passes
// `camgate audit` (issue 14):
//
//   - the web page and ISAPI as HTTPS that camgate terminates (tls:
//     terminate) in front of the device's HTTP port, with the brute-force
//     guard and the exploit filter; the device's own HTTPS is forwarded
//     raw only with PassthroughHTTPS, and plain HTTP never;
//   - RTSP over TCP, if enabled on the device, with the brute-force guard;
//   - the server/SDK port (DEV_MANAGE) only with WithSDKPort.
//
// External ports avoid every port of every existing rule, enabled or not
// (a disabled rule may be switched on later), on any listen address, and
// opts.Reserved; see externalStep for the order in which they are tried.
// The plan is deterministic: the same table and device give the same
// rules.
func PlanRules(existing []config.Rule, dev DeviceInfo, ports Ports, opts PlanOptions) (Plan, error) {
	if opts.DeviceIP == "" {
		return Plan{}, errors.New("plan rules: no device address")
	}
	p := Plan{Name: opts.Name}
	if p.Name == "" {
		p.Name = freeName(existing)
	}
	if !namePrefixRE.MatchString(p.Name) {
		return Plan{}, fmt.Errorf("plan rules: name %q must be lower-case letters, digits and '-' (at most 50), like \"dvr1\"", p.Name)
	}
	taken := takenPorts(existing, opts.Reserved)
	what := deviceLabel(dev)
	src := "device port"
	if opts.Assumed {
		src = "assumed device port"
	}

	// add adds a rule; the external port is picked starting from extFrom
	// (0: the device port).
	add := func(suffix string, extFrom, devPort uint16, desc string, protect func(*config.Rule)) error {
		if extFrom == 0 {
			extFrom = devPort
		}
		ext, ok := pickExternal(extFrom, taken)
		if !ok {
			return fmt.Errorf("plan rules: no free external port for %s-%s (device port %d)", p.Name, suffix, devPort)
		}
		taken[ext] = true
		r := config.Rule{
			Name:         p.Name + "-" + suffix,
			Description:  fmt.Sprintf("%s %s (%s %d)", what, desc, src, devPort),
			Protocol:     config.TCP,
			ExternalPort: config.PortRange{First: ext, Last: ext},
			InternalIP:   opts.DeviceIP,
			InternalPort: config.PortRange{First: devPort, Last: devPort},
		}
		if protect != nil {
			protect(&r)
		}
		if err := config.ValidateRule(&r); err != nil {
			return fmt.Errorf("plan rules: %w", err)
		}
		p.Rules = append(p.Rules, r)
		return nil
	}

	if err := p.planWeb(ports, opts, add); err != nil {
		return Plan{}, err
	}

	if rtsp := ports.Enabled(ProtoRTSP); rtsp != 0 {
		if err := add("rtsp", 0, rtsp, "live video over RTSP/TCP, e.g. rtsp://<public-ip>:<external_port>/Streaming/Channels/101", guardAuth); err != nil {
			return Plan{}, err
		}
	} else if s, ok := ports.Get(ProtoRTSP); ok {
		p.Warnings = append(p.Warnings, fmt.Sprintf("RTSP (port %d) is disabled on the device; no video rule added", s.Port))
	} else {
		p.Warnings = append(p.Warnings, "the device did not list an RTSP port; no video rule added")
	}

	sdk := ports.Enabled(ProtoDevManage)
	switch {
	case opts.WithSDKPort && sdk != 0:
		if err := add("server", 0, sdk, "server/SDK port for iVMS-4200 and the mobile app", nil); err != nil {
			return Plan{}, err
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s-server exposes the SDK port, a frequent attack target: restrict it to known addresses with allow: [...]", p.Name))
	case opts.WithSDKPort:
		p.Warnings = append(p.Warnings, "--with-sdk-port was given but the device has no enabled server/SDK (DEV_MANAGE) port")
	case sdk != 0:
		p.Notes = append(p.Notes, fmt.Sprintf("the server/SDK port %d (DEV_MANAGE) is not forwarded: it is the iVMS-4200/mobile-app SDK port and a frequent attack target; "+
			"use --with-sdk-port only if you need those apps", sdk))
	}

	if ws := ports.Enabled(ProtoWebSocket); ws != 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("the WebSocket port %d (plugin-free live view in the browser) is not forwarded; add a rule by hand if the web page's live view needs it", ws))
	}

	if len(p.Rules) == 0 {
		return p, errors.New("plan rules: the device has no port worth forwarding (no RTSP, HTTPS or HTTP enabled)")
	}
	var clash []string
	for _, r := range p.Rules {
		for _, e := range existing {
			if e.Name == r.Name {
				clash = append(clash, r.Name)
			}
		}
	}
	if len(clash) > 0 {
		return p, fmt.Errorf("%w: %s; pick another --name, or remove the old rules first", ErrNameTaken, strings.Join(clash, ", "))
	}
	for _, r := range p.Rules {
		for _, e := range existing {
			if e.InternalIP == r.InternalIP && e.Proto().HasTCP() && e.Internal().Overlaps(r.InternalPort) {
				p.Warnings = append(p.Warnings, fmt.Sprintf("rule %q already forwards to %s:%s; %s duplicates it", e.Name, e.InternalIP, e.Internal(), r.Name))
			}
		}
	}
	return p, nil
}

// guardAuth turns on the brute-force guard on an RTSP rule.
func guardAuth(r *config.Rule) { r.Guard.Auth, r.Guard.Service = true, config.ServiceRTSP }

// terminated serves the rule as HTTPS that camgate terminates, guarded.
func terminated(r *config.Rule) {
	r.TLS.Mode = config.TLSTerminate
	r.Guard.Auth = true
	r.Guard.Service = config.ServiceHTTP
}

// planWeb adds the web rule: HTTPS terminated by camgate in front of the
// device's HTTP port, or, only on request, the device's HTTPS raw.
func (p *Plan) planWeb(ports Ports, opts PlanOptions, add func(string, uint16, uint16, string, func(*config.Rule)) error) error {
	https, http := ports.Enabled(ProtoHTTPS), ports.Enabled(ProtoHTTP)
	switch {
	case opts.PassthroughHTTPS && https != 0:
		if err := add("https", 0, https, "web page, ISAPI and app access over the device's own HTTPS, passed through", nil); err != nil {
			return err
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s-https passes the device's own HTTPS through as you asked (--passthrough-https): camgate cannot read it, "+
			"so the exploit filter and the brute-force guard do not protect it, and every password guess over it counts towards the device's lockout of camgate's address. "+
			"Without the flag camgate serves HTTPS itself in front of the device's HTTP port, guarded", p.Name))
	case opts.PassthroughHTTPS:
		p.Warnings = append(p.Warnings, "--passthrough-https was given but HTTPS is off on the device; no web rule added")
	case http != 0:
		// The external port starts from the device's HTTPS port (443),
		// which is what users and apps expect for HTTPS.
		ext := uint16(DefaultHTTPSPort)
		if sv, ok := ports.Get(ProtoHTTPS); ok && sv.Port != 0 {
			ext = sv.Port
		}
		if err := add("https", ext, http, "web page and ISAPI over HTTPS served by camgate, guarded", terminated); err != nil {
			return err
		}
		p.Notes = append(p.Notes, fmt.Sprintf("the device's own HTTPS and plain HTTP are not forwarded: camgate serves HTTPS in %s-https and reads every request, "+
			"so the exploit filter and the brute-force guard can protect the device (--passthrough-https forwards the device's HTTPS raw instead)", p.Name))
	case https != 0:
		p.Warnings = append(p.Warnings, fmt.Sprintf("HTTP is off on the device, and camgate serves HTTPS in front of the device's HTTP port (LAN only); no web rule added. "+
			"Turn HTTP on on the device (Configuration > Network > Advanced Settings > Port, port %d) and run device add again, or pass --passthrough-https to forward the device's HTTPS raw, unguarded", DefaultHTTPPort))
	default:
		p.Warnings = append(p.Warnings, "neither HTTPS nor HTTP is enabled on the device; no web rule added")
	}
	return nil
}

var namePrefixRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$`)

// freeName returns the first "dvrN" no existing rule name starts with.
func freeName(existing []config.Rule) string {
	for n := 1; ; n++ {
		name := "dvr" + strconv.Itoa(n)
		used := false
		for _, r := range existing {
			if r.Name == name || strings.HasPrefix(r.Name, name+"-") {
				used = true
				break
			}
		}
		if !used {
			return name
		}
	}
}

// takenPorts marks the external TCP ports of every rule and the reserved
// ports. UDP-only rules do not collide with a TCP listener.
func takenPorts(existing []config.Rule, reserved []uint16) map[uint16]bool {
	taken := map[uint16]bool{}
	for _, r := range existing {
		if !r.Proto().HasTCP() || r.ExternalPort.IsZero() {
			continue
		}
		for p := int(r.ExternalPort.First); p <= int(r.ExternalPort.Last); p++ {
			taken[uint16(p)] = true
		}
	}
	for _, p := range reserved {
		taken[p] = true
	}
	return taken
}

// pickExternal applies the external-port scheme to device port devPort.
func pickExternal(devPort uint16, taken map[uint16]bool) (uint16, bool) {
	for p := int(devPort); p <= 65535; p += externalStep {
		if !taken[uint16(p)] {
			return uint16(p), true
		}
	}
	for p := int(devPort) + 1; p <= 65535; p++ {
		if !taken[uint16(p)] {
			return uint16(p), true
		}
	}
	return 0, false
}

// deviceLabel names the device in descriptions: "DVR DS-7608NI-K2",
// "IP camera DS-2CD2143G2-I", or "Hikvision device".
func deviceLabel(dev DeviceInfo) string {
	kind := "Hikvision device"
	switch t := strings.ToLower(dev.DeviceType); {
	case strings.Contains(t, "nvr"):
		kind = "NVR"
	case strings.Contains(t, "dvr"):
		kind = "DVR"
	case strings.Contains(t, "camera"), strings.Contains(t, "ipc"):
		kind = "IP camera"
	}
	if dev.Model != "" {
		return kind + " " + dev.Model
	}
	return kind
}
