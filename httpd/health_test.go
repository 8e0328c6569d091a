package httpd

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/stepbus"
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

// TestHealthReflectsTheSTEPArchive: an archive that cannot write makes
// /healthz answer 503 and say so.
func TestHealthReflectsTheSTEPArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	_, url, bus := newStepTest(t, Config{}, stepbus.Config{ArchiveDir: dir, FlushInterval: 10 * time.Millisecond})
	if r := get(t, url+"/healthz"); r.status != 200 {
		t.Fatalf("/healthz with a working archive: %d %q", r.status, r.body)
	}
	// The directory is taken away before the first segment is opened.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("a file where the directory was"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(mkStep("system.cpu", "h", time.Now().UnixMilli(), nil), "test"); err != nil {
		t.Fatal(err)
	}
	var r response
	testutil.WaitForf(t, 10*time.Second, func() bool { r = get(t, url+"/healthz"); return r.status == 503 },
		func() string { return fmt.Sprintf("/healthz still %d %q after the archive failed", r.status, r.body) })
	if !strings.Contains(r.body, "steps: ") || !strings.Contains(r.body, "cannot write") {
		t.Fatalf("/healthz 503 body %q does not name the STEP archive", r.body)
	}
}
