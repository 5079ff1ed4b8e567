package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/camgate/camgate/internal/gateway"
)

// metrics is the /metrics registry: the gateway's per-rule counters, read
// at scrape time from gateway.Status, plus the admin API's own and the Go
// runtime's. It is a private registry, not the global default.
type metrics struct {
	loginFailures prometheus.Counter
	handler       http.Handler
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "camgate_admin_login_failures_total",
			Help: "Failed admin logins and setup attempts.",
		}),
	}
	reg.MustRegister(m.loginFailures, newGatewayCollector(s), newRTSPCollector(s),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// gatewayCollector turns one gateway.Status snapshot into series.
type gatewayCollector struct {
	s *Server

	up, started, conns, maxConns, lastApply, lockedOut *prometheus.Desc

	enabled, listening, kernel, active, total, udpActive, udpTotal *prometheus.Desc
	bytes, dialErrs, refused, dropped, evicted                     *prometheus.Desc
	guardEvents, guardOn                                           *prometheus.Desc
}

func newGatewayCollector(s *Server) *gatewayCollector {
	rule := []string{"rule"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("camgate_"+name, help, labels, nil)
	}
	return &gatewayCollector{
		s:         s,
		up:        d("up", "1 while the gateway runs.", "version"),
		started:   d("start_time_seconds", "When the gateway started, in Unix seconds."),
		conns:     d("connections_active", "Forwarded TCP connections open now, over all rules."),
		maxConns:  d("connections_max", "The global cap on forwarded TCP connections."),
		lastApply: d("config_last_apply_timestamp_seconds", "When the rule table was last applied, in Unix seconds."),
		lockedOut: d("admin_locked_out_sources", "Source addresses locked out of the admin login now."),
		enabled:   d("rule_enabled", "1 if the rule is enabled.", rule...),
		listening: d("rule_listening", "1 if the rule's sockets are bound.", rule...),
		kernel:    d("rule_kernel", "1 if nftables forwards the rule in the kernel, 0 if camgate's process does.", rule...),
		active:    d("rule_connections_active", "Open TCP connections.", rule...),
		total:     d("rule_connections_total", "TCP connections forwarded.", rule...),
		udpActive: d("rule_udp_sessions_active", "Live UDP sessions.", rule...),
		udpTotal:  d("rule_udp_sessions_total", "UDP sessions created.", rule...),
		bytes:     d("rule_bytes_total", "Payload bytes forwarded; direction in is client to device, out is device to client.", "rule", "direction"),
		dialErrs:  d("rule_dial_errors_total", "Connections that failed because the device could not be reached.", rule...),
		refused:   d("rule_refused_total", "Connections and sessions refused by a cap or by policy.", rule...),
		dropped:   d("rule_udp_dropped_total", "UDP datagrams that could not be delivered.", rule...),
		evicted:   d("rule_udp_evicted_total", "UDP sessions evicted because the session table was full.", rule...),
		guardEvents: d("guard_events_total", "What the guard did on the rule, by event: denied (allow/deny), limited (per-source caps), "+
			"banned (refused while banned), blocked (exploit filter), malformed (refused requests), auth_failures, auth_successes, "+
			"bans (issued), lockdown (logins held back by the device budget), tls_errors (failed handshakes).", "rule", "event"),
		guardOn: d("guard_protection", "1 if the protection is in force on the rule, else 0: allowlist, denylist, limits (per-source), auth (brute-force guard), hikvision (exploit filter), tls (termination).", "rule", "protection"),
	}
}

func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.started, c.conns, c.maxConns, c.lastApply, c.lockedOut,
		c.enabled, c.listening, c.kernel, c.active, c.total, c.udpActive, c.udpTotal,
		c.bytes, c.dialErrs, c.refused, c.dropped, c.evicted, c.guardEvents, c.guardOn} {
		ch <- d
	}
}

func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	gauge(c.up, 1, st.Version)
	gauge(c.started, float64(st.Started.Unix()))
	gauge(c.conns, float64(st.Connections))
	gauge(c.maxConns, float64(st.MaxConnections))
	if !st.LastApplied.IsZero() {
		gauge(c.lastApply, float64(st.LastApplied.UnixMilli())/1000)
	}
	gauge(c.lockedOut, float64(c.s.lockout.locked(c.s.now())))
	for _, r := range st.Rules {
		n, s := r.Name, r.Stats
		gauge(c.enabled, b(r.Enabled), n)
		gauge(c.listening, b(r.State == "listening"), n)
		gauge(c.kernel, b(r.Path.Dataplane == gateway.PathKernel), n)
		gauge(c.active, float64(s.Active), n)
		counter(c.total, float64(s.Total), n)
		gauge(c.udpActive, float64(s.Sessions), n)
		counter(c.udpTotal, float64(s.SessTotal), n)
		counter(c.bytes, float64(s.BytesIn), n, "in")
		counter(c.bytes, float64(s.BytesOut), n, "out")
		counter(c.dialErrs, float64(s.DialErrs), n)
		counter(c.refused, float64(s.Refused), n)
		counter(c.dropped, float64(s.Dropped), n)
		counter(c.evicted, float64(s.Evicted), n)
		if r.Guard != nil {
			for _, ev := range guardEvents(*r.Guard) {
				counter(c.guardEvents, float64(ev.n), n, ev.name)
			}
		}
		for _, p := range protections(r.Effective) {
			gauge(c.guardOn, b(p.on), n, p.name)
		}
	}
}

// serveMetrics serves /metrics: public if admin.metrics_public, else for
// a session or API token (a read-only token is enough).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if !s.adminConfig().MetricsPublic {
		if _, err := s.authenticate(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="camgate"`)
			return err
		}
	}
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
