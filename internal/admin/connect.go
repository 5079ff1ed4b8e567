package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/router"
)

// The Connect card (issue 16, item 4): for each rule and camera, the
// address to use from the internet, ready-to-copy URLs with the real
// external ports and a QR code of each for a phone, and what to do on the
// router: forward the ports by hand, or let camgate's router automation
// map them (the rule's router flag, set through the rules API).

// connectRoutes registers the Connect card's API.
func (s *Server) connectRoutes(h func(string, handler)) {
	h("GET /api/v1/connect", s.auth(s.getConnect))
	h("GET /api/v1/connect/qr", s.auth(s.connectQR))
}

// publicHost is where the internet reaches this site, and how camgate
// knows it.
type publicHost struct {
	// Host is a DNS name or an IP address; empty when camgate cannot
	// tell.
	Host string `json:"host"`
	// Source is "ddns" (the dynamic DNS name), "router" (the WAN address
	// the router reported), "config" (public_ip in camgate.yaml) or
	// "ddns-source" (the address the DDNS updater last saw).
	Source string `json:"source,omitempty"`
	// Warning says why the address may not work from the internet
	// (CGNAT, a router in front of the router).
	Warning string `json:"warning,omitempty"`
}

// connectURL is one ready-to-copy address.
type connectURL struct {
	Label string `json:"label"`
	URL   string `json:"url"`
	// QR is the API path of the URL's QR code (PNG).
	QR string `json:"qr"`
}

// connectRule is one rule on the Connect card.
type connectRule struct {
	Name         string           `json:"name"`
	Device       string           `json:"device,omitempty"`
	Protocol     config.Protocol  `json:"protocol"`
	ExternalPort config.PortRange `json:"external_port"`
	Enabled      bool             `json:"enabled"`
	Service      string           `json:"service,omitempty"`
	URLs         []connectURL     `json:"urls"`
	// Forward is what the router must forward, such as "554/tcp".
	Forward string `json:"forward"`
	// Router is the rule's router flag; Mapped whether the router
	// reports every mapping of the rule as mapped.
	Router bool `json:"router"`
	Mapped bool `json:"mapped"`
	// Advice is the one thing to do next for this rule.
	Advice string `json:"advice"`
	// CanOpenRouter offers "let camgate open the router": the router
	// speaks UPnP, NAT-PMP or PCP and the rule does not use it yet.
	CanOpenRouter bool `json:"can_open_router"`
}

// connectCamera groups a device's URLs.
type connectCamera struct {
	Name    string       `json:"name"`
	Address string       `json:"address"`
	URLs    []connectURL `json:"urls"`
}

type connectView struct {
	Public publicHost `json:"public"`
	// LANAddress is camgate's own LAN address, the one the router must
	// forward to.
	LANAddress string `json:"lan_address"`
	// RouterProtocol is the protocol the router answered with (upnp,
	// natpmp, pcp); empty when it did not or automation is off.
	RouterProtocol string `json:"router_protocol,omitempty"`
	// RouterNote says how to turn router automation on, when it is off.
	RouterNote string          `json:"router_note,omitempty"`
	Advice     string          `json:"advice,omitempty"`
	Rules      []connectRule   `json:"rules"`
	Cameras    []connectCamera `json:"cameras"`
}

// publicHostOf picks the address the internet knows the site by: the
// DDNS name first (it follows a changing address), then the router's WAN
// address, then public_ip, then what the DDNS updater last saw.
func (s *Server) publicHostOf(cfg *config.Config, rst *router.Status) publicHost {
	var p publicHost
	if cfg.DDNS.Enabled() {
		if name, _, _ := strings.Cut(cfg.DDNS.Hostname, ","); strings.Contains(strings.TrimSpace(name), ".") {
			p = publicHost{Host: strings.TrimSpace(name), Source: "ddns"}
		}
	}
	if rst != nil && rst.ExternalIP.IsValid() {
		if p.Host == "" {
			p = publicHost{Host: rst.ExternalIP.String(), Source: "router"}
		}
		if rst.WAN != router.WANPublic {
			p.Warning = rst.Advice
		}
	}
	if p.Host == "" && cfg.PublicIP != "" {
		p = publicHost{Host: cfg.PublicIP, Source: "config"}
	}
	if p.Host == "" {
		if st := s.ddnsStatus(); st != nil && st.PublicIP.IsValid() {
			p = publicHost{Host: st.PublicIP.String(), Source: "ddns-source"}
		}
	}
	return p
}

