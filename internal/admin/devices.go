package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/discover"
	"github.com/camgate/camgate/internal/enroll"
	"github.com/camgate/camgate/internal/hikvision"
)

// The Cameras page's "Add device" (issue 16, item 1): discover devices on
// the LAN, then add one with its password, entered once, and the channels
// to watch. It goes through package enroll, as `camgate device add`
// does: the device is asked how many failed logins it still takes before
// camgate logs in, a login is tried once (a wrong password costs the
// device exactly one failure), guarded rules are planned, the password
// goes to the state directory (credstore) and the devices entry and rules
// to camgate.yaml through package site.

// deviceRoutes registers discovery and adding a device.
func (s *Server) deviceRoutes(h func(string, handler)) {
	s.enrolling = make(chan struct{}, 1)
	h("POST /api/v1/devices/discover", s.auth(s.discoverDevices))
	h("POST /api/v1/devices", s.auth(s.addDevice))
}

// discoverWait is how long discovery collects answers: SADP devices
// answer within a few hundred milliseconds on a LAN.
const discoverWait = 2 * time.Second

// enrollDeadline bounds reading a device: the lockout probe, one login,
// the port list.
const enrollDeadline = 20 * time.Second

// oneAtATime takes the enrolling slot, so that two clicks cannot cost a
// device two failed logins at once.
func (s *Server) oneAtATime(w http.ResponseWriter) (func(), error) {
	select {
	case s.enrolling <- struct{}{}:
		return func() { <-s.enrolling }, nil
	default:
		w.Header().Set("Retry-After", "3")
		return nil, errorf(http.StatusTooManyRequests, "a device is being discovered or added already; try again in a few seconds")
	}
}

