package live

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// pull reads one channel from the device until ctx is done or the device
// fails, and publishes its frames. It runs as the stream's one goroutine,
// owned by the Hub (Close waits for it).
func (h *Hub) pull(ctx context.Context, s *stream, u *url.URL) {
	defer h.wg.Done()
	log := h.log.With("stream", s.key.String(), "device_url", redact(u))
	log.Info("live pull starts")
	start := time.Now()
	err := h.pullRTSP(ctx, s, u)
	if ctx.Err() != nil {
		log.Info("live pull stops: no viewers left", "after", time.Since(start).Round(time.Millisecond))
		return
	}
	log.Warn("live pull failed", "err", err)
	h.fail(s, fmt.Errorf("device stream %s: %w", s.key, err))
}

// pullRTSP plays u over RTSP with TCP interleaving: reliable and one
// connection, which is what a gateway crossing NAT and firewalls wants,
// and what keeps an I frame of hundreds of kilobytes from losing packets.
func (h *Hub) pullRTSP(ctx context.Context, s *stream, u *url.URL) error {
	bu, err := base.ParseURL(u.String())
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	tcp := gortsplib.ProtocolTCP
	c := &gortsplib.Client{
		Scheme:       bu.Scheme,
		Host:         bu.Host,
		Protocol:     &tcp,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		UserAgent:    "camgate",
	}
	if err := c.Start(); err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, _, err := c.Describe(bu)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		return errors.New("the stream has no H.264 video (H.265 is not supported by live view yet)")
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		return err
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fr := &framer{sps: forma.SPS, pps: forma.PPS}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		pts, ok := c.PacketPTS(medi, pkt)
		if !ok {
			return
		}
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				h.log.Debug("live: rtp decode", "stream", s.key.String(), "err", err)
			}
			return
		}
		if f := fr.frame(au, pts); f != nil {
			h.publish(s, f)
		}
	})
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	return c.Wait()
}

// framer turns access units into frames: it tracks the parameter sets,
// waits for the first key frame, and derives decoding times.
type framer struct {
	sps, pps []byte
	p        *params
	dtsx     *h264.DTSExtractor
	base     int64
	started  bool
}

func (fr *framer) frame(au [][]byte, pts int64) *frame {
	var nalus [][]byte
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			fr.sps = n
			continue
		case h264.NALUTypePPS:
			fr.pps = n
			continue
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		}
		nalus = append(nalus, n)
	}
	if len(nalus) == 0 {
		return nil
	}
	key := false
	for _, n := range nalus {
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeIDR {
			key = true
		}
	}
	if fr.p == nil || string(fr.p.sps) != string(fr.sps) || string(fr.p.pps) != string(fr.pps) {
		if !key || fr.sps == nil || fr.pps == nil {
			return nil
		}
		p, err := newParams(fr.sps, fr.pps)
		if err != nil {
			return nil
		}
		fr.p = p
		fr.dtsx = &h264.DTSExtractor{}
		fr.dtsx.Initialize()
		fr.started = false
	}
	if !fr.started {
		if !key {
			return nil
		}
		fr.started, fr.base = true, pts
	}
	// Give the DTS extractor the parameter sets with every key frame, as
	// it reads the SPS to follow picture order counts.
	in := nalus
	if key {
		in = append([][]byte{fr.p.sps, fr.p.pps}, nalus...)
	}
	dts, err := fr.dtsx.Extract(in, pts-fr.base)
	if err != nil {
		return nil
	}
	size := 0
	for _, n := range nalus {
		size += 4 + len(n)
	}
	b := make([]byte, 0, size)
	for _, n := range nalus {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	cto := max(pts-fr.base-dts, 0)
	return &frame{p: fr.p, dts: dts, cto: uint32(cto), key: key, avcc: b}
}

// redact drops the password from a URL for logging.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}
