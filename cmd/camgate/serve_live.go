package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"

	"github.com/camgate/camgate/internal/credstore"
	"github.com/camgate/camgate/internal/live"
	"github.com/camgate/camgate/internal/site"
)

// newLiveHub returns the live view for serve's admin UI: it pulls a
// channel of a device in the devices section over RTSP, with the password
// from the state directory, read at each pull so that `device add` takes
// effect without a restart.
func newLiveHub(s *site.Site, log *slog.Logger) *live.Hub {
	return live.New(live.Config{Logger: log.With("component", "live"), Locate: func(device string, channel int) (*url.URL, error) {
		d := s.Config().Device(device)
		if d == nil {
			return nil, fmt.Errorf("no device %q", device)
		}
		pw, err := credstore.New(s.StateDir()).Get(d.Name)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", d.Name, err)
		}
		_, rtsp, _ := d.Ports()
		return &url.URL{Scheme: "rtsp", User: url.UserPassword(d.Username(), pw),
			Host: net.JoinHostPort(d.Address, strconv.Itoa(int(rtsp))),
			Path: fmt.Sprintf("/Streaming/Channels/%d", channel)}, nil
	}})
}
