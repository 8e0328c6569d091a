package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

func TestShippedCfgFileIsTheDefault(t *testing.T) {
	// The stkd.cfg the C distribution ships, plus noise C ignores.
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("# comment\nHTTPD: -T 127.0.0.1:20001 -U 127.0.0.1:20001\nnamed: -T 127.0.0.1:20002 -U 127.0.0.1:20002\nother line\n"), 0o644)
	c := defaultConfig()
	if _, err := loadCfgFile(&c, path, false, false); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, defaultConfig()) {
		t.Fatalf("shipped cfg gives %+v, built-in defaults are %+v", c, defaultConfig())
	}
}

func TestApplyNamedArgs(t *testing.T) {
	def := defaultConfig().namesTCP
	for _, tc := range []struct {
		args           string
		tcp, udp, mcst string
		err            bool
	}{
		{args: "", tcp: def, udp: ""}, // no -U: no UDP, as in C
		{args: "-U -", tcp: def, udp: "127.0.0.1:20002"},
		{args: "-T 10.0.0.1 -U 127.0.0.2", tcp: "10.0.0.1:20002", udp: "127.0.0.2:20002"},
		{args: "-M -", tcp: def, mcst: "224.10.10.20:20002"},
		{args: "-M 239.1.2.3:4000 -P whatever", tcp: def, mcst: "239.1.2.3:4000"},
		{args: "-T 1.2.3.4:notaport", err: true},
		{args: "-Z", err: true},
	} {
		c := defaultConfig()
		err := applyNamedArgs(&c, strings.Fields(tc.args))
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.args, err)
		}
		if err == nil && (c.namesTCP != tc.tcp || c.namesUDP != tc.udp || c.namesMcast != tc.mcst) {
			t.Fatalf("%q: got tcp %q udp %q mcast %q", tc.args, c.namesTCP, c.namesUDP, c.namesMcast)
		}
	}
}

func TestApplyHttpdArgs(t *testing.T) {
	c := defaultConfig()
	err := applyHttpdArgs(&c, strings.Fields("-p 9090 -T - -M - -N mon2 -L 60 -R udp:127.0.0.1:20002"))
	if err != nil {
		t.Fatal(err)
	}
	if c.http != "127.0.0.1:9090" || c.monTCP != "127.0.0.1:20001" || c.monUDP != "" ||
		c.monMcast != "224.10.10.20:20001" || c.monName != "mon2" || c.monLinger != time.Minute ||
		c.nameServer != "udp:127.0.0.1:20002" {
		t.Fatalf("config %+v", c)
	}
	if err := applyHttpdArgs(&c, []string{"-x"}); err == nil {
		t.Fatal("unknown httpd flag accepted")
	}
}

func TestFlagsWinOverCfgFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:1 -U 127.0.0.1:2\n"), 0o644)
	// run would block on signals; check the layering the way run does it.
	f := defaultConfig()
	f.namesTCP = "127.0.0.1:0"
	c := defaultConfig()
	if _, err := loadCfgFile(&c, path, false, false); err != nil {
		t.Fatal(err)
	}
	flagFields["names-tcp"](&c, &f)
	if c.namesTCP != "127.0.0.1:0" || c.namesUDP != "127.0.0.1:2" || c.monitor {
		t.Fatalf("config %+v", c)
	}
}

func TestStartFromCfgFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:0 -U 127.0.0.1:0\nhttpd: -T 127.0.0.1:0 -U 127.0.0.1:0\n"), 0o644)
	c := defaultConfig()
	if _, err := loadCfgFile(&c, path, false, false); err != nil {
		t.Fatal(err)
	}
	c.http = "127.0.0.1:0"
	d, err := start(c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	resp, err := http.Get("http://" + d.http + "/api/v1/flows")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"names-tcp-" + d.namesTCP, "monitor-udp-" + d.monUDP} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET /api/v1/flows: %d %s; want %s listed", resp.StatusCode, body, want)
		}
	}
	client, err := namesvc.Dial("tcp:"+d.namesTCP, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// The monitor registers itself with the daemon's own name server.
	var info namesvc.Info
	testutil.WaitForf(t, 10*time.Second, func() bool {
		info, err = client.LookupOnce(t.Context(), "monitor", namesvc.LookupOptions{})
		return err == nil
	}, func() string { return fmt.Sprintf("monitor not registered: %v", err) })
	if s, _ := info.MetaString(0x1000); s != "tcp:"+d.monTCP {
		t.Fatalf("monitor registration %v, want tcp:%s", info, d.monTCP)
	}

	if _, err := loadCfgFile(&config{}, filepath.Join(t.TempDir(), "missing.cfg"), false, false); err == nil {
		t.Fatal("a missing config file was accepted")
	}
	os.WriteFile(path, []byte("# nothing\n"), 0o644)
	c = defaultConfig()
	loadCfgFile(&c, path, false, false)
	if _, err := start(c, testutil.Discard()); err == nil {
		t.Fatal("a config with no line started nothing without complaint")
	}
}

// A daemon can be closed twice (signal handler and deferred close): the
// second call returns the first's result instead of waiting forever.
func TestCloseTwice(t *testing.T) {
	c := defaultConfig()
	c.namesTCP, c.namesUDP, c.monTCP, c.monUDP, c.http = "127.0.0.1:0", "", "127.0.0.1:0", "", "127.0.0.1:0"
	d, err := start(c, testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	first := d.close()
	done := make(chan error, 1)
	go func() { done <- d.close() }()
	select {
	case err := <-done:
		if (err == nil) != (first == nil) {
			t.Fatalf("second close: %v, first: %v", err, first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second close hangs")
	}
}