// lanAddress is camgate's LAN address: the router client's, else a
// rule's specific listen address, else the address this request came in
// on.
func lanAddress(cfg *config.Config, rst *router.Status, r *http.Request) string {
	if rst != nil && rst.LocalAddress.IsValid() {
		return rst.LocalAddress.String()
	}
	if a, err := netip.ParseAddr(cfg.ListenAddress); err == nil && !a.IsUnspecified() {
		return a.String()
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && !ap.Addr().IsLoopback() {
			return ap.Addr().Unmap().String()
		}
	}
	return "this host's LAN address"
}

// ruleURLs returns a rule's URLs at host: RTSP URLs per stream channel
// (the device's, or 101 and 102), an http(s) URL for a web rule, host:port
// otherwise. An empty host gives none.
func ruleURLs(cfg *config.Config, r *config.Rule, host string) []connectURL {
	if host == "" {
		return nil
	}
	hp := net.JoinHostPort(host, strconv.Itoa(int(r.ExternalPort.First)))
	qr := func(ch int) string {
		v := url.Values{"rule": {r.Name}}
		if ch != 0 {
			v.Set("channel", strconv.Itoa(ch))
		}
		return "/api/v1/connect/qr?" + v.Encode()
	}
	switch r.GuardService() {
	case config.ServiceRTSP:
		chans := []int{101, 102}
		if d := cfg.DeviceOf(r); d != nil {
			chans = d.StreamChannels()
		}
		var out []connectURL
		for _, ch := range chans {
			c := channelOf(ch)
			out = append(out, connectURL{Label: fmt.Sprintf("camera %d, %s stream", c.Camera, c.Stream),
				URL: fmt.Sprintf("rtsp://%s/Streaming/Channels/%d", hp, ch), QR: qr(ch)})
		}
		return out
	case config.ServiceHTTP:
		scheme := "http"
		if r.TLS.Terminate() || r.Internal().First == 443 {
			scheme = "https"
		}
		return []connectURL{{Label: "web page", URL: scheme + "://" + hp + "/", QR: qr(0)}}
	}
	return []connectURL{{Label: "address", URL: hp, QR: qr(0)}}
}

// forwardText spells a rule's ports for a router's form: "554/tcp",
// "8000-8001/tcp and udp".
func forwardText(r *config.Rule) string {
	ports := r.ExternalPort.String()
	switch r.Proto() {
	case config.UDP:
		return ports + "/udp"
	case config.Both:
		return ports + "/tcp and udp"
	}
	return ports + "/tcp"
}

func (s *Server) getConnect(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.connect(s.site.Config(), r))
	return nil
}

// connect builds the Connect card.
func (s *Server) connect(cfg *config.Config, r *http.Request) connectView {
	var rst *router.Status
	if s.router != nil && cfg.Router.Enabled() {
		st := s.router.Status()
		rst = &st
	}
	v := connectView{Public: s.publicHostOf(cfg, rst), LANAddress: lanAddress(cfg, rst, r),
		Rules: []connectRule{}, Cameras: []connectCamera{}}
	switch {
	case rst != nil && rst.Protocol != "":
		v.RouterProtocol = string(rst.Protocol)
	case rst != nil:
		v.RouterNote = "router automation is on but no router answered UPnP, NAT-PMP or PCP"
		if rst.Error != "" {
			v.RouterNote += ": " + rst.Error
		}
	default:
		v.RouterNote = "to let camgate open ports on the router itself, set router: {mode: auto} in camgate.yaml (UPnP, NAT-PMP or PCP)"
	}
	var manual []string
	for i := range cfg.Rules {
		cr := s.connectRule(cfg, &cfg.Rules[i], rst, v)
		if cr.Enabled && !cr.Mapped {
			manual = append(manual, cr.Forward)
		}
		v.Rules = append(v.Rules, cr)
	}
	if len(manual) > 0 {
		v.Advice = fmt.Sprintf("forward %s on your router to %s", joinAnd(manual), v.LANAddress)
	}
	for _, c := range s.cameras(cfg) {
		cc := connectCamera{Name: c.Name, Address: c.Address, URLs: []connectURL{}}
		for _, cr := range v.Rules {
			if slices.Contains(c.Rules, cr.Name) && cr.Enabled {
				cc.URLs = append(cc.URLs, cr.URLs...)
			}
		}
		v.Cameras = append(v.Cameras, cc)
	}
	return v
}

