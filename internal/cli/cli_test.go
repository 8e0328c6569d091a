package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := NewLogger(&b, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "k", 1)
	l.Debug("hidden")
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["msg"] != "hello" || m["k"] != float64(1) {
		t.Fatalf("json log line %q: %v", b.String(), err)
	}
	b.Reset()
	if l, err = NewLogger(&b, "text", slog.LevelInfo); err != nil {
		t.Fatal(err)
	}
	l.Info("hello")
	if !strings.Contains(b.String(), "msg=hello") {
		t.Fatalf("text log line %q", b.String())
	}
	if _, err := NewLogger(&b, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Fatalf("an unknown format must be refused with the accepted ones, got %v", err)
	}
}

func TestVersion(t *testing.T) {
	v := Version("stkd")
	if !strings.HasPrefix(v, "stkd ") || !strings.Contains(v, "go1.") {
		t.Fatalf("Version = %q", v)
	}
}

func TestResolveAddress(t *testing.T) {
	a, err := ResolveAddress("-R", "localhost:20002")
	if err != nil || a.Host != "127.0.0.1" || a.Port != 20002 {
		t.Fatalf("ResolveAddress(localhost:20002) = %+v, %v", a, err)
	}
	s, err := ResolveAddressString("-m", "udp:localhost:9")
	if err != nil || s != "udp:127.0.0.1:9" {
		t.Fatalf("ResolveAddressString = %q, %v", s, err)
	}
	_, err = ResolveAddress("-i", "foo:1.2.3.4")
	if err == nil || !IsBadUsage(err) || !strings.HasPrefix(err.Error(), "-i: ") || !strings.Contains(err.Error(), `unknown protocol "foo"`) {
		t.Fatalf("a bad address must be a usage error naming the flag, got %v", err)
	}
	if IsBadUsage(errors.New("x")) || BadUsage(nil) != nil {
		t.Fatal("only BadUsage errors are usage errors")
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv(TokenEnv, "")
	if tok, err := LoadToken(""); tok != "" || err != nil {
		t.Errorf("no file, no env: %q, %v", tok, err)
	}
	if tok, err := LoadToken(write("good", "billing:s3cret-0123456789abcdef\n")); tok != "billing:s3cret-0123456789abcdef" || err != nil {
		t.Errorf("file: %q, %v", tok, err)
	}
	t.Setenv(TokenEnv, " ops:from-env-0123456789 ")
	if tok, err := LoadToken(""); tok != "ops:from-env-0123456789" || err != nil {
		t.Errorf("env: %q, %v", tok, err)
	}
	for name, text := range map[string]string{"empty": "\n", "nocolon": "secret\n", "twolines": "a:b\nc:d\n", "noname": ":x\n"} {
		if _, err := LoadToken(write(name, text)); err == nil {
			t.Errorf("token file %s accepted", name)
		}
	}
	if _, err := LoadToken(dir + "/missing"); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := ParseNetworks("--accept", " 10.1.0.0/16, 127.0.0.1 ,,")
	if err != nil || fmt.Sprint(got) != "[10.1.0.0/16 127.0.0.1/32]" {
		t.Errorf("ParseNetworks: %v, %v", got, err)
	}
	if got, err := ParseNetworks("--accept", ""); got != nil || err != nil {
		t.Errorf(`ParseNetworks(""): %v, %v; want none`, got, err)
	}
	for in, want := range map[string]string{"10.1.0.0/33": "CIDR", "host.example": "CIDR", "10.1.2.3/16": "did you mean 10.1.0.0/16"} {
		if _, err := ParseNetworks("--accept", in); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--accept") {
			t.Errorf("ParseNetworks(%q): %v, want an error with %q", in, err, want)
		}
	}
}

func TestTLSFlagsAndEnv(t *testing.T) {
	fs := pflag.NewFlagSet("p", pflag.ContinueOnError)
	fs.String("name-server", "", "")
	f := addTLSFlags(fs)
	if f == nil || addTLSFlags(fs) != nil {
		t.Fatal("addTLSFlags: want the flags once, for a program with --name-server")
	}
	if addTLSFlags(pflag.NewFlagSet("q", pflag.ContinueOnError)) != nil {
		t.Error("a program without --name-server got --tls-* flags")
	}
	t.Setenv(TLSCAEnv, "/env/ca.pem")
	t.Setenv(TLSCertEnv, "/env/cert.pem")
	t.Setenv(TLSKeyEnv, "")
	if err := fs.Parse([]string{"--tls-key", "/flag/key.pem"}); err != nil {
		t.Fatal(err)
	}
	files, given := f.files()
	if want := (TLSFiles{CA: "/env/ca.pem", Cert: "/env/cert.pem", Key: "/flag/key.pem"}); files != want || !given {
		t.Errorf("files = %+v, %v; want %+v, true (flags win, the environment fills in)", files, given, want)
	}
	if cfg, err := LoadTLS(TLSFiles{}); cfg != nil || err != nil {
		t.Errorf("LoadTLS of no file: %v, %v; want nil, nil (a tls: address then trusts the system's roots)", cfg, err)
	}
	if _, err := LoadTLS(TLSFiles{Key: "k.pem"}); err == nil || !IsBadUsage(err) || !strings.Contains(err.Error(), "go together") {
		t.Errorf("LoadTLS of a key without its certificate: %v", err)
	}
	if err := UseTLS(TLSFiles{}, false); err != nil || TLS() != nil {
		t.Errorf("UseTLS of no file: TLS() = %v, %v", TLS(), err)
	}
}
