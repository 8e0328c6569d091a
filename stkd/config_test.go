package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stk-go/stk/namesvc"
)

func TestParseCfgFileShipped(t *testing.T) {
	// The stkd.cfg the C distribution ships, plus noise C ignores.
	cfg := "# comment\nHTTPD: -T 127.0.0.1:20001 -U 127.0.0.1:20001\nnamed: -T 127.0.0.1:20002 -U 127.0.0.1:20002\nother line\n"
	named, httpd, hasNamed, hasHttpd, err := parseCfgFile(strings.NewReader(cfg))
	if err != nil || !hasNamed || !hasHttpd {
		t.Fatalf("parse: %v %v %v", err, hasNamed, hasHttpd)
	}
	if strings.Join(named, " ") != "-T 127.0.0.1:20002 -U 127.0.0.1:20002" || len(httpd) != 4 {
		t.Fatalf("named %q httpd %q", named, httpd)
	}
	c := config{namesTCP: defaultNamesTCP, namesUDP: defaultNamesUDP}
	if err := applyNamedArgs(&c, named); err != nil {
		t.Fatal(err)
	}
	if c.namesTCP != "127.0.0.1:20002" || c.namesUDP != "127.0.0.1:20002" || c.namesMcast != "" {
		t.Fatalf("config %+v", c)
	}
}

func TestApplyNamedArgs(t *testing.T) {
	for _, tc := range []struct {
		args           string
		tcp, udp, mcst string
		err            bool
	}{
		{args: "", tcp: defaultNamesTCP, udp: ""},                    // no -U: no UDP, as in C
		{args: "-U -", tcp: defaultNamesTCP, udp: "127.0.0.1:20002"}, // "-": the default address
		{args: "-T 10.0.0.1 -U 127.0.0.2", tcp: "10.0.0.1:20002", udp: "127.0.0.2:20002"},
		{args: "-M -", tcp: defaultNamesTCP, mcst: "224.10.10.20:20002"},
		{args: "-M 239.1.2.3:4000 -P whatever", tcp: defaultNamesTCP, mcst: "239.1.2.3:4000"},
		{args: "-T 1.2.3.4:notaport", err: true},
		{args: "-Z", err: true},
	} {
		c := config{namesTCP: defaultNamesTCP, namesUDP: defaultNamesUDP}
		err := applyNamedArgs(&c, strings.Fields(tc.args))
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.args, err)
		}
		if err == nil && (c.namesTCP != tc.tcp || c.namesUDP != tc.udp || c.namesMcast != tc.mcst) {
			t.Fatalf("%q: got tcp %q udp %q mcast %q", tc.args, c.namesTCP, c.namesUDP, c.namesMcast)
		}
	}
}

func TestStartFromCfgFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stkd.cfg")
	os.WriteFile(path, []byte("named: -T 127.0.0.1:0 -U 127.0.0.1:0\n"), 0o644)
	c := config{namesTCP: defaultNamesTCP, namesUDP: defaultNamesUDP, udpTTL: namesvc.DefaultUDPTTL}
	if err := loadCfgFile(&c, path, false, false); err != nil {
		t.Fatal(err)
	}
	d, err := start(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	client, err := namesvc.Dial("tcp:"+d.namesTCP, namesvc.ClientOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if infos, err := client.LookupAll(t.Context(), "nothing", namesvc.LookupOptions{}); err != nil || len(infos) != 0 {
		t.Fatalf("lookup against the started daemon: %v %v", infos, err)
	}
	if d.namesUDP == "" || strings.HasSuffix(d.namesUDP, ":0") {
		t.Fatalf("UDP listener %q", d.namesUDP)
	}

	if err := loadCfgFile(&config{}, filepath.Join(t.TempDir(), "missing.cfg"), false, false); err == nil {
		t.Fatal("a missing config file was accepted")
	}
	os.WriteFile(path, []byte("httpd: -p 8080\n"), 0o644)
	c = config{}
	loadCfgFile(&c, path, false, false)
	if _, err := start(c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("a config without named: started nothing without complaint")
	}
}
