package httpd

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stk-go/stk/flow"
)

func TestHealthReflectsListeners(t *testing.T) {
	var broken string
	cfg := Config{Flows: func() []FlowInfo {
		return []FlowInfo{
			{Name: "names-tcp", Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:20002"), Stats: flow.Stats{AcceptErrors: 3}, Error: broken},
			{Name: "monitor-tcp", Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:20001")},
		}
	}}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if r := get(t, ts.URL+"/healthz"); r.status != 200 || r.body != "ok\n" {
		t.Errorf("/healthz with every listener up: %d %q", r.status, r.body)
	}
	broken = "cannot accept connections since 2026-12-05T10:00:00Z: accept4: too many open files"
	r := get(t, ts.URL+"/healthz")
	if r.status != 503 || !strings.Contains(r.body, "names-tcp") || !strings.Contains(r.body, "too many open files") || strings.Contains(r.body, "monitor-tcp") {
		t.Errorf("/healthz with a stuck listener: %d %q", r.status, r.body)
	}
	m := get(t, ts.URL+"/metrics").body
	for _, want := range []string{
		`stk_flow_up{flow="names-tcp",protocol="tcp",addr="127.0.0.1:20002"} 0`,
		`stk_flow_up{flow="monitor-tcp",protocol="tcp",addr="127.0.0.1:20001"} 1`,
		`stk_flow_accept_errors_total{flow="names-tcp",protocol="tcp",addr="127.0.0.1:20002"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
