package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
)

func TestStkdServices(t *testing.T) {
	leakcheck.Check(t)
	var hits atomic.Int64
	var reply atomic.Value
	reply.Store(`{"seq": 7, "services": [
		{"name": "a", "protocol": "tcp", "peer": "127.0.0.1:4000", "current": true},
		{"name": "gone", "protocol": "tcp", "peer": "127.0.0.1:4001", "current": false},
		{"name": "no peer", "protocol": "udp", "peer": "", "current": true},
		{"name": "bad peer", "protocol": "udp", "peer": "somewhere", "current": true},
		{"name": "b", "protocol": "udp", "peer": "10.0.0.2:5000", "current": true, "extra": [1, 2]}]}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /base/api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Host == "" || r.Header.Get("Accept") != "application/json" {
			http.Error(w, "bad request headers", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, reply.Load().(string))
	})
	mux.HandleFunc("GET /down/api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": "the monitor is not running"}`, http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /garbage/api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>not JSON</html>")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	s, err := newStkdServices(srv.URL + "/base/")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := s.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Name != "a" || refs[0].Protocol != "tcp" || refs[0].Peer.String() != "127.0.0.1:4000" ||
		refs[1].Name != "b" || refs[1].Peer.String() != "10.0.0.2:5000" {
		t.Errorf("services %+v, want a and b (current, with a peer)", refs)
	}
	// Within the TTL the list is not fetched again.
	reply.Store(`{"services": []}`)
	if again, _ := s.get(context.Background()); len(again) != 2 || hits.Load() != 1 {
		t.Errorf("second get: %d services, %d requests; want the cached list", len(again), hits.Load())
	}
	s.fetched = time.Now().Add(-servicesTTL)
	if again, err := s.get(context.Background()); err != nil || len(again) != 0 || hits.Load() != 2 {
		t.Errorf("after the TTL: %v %v, %d requests", again, err, hits.Load())
	}

	for path, msg := range map[string]string{
		"/down":    `/down/api/v1/services: 503 Service Unavailable: {"error": "the monitor is not running"}`,
		"/garbage": "/garbage/api/v1/services: invalid character '<'",
	} {
		s, _ := newStkdServices(srv.URL + path)
		if _, err := s.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want %q", path, err, msg)
		}
	}

	// Nothing listening; a server that never answers (bounded by the
	// timeout, or at once by the caller's stop); not HTTP at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, _ = newStkdServices("http://" + addr)
	if _, err := s.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v", err)
	}
	// serve runs a TCP server that hands each connection to handle.
	serve := func(handle func(net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				handle(c)
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	silent := serve(func(c net.Conn) { c.Read(make([]byte, 1024)); c.Read(make([]byte, 1)) }) // reads until the client hangs up
	s, _ = newStkdServices("http://" + silent)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	_, err = s.fetch(ctx)
	cancel()
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("silent server: %v after %v; want an error at the caller's deadline", err, time.Since(start))
	}
	ssh := serve(func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n")) })
	s, _ = newStkdServices("http://" + ssh)
	if _, err := s.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), `not an HTTP reply: "SSH-2.0-OpenSSH_9.2"`) {
		t.Errorf("not HTTP: %v", err)
	}

	for _, bad := range []string{"127.0.0.1:8080", "https://127.0.0.1:8080", "http://", "http://u:p@h:1", "ftp://h"} {
		if _, err := newStkdServices(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s, err := newStkdServices("http://stkd.example"); err != nil || s.hostport != "stkd.example:80" || s.path != "/api/v1/services" {
		t.Errorf("default port: %+v %v", s, err)
	}
}
