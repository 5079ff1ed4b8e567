package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/share"
)

// Share links (package share keeps them): the owner's API under
// /api/v1/shares, and the public pages under /s/<secret>, which need no
// login and reach nothing but the link's one channel:
//
//	GET /s/<secret>         the player page (ui/share.html)
//	GET /s/<secret>/info    the link's camera and expiry, or why it is gone
//	GET /s/<secret>/stream  the channel, as fMP4 (package live)
//
// Every view is recorded in the activity log. Unknown secrets count as
// failures of the source, which is then locked out as a failed login is
// (lockout.go), so guessing is slow as well as hopeless. Revoking a link,
// or its expiry, cancels the context of every stream it is serving.

// logPath is a request path fit for the log: a share link's secret is a
// credential, so /s/<secret>/... is logged as /s/*/....
func logPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/s/")
	if !ok {
		return p
	}
	if _, tail, found := strings.Cut(rest, "/"); found {
		return "/s/*/" + tail
	}
	return "/s/*"
}

// shareViewers tracks the streams each link is serving, so that a revoke
// ends them at once and MaxViewers can be enforced.
type shareViewers struct {
	mu sync.Mutex // guards following
	m  map[string]map[*context.CancelFunc]struct{}
}

// add registers a viewer of link l, unless it already has max viewers.
func (sv *shareViewers) add(id string, max int, cancel *context.CancelFunc) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.m == nil {
		sv.m = map[string]map[*context.CancelFunc]struct{}{}
	}
	set := sv.m[id]
	if max > 0 && len(set) >= max {
		return false
	}
	if set == nil {
		set = map[*context.CancelFunc]struct{}{}
		sv.m[id] = set
	}
	set[cancel] = struct{}{}
	return true
}

func (sv *shareViewers) remove(id string, cancel *context.CancelFunc) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	delete(sv.m[id], cancel)
	if len(sv.m[id]) == 0 {
		delete(sv.m, id)
	}
}

// end cancels every stream of link id and returns how many there were.
func (sv *shareViewers) end(id string) int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	n := len(sv.m[id])
	for c := range sv.m[id] {
		(*c)()
	}
	delete(sv.m, id)
	return n
}

func (sv *shareViewers) count(id string) int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return len(sv.m[id])
}

func (s *Server) shareRoutes(mux *http.ServeMux, h func(string, handler)) {
	h("GET /api/v1/shares", s.auth(s.listShares))
	h("POST /api/v1/shares", s.auth(s.createShare))
	h("DELETE /api/v1/shares/{id}", s.auth(s.revokeShare))
	mux.HandleFunc("GET /s/{secret}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, uiFiles, "ui/share.html")
	})
	h("GET /s/{secret}/info", s.shareInfo)
	h("GET /s/{secret}/stream", s.shareStream)
	h("/s/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "a share link shows one camera and nothing else")
	})
}

// shareView is a link as the owner's API shows it.
type shareView struct {
	share.Link
	Hash    string      `json:"hash,omitempty"` // never shown
	State   share.State `json:"state"`
	Viewers int         `json:"viewers"`
}

func (s *Server) shareViewOf(l share.Link) shareView {
	return shareView{Link: l, State: l.StateAt(s.now()), Viewers: s.shareViewers.count(l.ID)}
}

func (s *Server) sharesOn() error {
	if s.shares == nil {
		return errorf(http.StatusNotFound, "share links need live view, which is off in this gateway")
	}
	return nil
}

func (s *Server) listShares(w http.ResponseWriter, r *http.Request) error {
	if err := s.sharesOn(); err != nil {
		return err
	}
	out := []shareView{}
	for _, l := range s.shares.List() {
		out = append(out, s.shareViewOf(l))
	}
	writeJSON(w, http.StatusOK, map[string]any{"shares": out})
	return nil
}

