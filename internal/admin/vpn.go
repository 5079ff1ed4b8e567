package admin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/vpn"
)

// VPN is the built-in WireGuard server as the API uses it (package vpn,
// wired by cmd/camgate). Its methods fail with ErrVPNOff while the vpn
// section is off.
type VPN interface {
	Status() (vpn.Status, error)
	Add(req vpn.AddRequest) (vpn.Peer, string, error)
	Remove(name string) error
	// Prober returns the running server's probe identities (for
	// `camgate check`), or ErrVPNOff.
	Prober() (VPNProber, error)
}

// VPNProber hands out and ends the short-lived probe identities with
// which `camgate check` completes a real WireGuard handshake (package
// vpn's Server.Probe). A probe reaches nothing and is never a peer.
type VPNProber interface {
	Probe(ttl time.Duration) (vpn.ProbeIdentity, error)
	EndProbe(id string) error
}

// ErrVPNOff is what a VPN returns while vpn.enabled is false.
var ErrVPNOff = errors.New("the VPN is off; set vpn: {enabled: true} in camgate.yaml")

// qrTTL is how long a new peer's one-time QR link works: long enough to
// hand the phone over, short enough that a forgotten link is dead.
const qrTTL = 10 * time.Minute

// qrLinks holds the QR codes of new peers until fetched once or expired.
// They are the only copy of the peer's private key, so they live in
// memory only.
type qrLinks struct {
	mu    sync.Mutex // guards following
	links map[string]qrLink
}

type qrLink struct {
	png     []byte
	expires time.Time
}

// put stores png and returns its token.
func (q *qrLinks) put(png []byte, now time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, l := range q.links {
		if now.After(l.expires) {
			delete(q.links, k)
		}
	}
	q.links[tok] = qrLink{png: png, expires: now.Add(qrTTL)}
	return tok
}

// take returns and forgets the PNG of tok, if it has not expired.
func (q *qrLinks) take(tok string, now time.Time) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	l, ok := q.links[tok]
	delete(q.links, tok)
	if !ok || now.After(l.expires) {
		return nil
	}
	return l.png
}

// vpnRoutes registers the VPN endpoints. The QR download takes no login:
// its unguessable token is the credential, good once and for qrTTL, so
// the owner can pass the link to the person whose phone it is.
func (s *Server) vpnRoutes(h func(pattern string, fn handler)) {
	s.qrs = &qrLinks{links: map[string]qrLink{}}
	h("GET /api/v1/vpn", s.auth(s.getVPN))
	h("POST /api/v1/vpn/peers", s.auth(s.addPeer))
	h("DELETE /api/v1/vpn/peers/{name}", s.auth(s.removePeer))
	h("GET /api/v1/vpn/qr/{token}", s.getQR)
	h("POST /api/v1/vpn/probe", s.auth(s.addProbe))
	h("DELETE /api/v1/vpn/probe/{id}", s.auth(s.endProbe))
}

func (s *Server) vpnOrOff() (VPN, error) {
	if s.vpn == nil {
		return nil, errorf(http.StatusConflict, "%v", ErrVPNOff)
	}
	return s.vpn, nil
}

func vpnError(err error) error {
	var ve *vpn.ValidationError
	switch {
	case errors.Is(err, ErrVPNOff):
		return errorf(http.StatusConflict, "%v", err)
	case errors.As(err, &ve):
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid peer", Problems: problem(ve.Field, "%s", ve.Message)}
	case errors.Is(err, vpn.ErrPeerExists):
		return errorf(http.StatusConflict, "%v", err)
	case errors.Is(err, vpn.ErrNoPeer):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, vpn.ErrTooManyProbes):
		return errorf(http.StatusTooManyRequests, "%v", err)
	}
	return err
}

// getVPN returns the server's state and peers, and the devices a peer
// may be given (the UI's camera checkboxes).
func (s *Server) getVPN(w http.ResponseWriter, r *http.Request) error {
	devices := []string{}
	for _, d := range s.site.Config().Devices {
		devices = append(devices, d.Name)
	}
	v, err := s.vpnOrOff()
	if err == nil {
		var st vpn.Status
		if st, err = v.Status(); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "vpn": st, "devices": devices})
			return nil
		}
	}
	if errors.Is(err, ErrVPNOff) || s.vpn == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false, "devices": devices})
		return nil
	}
	return err
}

// addPeer creates a peer and returns its config once, with a one-time
// link to its QR code.
func (s *Server) addPeer(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name     string   `json:"name"`
		Allow    []string `json:"allow"`
		Expires  string   `json:"expires"`
		Endpoint string   `json:"endpoint"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	v, err := s.vpnOrOff()
	if err != nil {
		return err
	}
	exp, err := vpn.ParseExpiry(req.Expires, s.now())
	if err != nil {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid peer", Problems: problem("expires", "%v", err)}
	}
	p, conf, err := v.Add(vpn.AddRequest{Name: req.Name, Allow: req.Allow, Expires: exp, Endpoint: req.Endpoint})
	if err != nil {
		s.record(r, "vpn.add", req.Name, false, err.Error())
		return vpnError(err)
	}
	png, err := vpn.QR(conf)
	if err != nil {
		return err
	}
	tok := s.qrs.put(png, s.now())
	s.record(r, "vpn.add", p.Name, true, "allow "+strings.Join(p.Allow, ","))
	writeJSON(w, http.StatusCreated, map[string]any{
		"peer": p, "config": conf,
		"qr_png":     base64.StdEncoding.EncodeToString(png),
		"qr_url":     "/api/v1/vpn/qr/" + tok,
		"qr_expires": s.now().Add(qrTTL).UTC(),
	})
	return nil
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) error {
	v, err := s.vpnOrOff()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := v.Remove(name); err != nil {
		return vpnError(err)
	}
	s.record(r, "vpn.remove", name, true, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getQR(w http.ResponseWriter, r *http.Request) error {
	png := s.qrs.take(r.PathValue("token"), s.now())
	if png == nil {
		return errorf(http.StatusNotFound, "this QR code link was used already or has expired; add the peer again")
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Disposition", `attachment; filename="camgate-vpn.png"`)
	w.Write(png)
	return nil
}

// addProbe hands out a probe identity: the server's public key and port
// and a fresh private key the server accepts for ttl_seconds (at most
// 60). Its private key is in the answer only; the server keeps no copy.
func (s *Server) addProbe(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		TTLSeconds int `json:"ttl_seconds"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	v, err := s.vpnOrOff()
	if err != nil {
		return err
	}
	if req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > vpn.MaxProbeTTL {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid probe", Problems: problem("ttl_seconds", "give 1 to %d, or 0 for %d", int(vpn.MaxProbeTTL.Seconds()), int(vpn.MaxProbeTTL.Seconds()))}
	}
	p, err := v.Prober()
	if err != nil {
		return vpnError(err)
	}
	pi, err := p.Probe(time.Duration(req.TTLSeconds) * time.Second)
	if err != nil {
		s.record(r, "vpn.probe", "", false, err.Error())
		return vpnError(err)
	}
	s.record(r, "vpn.probe", pi.ID, true, "until "+pi.Expires.Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, pi)
	return nil
}

// endProbe removes a probe identity before its time runs out.
func (s *Server) endProbe(w http.ResponseWriter, r *http.Request) error {
	v, err := s.vpnOrOff()
	if err != nil {
		return err
	}
	p, err := v.Prober()
	if err != nil {
		return vpnError(err)
	}
	if err := p.EndProbe(r.PathValue("id")); err != nil {
		return vpnError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
