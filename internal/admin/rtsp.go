package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/camgate/camgate/internal/rtsp"
)

// RTSPRelay is what the API reads from the RTSP relay (package rtsp's
// *Relay, wired by `camgate serve` as Config.RTSP): per-rule RTP-over-UDP
// counters and the external port range's use.
type RTSPRelay interface {
	Stats() map[string]rtsp.Stats
	Pool() (size, inUse int)
}

func (s *Server) rtspRelay() RTSPRelay { return s.rtsp }

// rtpPool is the external RTP range's use, in /api/status.
type rtpPool struct {
	Pairs int `json:"pairs"`
	InUse int `json:"in_use"`
}

// addRTSP fills the status view's RTP fields.
func (s *Server) addRTSP(v *statusView) {
	rel := s.rtspRelay()
	if rel == nil {
		return
	}
	size, used := rel.Pool()
	v.RTP = &rtpPool{Pairs: size, InUse: used}
	stats := rel.Stats()
	for i := range v.Rules {
		if st, ok := stats[v.Rules[i].Name]; ok {
			v.Rules[i].RTSP = &st
		}
	}
}

// rtspCollector exports the relay's counters at scrape time.
type rtspCollector struct {
	s                                        *Server
	sessions, sessTotal, bytes, packets      *prometheus.Desc
	dropped, foreign, refused, pairs, pairsU *prometheus.Desc
}

func newRTSPCollector(s *Server) *rtspCollector {
	rule := []string{"rule"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("camgate_"+name, help, labels, nil)
	}
	return &rtspCollector{
		s:         s,
		sessions:  d("rule_rtp_sessions_active", "Live RTP-over-UDP tracks (one per SETUP) relayed by the RTSP relay.", rule...),
		sessTotal: d("rule_rtp_sessions_total", "RTP-over-UDP tracks set up.", rule...),
		bytes:     d("rule_rtp_udp_bytes_total", "RTP/RTCP payload bytes relayed over UDP; in is client to device.", "rule", "direction"),
		packets:   d("rule_rtp_udp_packets_out_total", "RTP/RTCP datagrams relayed to clients.", rule...),
		dropped:   d("rule_rtp_udp_dropped_total", "RTP/RTCP datagrams not relayed (from a stranger, or unsendable).", rule...),
		foreign:   d("rule_rtp_udp_foreign_total", "Datagrams to a viewer's ports from an address other than the viewer's.", rule...),
		refused:   d("rule_rtp_refused_total", "SETUPs answered 461/453 (multicast, or the RTP port range exhausted).", rule...),
		pairs:     d("rtp_port_pairs", "RTP/RTCP port pairs in the external range (rtsp.rtp_ports)."),
		pairsU:    d("rtp_port_pairs_in_use", "RTP/RTCP port pairs in use now."),
	}
}

func (c *rtspCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sessions, c.sessTotal, c.bytes, c.packets, c.dropped, c.foreign, c.refused, c.pairs, c.pairsU} {
		ch <- d
	}
}

func (c *rtspCollector) Collect(ch chan<- prometheus.Metric) {
	rel := c.s.rtspRelay()
	if rel == nil {
		return
	}
	size, used := rel.Pool()
	ch <- prometheus.MustNewConstMetric(c.pairs, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(c.pairsU, prometheus.GaugeValue, float64(used))
	for n, st := range rel.Stats() {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.RTPSessions), n)
		ch <- prometheus.MustNewConstMetric(c.sessTotal, prometheus.CounterValue, float64(st.RTPSessionsTotal), n)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.UDPBytesIn), n, "in")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.UDPBytesOut), n, "out")
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(st.UDPPacketsOut), n)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.UDPDropped), n)
		ch <- prometheus.MustNewConstMetric(c.foreign, prometheus.CounterValue, float64(st.Foreign), n)
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Refused), n)
	}
}