// createShare makes a link and shows its secret and URL path this once.
func (s *Server) createShare(w http.ResponseWriter, r *http.Request) error {
	if err := s.sharesOn(); err != nil {
		return err
	}
	var req struct {
		Device     string `json:"device"`
		Channel    int    `json:"channel"`
		Expires    string `json:"expires"` // a Go duration such as "24h"; empty means 24h
		MaxViewers int    `json:"max_viewers"`
		Label      string `json:"label"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if _, err := s.liveChannel(req.Device, strconv.Itoa(req.Channel)); err != nil {
		var ae apiError
		if errors.As(err, &ae) {
			return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid share link", Problems: problem("channel", "%s", ae.Message)}
		}
		return err
	}
	var ttl time.Duration
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil {
			return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid share link",
				Problems: problem("expires", "%q is not a duration such as \"24h\" or \"30m\"", req.Expires)}
		}
		ttl = d
	}
	if len(req.Label) > 100 {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid share link", Problems: problem("label", "at most 100 characters")}
	}
	l, secret, err := s.shares.Create(share.Spec{Device: req.Device, Channel: req.Channel, TTL: ttl,
		MaxViewers: req.MaxViewers, Label: req.Label}, who(r).User, s.now())
	if err != nil {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid share link", Problems: problem("expires", "%v", err)}
	}
	s.record(r, "share.create", l.ID, true, fmt.Sprintf("%s/%d until %s", l.Device, l.Channel, l.Expires.Format(time.RFC3339)))
	writeJSON(w, http.StatusCreated, map[string]any{"share": s.shareViewOf(l), "secret": secret, "path": "/s/" + secret})
	return nil
}

func (s *Server) revokeShare(w http.ResponseWriter, r *http.Request) error {
	if err := s.sharesOn(); err != nil {
		return err
	}
	l, err := s.shares.Revoke(r.PathValue("id"), s.now())
	if errors.Is(err, share.ErrNotFound) {
		return errorf(http.StatusNotFound, "no share link %q", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	n := s.shareViewers.end(l.ID)
	s.record(r, "share.revoke", l.ID, true, fmt.Sprintf("%s/%d; %d viewer(s) stopped", l.Device, l.Channel, n))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// shareLink finds the active link of the request's secret. A wrong secret
// counts against the source; a revoked or expired one answers 410 with
// the reason, which the page shows.
func (s *Server) shareLink(r *http.Request) (share.Link, error) {
	if s.shares == nil {
		return share.Link{}, errorf(http.StatusNotFound, "share links are off in this gateway")
	}
	src, now := clientIP(r), s.now()
	if wait := s.shareFails.check(src, now); wait > 0 {
		return share.Link{}, errorf(http.StatusTooManyRequests, "too many unknown share links from your address; try again in %s", wait.Round(time.Second))
	}
	l, ok := s.shares.Lookup(r.PathValue("secret"))
	if !ok {
		s.shareFails.fail(src, now)
		return share.Link{}, errorf(http.StatusNotFound, "this link is not known here; check that it was copied whole")
	}
	switch l.StateAt(now) {
	case share.Revoked:
		return l, errorf(http.StatusGone, "this link was revoked")
	case share.Expired:
		return l, errorf(http.StatusGone, "this link has expired")
	}
	return l, nil
}

// shareInfo tells the share page what it shows.
func (s *Server) shareInfo(w http.ResponseWriter, r *http.Request) error {
	l, err := s.shareLink(r)
	if err != nil {
		return err
	}
	ch := channelOf(l.Channel)
	writeJSON(w, http.StatusOK, map[string]any{"label": l.Label, "device": l.Device, "channel": l.Channel,
		"camera": ch.Camera, "stream": ch.Stream, "expires": l.Expires, "max_viewers": l.MaxViewers})
	return nil
}

// shareStream streams the link's one channel until the viewer leaves,
// the link is revoked or it expires.
func (s *Server) shareStream(w http.ResponseWriter, r *http.Request) error {
	l, err := s.shareLink(r)
	detail := fmt.Sprintf("%s/%d", l.Device, l.Channel)
	rr := withWho(r, "share:"+l.ID)
	if err != nil {
		if l.ID != "" {
			s.record(rr, "share.view", l.ID, false, detail+": "+err.Error())
		}
		return err
	}
	ch, err := s.liveChannel(l.Device, strconv.Itoa(l.Channel))
	if err != nil {
		return err
	}
	// The link's expiry, on the wall clock of the context (s.now may be a
	// test's clock).
	ctx, cancel := context.WithTimeout(r.Context(), l.Expires.Sub(s.now()))
	defer cancel()
	if !s.shareViewers.add(l.ID, l.MaxViewers, &cancel) {
		s.record(rr, "share.view", l.ID, false, detail+": viewer limit reached")
		return errorf(http.StatusTooManyRequests, "this link allows %d viewer(s) at a time, and that many are watching", l.MaxViewers)
	}
	defer s.shareViewers.remove(l.ID, &cancel)
	s.record(rr, "share.view", l.ID, true, detail)
	if err := s.live.ServeFMP4(w, r.WithContext(ctx), l.Device, ch); err != nil {
		// The details (addresses, the device's answers) are the owner's,
		// not the link holder's.
		s.log.Warn("share link: live view failed", "share", l.ID, "channel", detail, "err", err)
		return errorf(http.StatusBadGateway, "the camera does not answer; try again in a minute")
	}
	return nil
}

// sharingActive reports whether any share link is active now, which is
// when the admin listener lets sources outside the LAN reach share pages.
func (s *Server) sharingActive() bool {
	if s.shares == nil {
		return false
	}
	now := s.now()
	for _, l := range s.shares.List() {
		if l.StateAt(now) == share.Active {
			return true
		}
	}
	return false
}
