package stk

import (
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/smartbeat"
)

// TestServiceTLS: Env.Service reports to a "tls:ip:port" monitor that
// asks for client certificates, with the Env's Options.TLS (the name
// server, plain TCP here, ignores it).
func TestServiceTLS(t *testing.T) {
	leakcheck.Check(t)
	ca := tlstest.NewCA(t, "stk-ca")
	srv, client := ca.Server(t, "monitor"), ca.Client(t, "billing")
	scfg, err := flow.NewServerTLS(srv.CertFile, srv.KeyFile, ca.CertFile, testLog())
	if err != nil {
		t.Fatal(err)
	}
	m, err := smartbeat.NewMonitor(smartbeat.MonitorConfig{Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr, err := m.ServeTLS("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	_, ns := startNames(t)
	ccfg, err := flow.NewClientTLS(ca.CertFile, client.CertFile, client.KeyFile, testLog())
	if err != nil {
		t.Fatal(err)
	}
	env, err := Connect(ns, Options{Logger: testLog(), TLS: ccfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	svc, err := env.Service("billing", smartbeat.Options{Monitor: "tls:" + addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetState(smartbeat.Running); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "billing running in the monitor, over TLS", func() bool {
		for _, v := range m.Services() {
			if v.Name == "billing" && v.StateName == "running" {
				return true
			}
		}
		return false
	})
}
