package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/portowner"
	"github.com/camgate/camgate/internal/wan"
)

// gatewayLayer checks camgate's own listener for one protocol.
func (r *runner) gatewayLayer(ctx context.Context, rule *config.Rule, proto string) Result {
	port := rule.ExternalPort.First
	listen := rule.Listen(r.cfg.Listen())
	res := Result{Layer: LayerGateway, Protocol: proto, Probe: KindListener,
		Target: net.JoinHostPort(listen, strconv.Itoa(int(port)))}
	if !rule.IsEnabled() {
		res.Status, res.Reason = Fail, "the rule is disabled, so camgate does not listen for it"
		res.Fix = fmt.Sprintf("enable it: camgate rule enable %s", rule.Name)
		return res
	}
	if r.kernel[rule.Name] {
		// No socket: the kernel forwards the port (docs/KERNEL.md); the
		// inside and outside probes test the path itself.
		res.Status, res.Probe = OK, KindKernel
		res.Reason = fmt.Sprintf("nftables forwards %s/%s%s in the kernel (table inet camgate); no listener is needed", res.Target, proto, rangeNote(rule))
		return res
	}
	la, err := netip.ParseAddr(listen)
	if err != nil {
		res.Status, res.Reason = Fail, fmt.Sprintf("listen address %q is not an IP address", listen)
		res.Fix = "fix listen_address in the config (camgate validate shows every problem)"
		return res
	}
	socks, procErr := r.owners.Bound(proto, la, port)
	var camgate, others []portowner.Owner
	unknownOwner := false
	for _, s := range socks {
		o, ok := r.owners.Owner(s.Inode)
		switch {
		case !ok:
			unknownOwner = true
		case o.IsCamgate():
			camgate = append(camgate, o)
		default:
			others = append(others, o)
		}
	}
	where := fmt.Sprintf("%s/%s%s", res.Target, proto, rangeNote(rule))
	if len(others) > 0 && len(camgate) == 0 {
		res.Status = Fail
		res.Reason = fmt.Sprintf("port %d/%s is held by another program: %s", port, proto, others[0])
		res.Fix = "stop that program, or give the rule another external_port"
		return res
	}
	if proto == "udp" {
		switch {
		case len(camgate) > 0:
			res.Status, res.Reason = OK, fmt.Sprintf("%s has a UDP socket bound on %s", camgate[0], where)
		case unknownOwner:
			res.Status, res.Reason = OK, fmt.Sprintf("a UDP socket is bound on %s (which program holds it is not visible; run as root to tell)", where)
		case procErr != nil:
			res.Status, res.Reason = Unknown, fmt.Sprintf("UDP has no handshake and the socket table cannot be read here (%v), so camgate cannot tell whether it listens on %s", procErr, where)
			res.Fix = "run camgate check on the host that runs camgate serve"
		default:
			res.Status, res.Reason = Fail, fmt.Sprintf("no UDP socket is bound on %s", where)
			res.Fix = "start camgate serve with this config, or read its log: the rule may have failed to start"
		}
		return res
	}
	target := connectAddr(la, port)
	dctx, cancel := context.WithTimeout(ctx, r.c.timeout())
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", target)
	cancel()
	if err != nil {
		p := describeDial(err)
		res.Status = Fail
		res.Reason = fmt.Sprintf("nothing accepts connections on %s (%s)", where, p.words)
		res.Fix = "start camgate serve with this config, or read its log: the rule may have failed to start"
		if len(camgate) > 0 {
			res.Reason = fmt.Sprintf("%s holds %s but the connection failed (%s)", camgate[0], where, p.words)
			res.Fix = "read camgate's log; the host's firewall may block local connections"
		}
		return res
	}
	conn.Close()
	switch {
	case len(camgate) > 0:
		res.Status, res.Reason = OK, fmt.Sprintf("%s listens on %s", camgate[0], where)
	case procErr == nil && len(socks) == 0:
		// Connected, yet no listener of ours in the table: the
		// connection went somewhere else (a transparent proxy, another
		// namespace). Report what was seen.
		res.Status, res.Reason = OK, fmt.Sprintf("%s accepts connections (the listener is not in this host's socket table)", where)
	default:
		res.Status, res.Reason = OK, fmt.Sprintf("something listens on %s (which program is not visible; run as root to tell)", where)
	}
	return res
}

// connectAddr is where to connect to reach a listener on la: loopback for
// a wildcard address.
func connectAddr(la netip.Addr, port uint16) string {
	if la.IsUnspecified() {
		la = netip.MustParseAddr("127.0.0.1")
	}
	return netip.AddrPortFrom(la.Unmap(), port).String()
}

