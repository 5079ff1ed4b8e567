package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/camgate/camgate/internal/audit"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/credstore"
)

// LiveView streams a device's channel to a browser (package live's Hub).
// ServeFMP4 returns when the viewer leaves or r's context ends; an error
// means nothing was written.
type LiveView interface {
	ServeFMP4(w http.ResponseWriter, r *http.Request, device string, channel int) error
}

// liveRoutes registers the Cameras page's API and the share links (the
// owner's API and the public /s/ pages). Without Config.Live only the
// camera list answers, with live view marked off.
func (s *Server) liveRoutes(mux *http.ServeMux, h func(string, handler)) {
	h("GET /api/v1/cameras", s.auth(s.listCameras))
	h("GET /api/v1/live/{device}/{channel}", s.auth(s.serveLive))
	s.shareRoutes(mux, h)
}

// cameraChannel is one stream channel of a device.
type cameraChannel struct {
	ID     int    `json:"id"`
	Camera int    `json:"camera"`
	Stream string `json:"stream"` // "main", "sub" or "third"
	// Live is the URL of the channel's fMP4 stream, when live view can
	// play it.
	Live string `json:"live,omitempty"`
}

// camera is one device on the Cameras page.
type camera struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Model    string `json:"model,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	// Source is "devices" for an entry of camgate.yaml's devices section,
	// "rules" for an address only rules forward to.
	Source string `json:"source"`
	// Password says whether camgate holds the device's password.
	Password bool            `json:"password"`
	Rules    []string        `json:"rules"`
	Channels []cameraChannel `json:"channels"`
	// Note says what the owner can do when live view cannot play.
	Note string `json:"note,omitempty"`
	// Findings are `camgate audit`'s findings that need no network: the
	// device's rules, and its firmware as camgate.yaml records it.
	Findings []cameraFinding `json:"findings"`
}

// cameraFinding is an audit finding as the Cameras page shows it.
type cameraFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Title    string `json:"title"`
	Fix      string `json:"fix"`
}

// channelOf splits a Hikvision channel id: 101 is camera 1's main stream.
func channelOf(id int) cameraChannel {
	c := cameraChannel{ID: id, Camera: id / 100, Stream: "main"}
	switch id % 100 {
	case 2:
		c.Stream = "sub"
	case 3:
		c.Stream = "third"
	}
	return c
}

// cameras lists the devices camgate knows: its devices section first,
// then each other LAN address that rules forward to.
func (s *Server) cameras(cfg *config.Config) []camera {
	creds := credstore.New(s.dir)
	out := []camera{}
	for _, d := range cfg.Devices {
		c := camera{Name: d.Name, Address: d.Address, Model: d.Model, Firmware: d.Firmware, Source: "devices",
			Password: creds.Has(d.Name), Rules: []string{}, Channels: []cameraChannel{}}
		for _, id := range d.StreamChannels() {
			ch := channelOf(id)
			if c.Password && s.live != nil {
				ch.Live = fmt.Sprintf("/api/v1/live/%s/%d", d.Name, id)
			}
			c.Channels = append(c.Channels, ch)
		}
		switch {
		case s.live == nil:
			c.Note = "live view is off in this gateway"
		case !c.Password:
			c.Note = "camgate has no password for this device: run camgate device add --name " + d.Name
		}
		out = append(out, c)
	}
	byAddr := map[string]int{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if d := cfg.DeviceOf(r); d != nil {
			j := slices.IndexFunc(out, func(c camera) bool { return c.Name == d.Name })
			out[j].Rules = append(out[j].Rules, r.Name)
			continue
		}
		j, ok := byAddr[strings.ToLower(r.InternalIP)]
		if !ok {
			j = len(out)
			byAddr[strings.ToLower(r.InternalIP)] = j
			out = append(out, camera{Name: r.InternalIP, Address: r.InternalIP, Source: "rules", Rules: []string{},
				Channels: []cameraChannel{},
				Note:     "known only from port rules: add it with camgate device add to watch it here"})
		}
		out[j].Rules = append(out[j].Rules, r.Name)
	}
	s.addFindings(cfg, out)
	return out
}

// addFindings attaches the offline audit findings to each camera: those
// of its rules and, for a devices entry, those of its recorded firmware.
func (s *Server) addFindings(cfg *config.Config, cams []camera) {
	rf := audit.RuleFindings(cfg)
	for i := range cams {
		c := &cams[i]
		c.Findings = []cameraFinding{}
		var fs []audit.Finding
		for _, f := range rf {
			if slices.ContainsFunc(f.Rules, func(r string) bool { return slices.Contains(c.Rules, r) }) {
				fs = append(fs, f)
			}
		}
		if d := cfg.Device(c.Name); d != nil && c.Source == "devices" && d.Firmware != "" {
			v, build := audit.ParseFirmware(d.Firmware)
			fs = append(fs, audit.FirmwareFindings(audit.Firmware{Model: d.Model, Version: v, Build: build, Source: "camgate.yaml"}, d.Address, s.now())...)
		}
		audit.Sort(fs)
		for _, f := range fs {
			c.Findings = append(c.Findings, cameraFinding{ID: f.ID, Severity: string(f.Severity), Title: f.Title, Fix: f.Fix})
		}
	}
}

func (s *Server) listCameras(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"cameras": s.cameras(s.site.Config()), "live": s.live != nil})
	return nil
}

// liveChannel checks that device and channel name a channel live view can
// play, and returns the channel.
func (s *Server) liveChannel(device, channel string) (int, error) {
	if s.live == nil {
		return 0, errorf(http.StatusNotFound, "live view is off in this gateway")
	}
	d := s.site.Config().Device(device)
	if d == nil {
		return 0, errorf(http.StatusNotFound, "no device %q", device)
	}
	ch, err := strconv.Atoi(channel)
	if err != nil || !slices.Contains(d.StreamChannels(), ch) {
		return 0, errorf(http.StatusNotFound, "device %q has no channel %q", device, channel)
	}
	if !credstore.New(s.dir).Has(d.Name) {
		return 0, errorf(http.StatusConflict, "camgate has no password for device %q: run camgate device add --name %s", d.Name, d.Name)
	}
	return ch, nil
}

// serveLive streams a channel to the owner's Cameras page.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) error {
	device := r.PathValue("device")
	ch, err := s.liveChannel(device, r.PathValue("channel"))
	if err != nil {
		return err
	}
	if err := s.live.ServeFMP4(w, r, device, ch); err != nil {
		return errorf(http.StatusBadGateway, "live view of %s/%d: %v", device, ch, err)
	}
	return nil
}
