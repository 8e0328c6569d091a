package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/stk-go/stk/hostmon"
)

// servicesTTL is how long a services list from stkd is used before it is
// fetched again: services come and go rarely, and the services collector
// asks every interval.
const servicesTTL = 5 * time.Second

// stkdServices lists the services stkd's monitor knows, from its HTTP API
// (GET /api/v1/services, httpd.ServicesJSON), for the services collector.
type stkdServices struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	fetched time.Time
	refs    []hostmon.ServiceRef
	err     error
}

func newStkdServices(base string) (*stkdServices, error) {
	base = strings.TrimRight(base, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("--stkd-http %q: want an http:// or https:// URL, e.g. http://127.0.0.1:8080", base)
	}
	return &stkdServices{url: base + "/api/v1/services", client: &http.Client{Timeout: 2 * time.Second}}, nil
}

// servicesJSON is the part of httpd.ServicesJSON read here.
type servicesJSON struct {
	Services []struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
		Peer     string `json:"peer"`
		Current  bool   `json:"current"`
	} `json:"services"`
}

// get returns the current services, fetched at most every servicesTTL.
// The result is shared: callers must not change it.
func (s *stkdServices) get(ctx context.Context) ([]hostmon.ServiceRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fetched.IsZero() && time.Since(s.fetched) < servicesTTL {
		return s.refs, s.err
	}
	s.refs, s.err = s.fetch(ctx)
	s.fetched = time.Now()
	return s.refs, s.err
}

func (s *stkdServices) fetch(ctx context.Context) ([]hostmon.ServiceRef, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("services from stkd: %w", err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 16<<20)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(body, 200))
		io.Copy(io.Discard, body) // so the connection can be reused
		return nil, fmt.Errorf("services from stkd: GET %s: %s: %s", s.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	var doc servicesJSON
	if err := json.NewDecoder(body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("services from stkd: GET %s: %w", s.url, err)
	}
	io.Copy(io.Discard, body)
	var refs []hostmon.ServiceRef
	for _, sv := range doc.Services {
		if !sv.Current || sv.Peer == "" {
			continue
		}
		peer, err := netip.ParseAddrPort(sv.Peer)
		if err != nil {
			continue // an address the collector could not match anyway
		}
		refs = append(refs, hostmon.ServiceRef{Name: sv.Name, Protocol: sv.Protocol, Peer: peer})
	}
	return refs, nil
}

func (s *stkdServices) close() { s.client.CloseIdleConnections() }