func (s *Server) discoverDevices(w http.ResponseWriter, r *http.Request) error {
	done, err := s.oneAtATime(w)
	if err != nil {
		return err
	}
	defer done()
	devs, err := discover.Discover(r.Context(), s.discoverOptions(discoverWait))
	if err != nil {
		return errorf(http.StatusBadGateway, "discovery: %v", err)
	}
	if devs == nil {
		devs = []discover.Device{}
	}
	cfg := s.site.Config()
	type found struct {
		discover.Device
		// Known names the devices entry already at this address.
		Known string `json:"known,omitempty"`
	}
	out := []found{}
	for _, d := range devs {
		f := found{Device: d}
		if k := cfg.DeviceOf(&config.Rule{InternalIP: d.IP.String()}); k != nil {
			f.Known = k.Name
		}
		out = append(out, f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

// discoverOptions probes the LAN, or Config.DiscoverAt when set.
func (s *Server) discoverOptions(wait time.Duration) discover.Options {
	opts := discover.Options{Timeout: wait, Logger: s.log}
	if s.discoverAt.IsValid() {
		opts.SADPAddr, opts.SkipWSD = s.discoverAt, true
	}
	return opts
}

// addDeviceRequest is the Add device form.
type addDeviceRequest struct {
	Address  string `json:"address"`
	User     string `json:"user"`
	Password string `json:"password"`
	// Name is the device's and its rules' name; empty picks dvr1, dvr2...
	Name string `json:"name"`
	// Channels are the stream channels to watch (101, 102, 201, ...);
	// empty means 101 and 102.
	Channels []int `json:"channels"`
	// Port is the device's ISAPI port; 0 means 80 (443 with HTTPS).
	Port        int  `json:"port"`
	HTTPS       bool `json:"https"`
	WithSDKPort bool `json:"with_sdk_port"`
}

func (s *Server) addDevice(w http.ResponseWriter, r *http.Request) error {
	var req addDeviceRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(req.Address))
	var probs []config.Problem
	if err != nil || addr.Zone() != "" {
		probs = append(probs, config.Problem{Field: "address", Message: fmt.Sprintf("%q is not an IP address such as 192.168.1.64", req.Address)})
	}
	if req.Password == "" {
		probs = append(probs, config.Problem{Field: "password", Message: "enter the device's password: camgate reads the model, firmware and ports with it, and live view needs it"})
	}
	if req.Port < 0 || req.Port > 65535 {
		probs = append(probs, config.Problem{Field: "port", Message: fmt.Sprintf("%d is not a port", req.Port)})
	}
	for _, ch := range req.Channels {
		if ch < 101 || ch%100 < 1 || ch%100 > 3 {
			probs = append(probs, config.Problem{Field: "channels", Message: fmt.Sprintf("%d is not a stream channel such as 101 (camera 1, main) or 102 (sub)", ch)})
		}
	}
	if len(probs) > 0 {
		return apiError{Status: http.StatusUnprocessableEntity, Message: "invalid device", Problems: probs}
	}
	done, err := s.oneAtATime(w)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(r.Context(), enrollDeadline)
	defer cancel()
	var steps bytes.Buffer
	// As device add does: SADP tells the device's HTTP port (and
	// whether it is activated) without logging in.
	var seen *discover.Device
	if req.Port == 0 && !req.HTTPS {
		seen, _ = discover.Lookup(ctx, addr, s.discoverOptions(1500*time.Millisecond))
		if seen != nil && seen.NotActivated() {
			s.record(r, "device.add", addr.String(), false, "not activated")
			return errorf(http.StatusConflict, "device %s (%s) is not activated: it has no password yet; activate it with SADP or its own screen first, and never forward its ports before", addr, seen.Model)
		}
	}
	info, ports, assumed, err := enroll.Read(ctx, &steps, enroll.Target{Address: addr.String(), User: req.User,
		Password: req.Password, HTTPS: req.HTTPS, Port: req.Port, Seen: seen})
	switch {
	case errors.Is(err, hikvision.ErrUnauthorized):
		s.record(r, "device.add", addr.String(), false, "wrong user name or password")
		// 422, not 401: a 401 would end the owner's own session.
		return apiError{Status: http.StatusUnprocessableEntity, Message: "the device refused the user name or password",
			Problems: problem("password", "the device refused it; that cost one of the device's allowed failed logins, so check it before trying again")}
	case err != nil:
		s.record(r, "device.add", addr.String(), false, err.Error())
		return errorf(http.StatusBadGateway, "%v", err)
	}
	var added []string
	var notes []string
	var name string
	_, err = s.site.Update(ctx, func(cfg *config.Config) error {
		plan, err := enroll.Plan(cfg, addr.String(), req.User, info, ports, hikvision.PlanOptions{
			Name: req.Name, WithSDKPort: req.WithSDKPort, Assumed: assumed})
		if err != nil {
			return apiError{Status: http.StatusConflict, Message: err.Error()}
		}
		if d := cfg.Device(plan.Name); d != nil && len(req.Channels) > 0 {
			d.Channels = slices.Clone(req.Channels)
		}
		// Before the config names the device: a guard that sees the
		// entry finds the password already there.
		if err := credstore.New(s.dir).Put(plan.Name, req.Password); err != nil {
			return fmt.Errorf("store the device password: %w", err)
		}
		cfg.Rules = append(cfg.Rules, plan.Rules...)
		name, notes = plan.Name, append(plan.Warnings, plan.Notes...)
		added = added[:0]
		for _, r := range plan.Rules {
			added = append(added, r.Name)
		}
		return nil
	})
	if err != nil {
		s.record(r, "device.add", addr.String(), false, err.Error())
		return updateError(err)
	}
	s.record(r, "device.add", name, true, fmt.Sprintf("%s at %s; rules %s", info.Model, addr, strings.Join(added, ", ")))
	if notes == nil {
		notes = []string{}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"device": name, "model": info.Model, "rules": added,
		"notes": notes, "steps": strings.Split(strings.TrimSpace(steps.String()), "\n")})
	return nil
}
