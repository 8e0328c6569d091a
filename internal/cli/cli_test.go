package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
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
