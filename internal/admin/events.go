package admin

import (
	"net/http"
	"time"

	"github.com/camgate/camgate/internal/audit"
	"github.com/camgate/camgate/internal/notify"
)

// EventFeed is what the banner reads from the notifier (*notify.Notifier):
// the recent security events, newest first, and what the webhook did.
type EventFeed interface {
	Recent() []notify.Event
	Status() notify.Status
}

// eventRoutes registers the security events (the dashboard banner) and
// the audit findings page.
func (s *Server) eventRoutes(h func(string, handler)) {
	h("GET /api/v1/events", s.auth(s.listEvents))
	h("GET /api/v1/findings", s.auth(s.listFindings))
}

// listEvents returns the recent security events; ?since=RFC3339 keeps
// the newer ones.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	out := []notify.Event{}
	var st *notify.Status
	if s.events != nil {
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return apiError{Status: http.StatusBadRequest, Message: "since is not a time", Problems: problem("since", "%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", v)}
			}
			since = t
		}
		for _, e := range s.events.Recent() {
			if e.Time.After(since) {
				out = append(out, e)
			}
		}
		v := s.events.Status()
		st = &v
	}
	writeJSON(w, http.StatusOK, map[string]any{"supported": s.events != nil, "events": out, "notify": st})
	return nil
}

// findingView is one of `camgate audit`'s offline findings with the
// devices it concerns.
type findingView struct {
	cameraFinding
	Devices []string `json:"devices"`
	Rules   []string `json:"rules"`
}

// listFindings lists `camgate audit`'s findings that need no network:
// those of the rules, and of each device's firmware as camgate.yaml
// records it (the Cameras page shows the same per device).
func (s *Server) listFindings(w http.ResponseWriter, r *http.Request) error {
	cfg := s.site.Config()
	cams := s.cameras(cfg)
	byID := map[string]*findingView{}
	var order []string
	for _, c := range cams {
		for _, f := range c.Findings {
			key := f.ID + "\x00" + f.Title
			v, ok := byID[key]
			if !ok {
				v = &findingView{cameraFinding: f, Devices: []string{}, Rules: []string{}}
				byID[key] = v
				order = append(order, key)
			}
			v.Devices = append(v.Devices, c.Name)
		}
	}
	for _, f := range audit.RuleFindings(cfg) {
		if v, ok := byID[f.ID+"\x00"+f.Title]; ok {
			v.Rules = f.Rules
		}
	}
	out := []findingView{}
	for _, k := range order {
		out = append(out, *byID[k])
	}
	writeJSON(w, http.StatusOK, map[string]any{"findings": out,
		"note": "findings from the rules and the recorded firmware; run camgate audit for the devices themselves"})
	return nil
}
