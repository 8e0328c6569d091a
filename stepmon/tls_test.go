package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
)

// TestStepmonTLS: stepmon registers its feed with a name server inside
// mutual TLS, with --tls-ca/--tls-cert/--tls-key on the command line and
// with $STK_TLS_* in its environment; a certificate of another CA is
// refused at the handshake and its name never registered.
func TestStepmonTLS(t *testing.T) {
	leakcheck.Check(t)
	ca, other := tlstest.NewCA(t, "stkd-ca"), tlstest.NewCA(t, "other-ca")
	client, stranger := ca.Client(t, "stepmon"), other.Client(t, "stepmon")
	for _, env := range []string{cli.TLSCAEnv, cli.TLSCertEnv, cli.TLSKeyEnv} {
		t.Setenv(env, "") // nothing from the test's environment
	}
	d := testprog.StartStkdMutualTLS(t, filepath.Join(bin, "stkd"), ca, "--monitor-tcp", "", "--http", "", "--steps=false")
	stepmon := func(name string, args ...string) *testprog.Proc { return startNamedFeed(t, d.NamesTLS, name, args...) }
	prefix := fmt.Sprintf("step.tls-test-%d", os.Getpid())
	stepmon(prefix+".flags", "--tls-ca", ca.CertFile, "--tls-cert", client.CertFile, "--tls-key", client.KeyFile)
	t.Setenv(cli.TLSCAEnv, ca.CertFile)
	t.Setenv(cli.TLSCertEnv, client.CertFile)
	t.Setenv(cli.TLSKeyEnv, client.KeyFile)
	stepmon(prefix + ".env")
	t.Setenv(cli.TLSCertEnv, stranger.CertFile)
	t.Setenv(cli.TLSKeyEnv, stranger.KeyFile)
	refused := stepmon(prefix + ".stranger")

	registered := registeredAt(t, d.Names)
	testutil.WaitFor(t, 15*time.Second, "the feeds with a certificate of stkd's CA (flags, $STK_TLS_*) registered over TLS", func() bool {
		return registered(prefix+".flags") && registered(prefix+".env")
	})
	refused.WaitFor(t, `name not registered yet; the client keeps trying`, 15*time.Second)
	if registered(prefix + ".stranger") {
		t.Errorf("%s.stranger was registered with another CA's certificate", prefix)
	}
}
