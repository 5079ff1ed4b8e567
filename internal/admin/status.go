package admin

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/ddns"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/gateway"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/rtsp"
	"github.com/camgate/camgate/internal/site"
)

// ruleStatus is one rule's live state.
type ruleStatus struct {
	Name         string           `json:"name"`
	Description  string           `json:"description,omitempty"`
	Protocol     config.Protocol  `json:"protocol"`
	ExternalPort config.PortRange `json:"external_port"`
	InternalIP   string           `json:"internal_ip"`
	InternalPort config.PortRange `json:"internal_port"`
	Enabled      bool             `json:"enabled"`
	// State is "listening", "disabled" or "down" (enabled but not bound,
	// which a failed apply leaves behind only for a moment).
	State     string           `json:"state"`
	Listening []string         `json:"listening"`
	Stats     forward.Snapshot `json:"stats"`
	// Guard is the rule's guard counters (refusals, blocked requests,
	// logins, bans); absent when the gateway runs without the guard.
	Guard *guard.Counters `json:"guard,omitempty"`
	// Effective is what protects the rule, as in the rule views.
	Effective effective `json:"effective"`
	// RTSP is the rule's RTP-over-UDP counters, for rules the RTSP relay
	// has carried.
	RTSP *rtsp.Stats `json:"rtsp,omitempty"`
	// Path is the data plane the rule runs on (kernel or userspace) and why.
	Path gateway.Path `json:"path"`
}

