package admin

import (
	"net/http"
	"time"
)

// healthTimeout bounds how long /healthz waits for the gateway: a gateway
// that cannot say its status within it is reported unhealthy instead of
// hanging the monitor.
const healthTimeout = 2 * time.Second

// healthRoutes registers GET /healthz: unauthenticated, for monitoring
// (a load balancer, Uptime Kuma, curl in cron). It answers "ok" while the
// gateway answers its status and 503 when it does not, and says nothing
// else: no version, no rules, no addresses.
func (s *Server) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.healthz)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	done := make(chan struct{})
	go func() { // owned here: it ends when Status returns
		s.site.Gateway().Status()
		close(done)
	}()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	select {
	case <-done:
		w.Write([]byte("ok\n"))
	case <-time.After(healthTimeout):
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("gateway not answering\n"))
	}
}
