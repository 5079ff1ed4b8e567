package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/forward"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/rtsp"
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
}

type statusView struct {
	Version        string       `json:"version"`
	Time           time.Time    `json:"time"`
	Started        time.Time    `json:"started"`
	Uptime         string       `json:"uptime"`
	UptimeSeconds  int64        `json:"uptime_seconds"`
	Config         string       `json:"config"`
	LastApplied    time.Time    `json:"last_applied"`
	ApplyDuration  string       `json:"apply_duration"`
	LastError      string       `json:"last_error,omitempty"`
	Connections    int64        `json:"connections"`
	MaxConnections int          `json:"max_connections"`
	Rules          []ruleStatus `json:"rules"`
	// Router and Bans say whether those pages have something to show;
	// Guard whether the gateway runs the guard (rules then carry guard
	// counters).
	Router bool `json:"router"`
	Bans   bool `json:"bans"`
	Guard  bool `json:"guard"`
	// RTP is the external RTP port range's use, with the RTSP relay.
	RTP *rtpPool `json:"rtp,omitempty"`
}

func (s *Server) status() statusView {
	gs := s.site.Gateway().Status()
	now := s.now()
	v := statusView{
		Version: s.version, Time: now, Started: gs.Started, Uptime: gs.Uptime,
		UptimeSeconds: int64(now.Sub(gs.Started).Seconds()), Config: s.site.Path(),
		LastApplied: gs.LastApplied, ApplyDuration: gs.ApplyDuration, LastError: gs.LastError,
		Connections: gs.Connections, MaxConnections: gs.MaxConns, Rules: []ruleStatus{},
		Router: s.site.Lookup("router") != nil, Bans: s.banPolicy() != nil,
	}
	g := s.guard()
	var counters map[string]guard.Counters
	if g != nil {
		v.Guard = true
		counters = g.AllCounters()
	}
	for _, r := range gs.Rules {
		rs := ruleStatus{
			Name: r.Name, Description: r.Description, Protocol: r.Proto(), ExternalPort: r.ExternalPort,
			InternalIP: r.InternalIP, InternalPort: r.Internal(), Enabled: r.IsEnabled(),
			Listening: r.Listening, Stats: r.Stats, Effective: effectiveOf(&r.Rule, g != nil),
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

// unbanner is what the admin API needs from the guard policy to lift a
// ban: remove src's bans on rule ("" for every rule; the zero Addr for
// every source) and return how many were lifted.
type unbanner interface {
	Unban(src netip.Addr, rule string) int
}

// banPolicy returns the gateway's policy if it keeps a ban list: it has
// Unban as above and a method Bans() returning a JSON-marshalable list.
func (s *Server) banPolicy() unbanner {
	p := s.site.Gateway().Policy()
	u, ok := p.(unbanner)
	if !ok || !hasMethod(p, "Bans") {
		return nil
	}
	return u
}

func (s *Server) listBans(w http.ResponseWriter, r *http.Request) error {
	p := s.banPolicy()
	if p == nil {
		writeJSON(w, http.StatusOK, map[string]any{"supported": false, "bans": []any{}})
		return nil
	}
	bans, err := callStatus(p, "Bans")
	if err != nil {
		return err
	}
	if isNil(bans) {
		bans = []any{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"supported": true, "bans": bans})
	return nil
}

// unban lifts bans: ?src=ADDR or PREFIX (omitted: every source) and
// ?rule=NAME (omitted: every rule).
func (s *Server) unban(w http.ResponseWriter, r *http.Request) error {
	p := s.banPolicy()
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

// getRouter shows the upstream router client's status. serve registers
// the client under "router" with site.Register; see callStatus for the
// shapes accepted.
func (s *Server) getRouter(w http.ResponseWriter, r *http.Request) error {
	v := s.site.Lookup("router")
	if v == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
		return nil
	}
	st, err := callStatus(v, "Status")
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "status": st})
	return nil
}

// statusJSONer lets a service hand over its status already encoded.
type statusJSONer interface {
	StatusJSON() ([]byte, error)
}

// callStatus gets a JSON-marshalable value from a service registered by
// another feature whose types this package does not import (so that the
// admin API builds whatever state they are in). It accepts, in order:
//
//   - interface{ StatusJSON() ([]byte, error) } (for method "Status");
//   - a func() any or func(context.Context) any;
//   - a value with the named method taking no arguments, or a
//     context.Context, and returning T or (T, error).
//
// The last case uses reflection: the method's result type belongs to the
// other package and cannot be named here.
func callStatus(v any, method string) (any, error) {
	switch f := v.(type) {
	case statusJSONer:
		if method == "Status" {
			b, err := f.StatusJSON()
			if err != nil {
				return nil, err
			}
			return json.RawMessage(b), nil
		}
	case func() any:
		return f(), nil
	case func(context.Context) any:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f(ctx), nil
	}
	m := reflect.ValueOf(v).MethodByName(method)
	if !m.IsValid() {
		return nil, errors.New(method + " is not available")
	}
	t := m.Type()
	var args []reflect.Value
	switch {
	case t.NumIn() == 0:
	case t.NumIn() == 1 && t.In(0) == reflect.TypeFor[context.Context]():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		args = []reflect.Value{reflect.ValueOf(ctx)}
	default:
		return nil, errors.New(method + " takes arguments this API cannot supply")
	}
	errType := reflect.TypeFor[error]()
	switch {
	case t.NumOut() == 1:
	case t.NumOut() == 2 && t.Out(1) == errType:
	default:
		return nil, errors.New(method + " returns a shape this API cannot show")
	}
	out := m.Call(args)
	if len(out) == 2 && !out[1].IsNil() {
		return nil, out[1].Interface().(error)
	}
	return out[0].Interface(), nil
}

func hasMethod(v any, name string) bool {
	return v != nil && reflect.ValueOf(v).MethodByName(name).IsValid()
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