type statusView struct {
	Version       string    `json:"version"`
	Time          time.Time `json:"time"`
	Started       time.Time `json:"started"`
	Uptime        string    `json:"uptime"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Config        string    `json:"config"`
	LastApplied   time.Time `json:"last_applied"`
	ApplyDuration string    `json:"apply_duration"`
	LastError     string    `json:"last_error,omitempty"`
	// ConfigFile says whether camgate.yaml changed on disk since camgate
	// read or wrote it, was refused by a reload, or is out of step with
	// what runs; the UI shows a banner when it is.
	ConfigFile     site.FileState `json:"config_file"`
	Connections    int64          `json:"connections"`
	MaxConnections int            `json:"max_connections"`
	Rules          []ruleStatus   `json:"rules"`
	// Router and Bans say whether those pages have something to show;
	// Guard whether the gateway runs the guard (rules then carry guard
	// counters).
	Router bool `json:"router"`
	Bans   bool `json:"bans"`
	Guard  bool `json:"guard"`
	// RTP is the external RTP port range's use, with the RTSP relay.
	RTP *rtpPool `json:"rtp,omitempty"`
	// DDNS is the dynamic DNS name's state; absent when it is off.
	DDNS *ddns.Status `json:"ddns,omitempty"`
	// Devices is the brute-force guard's view of each guarded device:
	// failed logins the device has counted from camgate since its last
	// success, against the budget, and attempts held back (issue 14).
	Devices []guard.DeviceLogins `json:"devices,omitempty"`
}

// deviceLogins is what the status reads from the guard about devices.
type deviceLogins interface {
	DeviceLogins() []guard.DeviceLogins
}

func (s *Server) status() statusView {
	gs := s.site.Gateway().Status()
	now := s.now()
	v := statusView{
		Version: s.version, Time: now, Started: gs.Started, Uptime: gs.Uptime,
		UptimeSeconds: int64(now.Sub(gs.Started).Seconds()), Config: s.site.Path(),
		LastApplied: gs.LastApplied, ApplyDuration: gs.ApplyDuration, LastError: gs.LastError,
		Connections: gs.Connections, MaxConnections: gs.MaxConns, Rules: []ruleStatus{},
		Router: s.router != nil, Bans: s.bans != nil, ConfigFile: s.site.FileState(),
	}
	if v.ConfigFile.OutOfStep != "" {
		v.LastError = v.ConfigFile.OutOfStep
	}
	v.DDNS = s.ddnsStatus()
	g := s.guard()
	var counters map[string]guard.Counters
	if g != nil {
		v.Guard = true
		counters = g.AllCounters()
		if dl, ok := g.(deviceLogins); ok {
			v.Devices = dl.DeviceLogins()
		}
	}
	for _, r := range gs.Rules {
		rs := ruleStatus{
			Name: r.Name, Description: r.Description, Protocol: r.Proto(), ExternalPort: r.ExternalPort,
			InternalIP: r.InternalIP, InternalPort: r.Internal(), Enabled: r.IsEnabled(),
			Listening: r.Listening, Stats: r.Stats, Effective: effectiveOf(&r.Rule, g != nil), Path: r.Path,
		}
		if g != nil {
			// A rule the guard has not seen yet (disabled since the
			// start) has nothing counted.
			c := counters[r.Name]
			rs.Guard = &c
		}
		switch {
		case !rs.Enabled:
			rs.State = "disabled"
		case len(r.Listening) > 0:
			rs.State = "listening"
		default:
			rs.State = "down"
		}
		v.Rules = append(v.Rules, rs)
	}
	s.addRTSP(&v)
	return v
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.status())
	return nil
}

// connView is a live connection or UDP session.
type connView struct {
	forward.ConnInfo
	DurationSeconds float64 `json:"duration_seconds"`
}

// maxConnList bounds one listing; the count says how many there are.
const maxConnList = 2000

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	conns := s.site.Gateway().Connections()
	rule := r.URL.Query().Get("rule")
	now := s.now()
	out := []connView{}
	total := 0
	for _, c := range conns {
		if rule != "" && c.Rule != rule {
			continue
		}
		total++
		if len(out) < maxConnList {
			out = append(out, connView{ConnInfo: c, DurationSeconds: now.Sub(c.Started).Round(time.Millisecond).Seconds()})
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"connections": out, "total": total, "truncated": total > len(out)})
	return nil
}

func (s *Server) killConnection(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "connection id %q is not a number", r.PathValue("id"))
	}
	var target string
	for _, c := range s.site.Gateway().Connections() {
		if c.ID == id {
			target = c.Rule + " " + c.Client.String()
		}
	}
	if !s.site.Gateway().Kill(id) {
		return errorf(http.StatusNotFound, "no live connection %d (it may have ended)", id)
	}
	s.record(r, "connection.kill", r.PathValue("id"), true, target)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listBans(w http.ResponseWriter, r *http.Request) error {
	if s.bans == nil {
		writeJSON(w, http.StatusOK, map[string]any{"supported": false, "bans": []any{}})
		return nil
	}
	bans := s.bans.Bans()
	if bans == nil {
		bans = []guard.Ban{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"supported": true, "bans": bans})
	return nil
}

// unban lifts bans: ?src=ADDR or PREFIX (omitted: every source) and
// ?rule=NAME (omitted: every rule).
func (s *Server) unban(w http.ResponseWriter, r *http.Request) error {
	p := s.bans
	if p == nil {
		return errorf(http.StatusNotFound, "this gateway keeps no ban list")
	}
	q := r.URL.Query()
	var src netip.Addr
	if v := q.Get("src"); v != "" {
		// A ban names its source as a prefix (an IPv4 /32, an IPv6 /64);
		// accept that form as well as a plain address.
		a, err := netip.ParseAddr(v)
		if err != nil {
			p, perr := netip.ParsePrefix(v)
			if perr != nil {
				return apiError{Status: http.StatusBadRequest, Message: "src is not an IP address", Problems: problem("src", "%q is not an IP address", v)}
			}
			a = p.Addr()
		}
		src = a.Unmap()
	}
	rule := q.Get("rule")
	n := p.Unban(src, rule)
	target := src.String()
	if !src.IsValid() {
		target = "all sources"
	}
	if rule != "" {
		target += " on " + rule
	}
	s.record(r, "ban.lift", target, true, strconv.Itoa(n)+" lifted")
	writeJSON(w, http.StatusOK, map[string]any{"removed": n})
	return nil
}

// getRouter shows the upstream router client's status (Config.Router).
func (s *Server) getRouter(w http.ResponseWriter, r *http.Request) error {
	if s.router == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "status": s.router.Status()})
	return nil
}
