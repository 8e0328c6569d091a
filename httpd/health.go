package httpd

import (
	"fmt"
	"net/http"
	"strings"
)

// serveHealth answers GET /healthz: 200 "ok" while every flow can serve and
// the STEP bus does its job, else 503 with a line per flow or component
// that cannot and why, so that a load
// balancer or systemd watchdog takes a daemon whose listener is stuck out of
// service instead of trusting an open port.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var bad strings.Builder
	if s.cfg.Flows != nil {
		for _, f := range s.cfg.Flows() {
			if f.Error != "" {
				fmt.Fprintf(&bad, "flow %s (%s %v): %s\n", f.Name, f.Protocol, f.Addr, f.Error)
			}
		}
	}
	if s.cfg.Steps != nil {
		if err := s.cfg.Steps.Health(); err != nil {
			fmt.Fprintf(&bad, "steps: %v\n", err)
		}
	}
	if bad.Len() > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(bad.String()))
		return
	}
	w.Write([]byte("ok\n"))
}
