package main

import (
	"context"
	"log/slog"

	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/guard"
	"github.com/camgate/camgate/internal/rtsp"
	"github.com/camgate/camgate/internal/site"
)

// rtspRelay adapts package rtsp's Relay to the guard's RTSPRelay
// interface (Go has no covariant results, so the concrete *rtsp.Conn and
// *rtsp.Pending are wrapped here rather than the two packages importing
// each other).
type rtspRelay struct{ *rtsp.Relay }

func newRTSPRelay(log *slog.Logger) *rtspRelay {
	return &rtspRelay{rtsp.New(rtsp.Config{Logger: log})}
}

func (r *rtspRelay) Open(rule string, a guard.RTSPAddrs) guard.RTSPConn {
	return rtspConn{r.Relay.Open(rule, rtsp.Addrs{Client: a.Client, Local: a.Local,
		Device: a.Device, DeviceLocal: a.DeviceLocal, Target: a.Target, ListenUDP: a.ListenUDP})}
}

type rtspConn struct{ *rtsp.Conn }

func (c rtspConn) Request(method, target string, head []byte) ([]byte, []byte, guard.RTSPPending) {
	out, answer, p := c.Conn.Request(method, target, head)
	if p == nil {
		return out, answer, nil
	}
	return out, answer, p
}

// startRTSP applies the rtsp section (the external RTP range) after every
// config change, and keeps the relay for the admin API's status and
// metrics. It runs after startGuard, which built the relay.
func (svc *services) startRTSP(ctx context.Context, _ *slog.Logger, s *site.Site) (func(context.Context), error) {
	if svc.guard == nil {
		return nil, nil
	}
	rel, ok := svc.guard.RTSP().(*rtspRelay)
	if !ok {
		return nil, nil
	}
	svc.rtsp = rel
	s.Subscribe(ctx, func(_ context.Context, cfg *config.Config) {
		pr := cfg.RTSP.Ports()
		rel.SetPorts(pr.First, pr.Last)
	})
	return nil, nil
}