// insideLayer probes the device from this host.
func (r *runner) insideLayer(ctx context.Context, rule *config.Rule, proto string, kind Kind, why string) Result {
	port := rule.InternalPortFor(rule.ExternalPort.First)
	target := net.JoinHostPort(rule.InternalIP, strconv.Itoa(int(port)))
	res := Result{Layer: LayerInside, Protocol: proto, Probe: kind, Target: target}
	o := probe(ctx, kind, From{}.dialer(), target, r.c.timeout(), r.c.now())
	r.log.Debug("inside probe", "rule", rule.Name, "target", target, "kind", kind, "status", o.status)
	res.Details = o.details
	if res.Details == nil {
		res.Details = map[string]string{}
	}
	res.Details["probe_choice"] = why
	res.Status = o.status
	if o.dialErr != nil {
		p := describeDial(o.dialErr)
		res.Reason = fmt.Sprintf("the device at %s/%s does not answer: %s", target, proto, p.words)
		switch p.class {
		case "refused":
			res.Reason = fmt.Sprintf("the device at %s refused the connection on %s/%s: it is up, but nothing listens on that port", rule.InternalIP, strconv.Itoa(int(port)), proto)
			res.Fix = "check the device's port settings (Hikvision: Configuration → Network → Advanced Settings → Port) against the rule's internal_port, and that the service is running"
		case "timeout":
			res.Fix = fmt.Sprintf("check that the device is powered and that internal_ip %s is right (ping it); a firewall may drop the connection", rule.InternalIP)
		case "host-unreachable":
			res.Fix = fmt.Sprintf("nothing has address %s on the LAN: check internal_ip, the device's cable and power", rule.InternalIP)
		case "net-unreachable":
			res.Fix = fmt.Sprintf("this host has no route to %s: run camgate on a host in the device's LAN", rule.InternalIP)
		case "dns":
			res.Fix = "use the device's IP address in internal_ip, or fix the host name"
		default:
			res.Fix = "check internal_ip and internal_port"
		}
		return res
	}
	res.Reason, res.Fix = o.summary+rangeNote(rule), o.fix
	res.fingerprint = o.fingerprint
	return res
}

// outsideLayer checks the public address and probes through it.
func (r *runner) outsideLayer(ctx context.Context, rule *config.Rule, proto string, kind Kind, inside Result) Result {
	pa := r.public
	port := rule.ExternalPort.First
	res := Result{Layer: LayerOutside, Protocol: proto, Probe: kind}
	switch pa.Class {
	case ClassUnknown:
		res.Status, res.Reason = Unknown, "the public address is unknown, so the path from the internet cannot be tested"
		if pa.RouterError != "" {
			res.Reason += " (the router did not tell: " + pa.RouterError + ")"
		}
		res.Fix = "pass --public-ip ADDRESS, set public_ip in the config, or turn on router mode"
		return res
	case ClassCGNAT:
		res.Target = netip.AddrPortFrom(pa.IP, port).String()
		res.Status, res.Fix = Fail, wan.WaysOut
		res.Reason = fmt.Sprintf("the public address %s is carrier-grade NAT (CGNAT, 100.64.0.0/10): port forwarding cannot work from the internet", pa.IP)
		return res
	case ClassPrivate:
		res.Target = netip.AddrPortFrom(pa.IP, port).String()
		res.Status = Fail
		res.Reason = fmt.Sprintf("the public address %s is not an internet address (double NAT or no public address): port forwarding here alone cannot work from the internet", pa.IP)
		res.Fix = "forward the same port on the modem or router in front too (or put it in bridge mode), or " + wan.WaysOut
		return res
	}
	target := netip.AddrPortFrom(pa.IP, port).String()
	res.Target = target
	o := probe(ctx, kind, r.from.dialer(), target, r.c.timeout(), r.c.now())
	r.log.Debug("outside probe", "rule", rule.Name, "target", target, "from", r.from.String(), "status", o.status)
	res.Details = o.details
	lab := ""
	if pa.Class == ClassReserved {
		lab = fmt.Sprintf(" (%s is a lab address)", pa.IP)
	}
	path := "through the router (hairpin)"
	if !r.from.IsZero() {
		path = "from " + r.from.String()
	}
	switch {
	case o.status == Unknown:
		res.Status, res.Reason = Unknown, o.summary
		return res
	case o.status == OK && inside.Status == OK && inside.Probe == kind && o.fingerprint != "" && inside.fingerprint != "" && inside.fingerprint != o.fingerprint:
		res.Status = Unknown
		res.Reason = fmt.Sprintf("%s answered %s, but not like the device does from inside (%s): something else answers on this port", target, path, o.summary)
		res.Fix = "the router may serve this port itself (its own web page or remote management): move that service or use another external_port"
		return res
	case o.status == OK:
		res.Status = OK
		res.Reason = fmt.Sprintf("reachable at %s %s: %s%s", target, path, headline(o.summary), lab)
		return res
	}
	// The probe failed.
	var what string
	if o.dialErr != nil {
		what = describeDial(o.dialErr).words
	} else {
		what = strings.TrimPrefix(o.summary, "connected, but ")
	}
	if inside.Status == Fail {
		res.Status = Unknown
		res.Reason = fmt.Sprintf("%s %s failed (%s), as expected while the device itself does not answer (see inside)", target, path, what)
		res.Fix = "fix the inside layer first"
		return res
	}
	if r.from.Netns != "" {
		res.Status = Fail
		res.Reason = fmt.Sprintf("%s is not reachable %s: %s%s", target, path, what, lab)
		res.Fix = fmt.Sprintf("forward external port %d/%s on the router to the host running camgate, and check the router's firewall", port, proto)
		return res
	}
	res.Status = Unknown
	res.Reason = fmt.Sprintf("%s %s failed (%s): many routers do not support hairpin NAT (NAT loopback), so this does not tell whether the port is reachable from the internet%s", target, path, what, lab)
	res.Fix = "test from outside the LAN (a phone on mobile data), or turn on NAT loopback on the router if it has the option"
	return res
}

// headline is a summary's first clause ("answered HTTP 200"), for the
// outside line, which would otherwise repeat the inside line in full.
func headline(s string) string {
	if i := strings.IndexAny(s, ",;("); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