// connectRule is one rule's part of the card.
func (s *Server) connectRule(cfg *config.Config, r *config.Rule, rst *router.Status, v connectView) connectRule {
	cr := connectRule{Name: r.Name, Protocol: r.Proto(), ExternalPort: r.ExternalPort, Enabled: r.IsEnabled(),
		Service: r.GuardService(), URLs: ruleURLs(cfg, r, v.Public.Host), Forward: forwardText(r), Router: r.Router}
	if cr.URLs == nil {
		cr.URLs = []connectURL{}
	}
	if d := cfg.DeviceOf(r); d != nil {
		cr.Device = d.Name
	}
	var problem string
	if rst != nil && r.Router {
		n := 0
		for _, m := range rst.Mappings {
			if m.Rule != r.Name {
				continue
			}
			n++
			if m.State != router.StateMapped && problem == "" {
				problem = m.Message
				if problem == "" {
					problem = string(m.State)
				}
			}
		}
		cr.Mapped = n > 0 && problem == ""
	}
	cr.CanOpenRouter = cr.Enabled && !r.Router && v.RouterProtocol != ""
	switch {
	case !cr.Enabled:
		cr.Advice = "the rule is off: enable it on the Port Forwarding page first"
	case cr.Mapped:
		cr.Advice = fmt.Sprintf("camgate keeps %s open on the router (%s): nothing to do", cr.Forward, v.RouterProtocol)
	case r.Router && problem != "":
		cr.Advice = fmt.Sprintf("the router did not map %s (%s): forward it by hand to %s", cr.Forward, problem, v.LANAddress)
	default:
		cr.Advice = fmt.Sprintf("forward %s on your router to %s", cr.Forward, v.LANAddress)
	}
	if cr.Service == config.ServiceRTSP && cr.Enabled {
		cr.Advice += "; players should use RTSP over TCP (RTP over UDP needs its own rule and forward for the RTP range)"
	}
	if v.Public.Host == "" {
		cr.Advice += "; camgate does not know the public address: set public_ip or ddns in camgate.yaml, or turn on router automation"
	}
	return cr
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// qrSize is the PNG's side in pixels: large enough for a phone camera
// across a desk, small enough to sit in a card.
const qrSize = 256

// connectQR draws the QR code of one of the card's URLs: ?rule=NAME and,
// for an RTSP rule, &channel=ID. It encodes only URLs the card itself
// shows, never text from the request.
func (s *Server) connectQR(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	cfg := s.site.Config()
	rule := cfg.Rule(q.Get("rule"))
	if rule == nil {
		return errorf(http.StatusNotFound, "no rule called %q", q.Get("rule"))
	}
	var rst *router.Status
	if s.router != nil && cfg.Router.Enabled() {
		st := s.router.Status()
		rst = &st
	}
	host := s.publicHostOf(cfg, rst).Host
	if host == "" {
		return errorf(http.StatusConflict, "camgate does not know the public address: set public_ip or ddns in camgate.yaml, or turn on router automation")
	}
	want := ""
	if ch := q.Get("channel"); ch != "" {
		want = "/Streaming/Channels/" + ch
	}
	for _, u := range ruleURLs(cfg, rule, host) {
		if want == "" || strings.HasSuffix(u.URL, want) {
			png, err := qrcode.Encode(u.URL, qrcode.Medium, qrSize)
			if err != nil {
				return fmt.Errorf("qr code of %s: %w", u.URL, err)
			}
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(png)
			return nil
		}
	}
	return errorf(http.StatusNotFound, "rule %q has no channel %q", rule.Name, q.Get("channel"))
}
