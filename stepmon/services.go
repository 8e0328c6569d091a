package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
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
//
// It speaks just enough HTTP/1.0 to GET one JSON document from stkd's
// plain-HTTP API: net/http's client, with its TLS and HTTP/2 code, would
// add some 3 MB to the program, and the pages of a process's program count
// in its RSS, which stepmon keeps under 15 MB.
type stkdServices struct {
	hostport string // dial address
	host     string // Host header
	path     string

	mu      sync.Mutex
	fetched time.Time
	refs    []hostmon.ServiceRef
	err     error
}

func newStkdServices(base string) (*stkdServices, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--stkd-http %q: want stkd's plain-HTTP address as http://host[:port], e.g. http://127.0.0.1:8080", base)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "80")
	}
	return &stkdServices{hostport: hostport, host: u.Host, path: strings.TrimRight(u.EscapedPath(), "/") + "/api/v1/services"}, nil
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

// Limits of a services reply.
const (
	servicesTimeout   = 2 * time.Second
	maxServicesReply  = 16 << 20
	maxServicesHeader = 64 << 10
)

func (s *stkdServices) fetch(ctx context.Context) ([]hostmon.ServiceRef, error) {
	target := "http://" + s.host + s.path
	ctx, cancel := context.WithTimeout(ctx, servicesTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.hostport)
	if err != nil {
		return nil, fmt.Errorf("services from stkd: GET %s: %w", target, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) }) // a stop ends the wait at once
	defer stop()
	// HTTP/1.0: the reply is never chunked and ends with the connection.
	req := "GET " + s.path + " HTTP/1.0\r\nHost: " + s.host + "\r\nAccept: application/json\r\nUser-Agent: stepmon\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("services from stkd: GET %s: %w", target, err)
	}
	lr := &io.LimitedReader{R: conn, N: maxServicesHeader}
	br := bufio.NewReader(lr)
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("services from stkd: GET %s: reading the reply: %w", target, err)
	}
	proto, code, _ := strings.Cut(strings.TrimSpace(status), " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) < 3 {
		return nil, fmt.Errorf("services from stkd: GET %s: not an HTTP reply: %q", target, strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("services from stkd: GET %s: reading the reply's header: %w", target, err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(k, "Transfer-Encoding") && !strings.EqualFold(strings.TrimSpace(v), "identity") {
			return nil, fmt.Errorf("services from stkd: GET %s: the server sent a %s body to an HTTP/1.0 request", target, strings.TrimSpace(v))
		}
	}
	lr.N = maxServicesReply // the header is read: the body may be larger
	if code[:3] != "200" {
		msg := make([]byte, 200)
		n, _ := io.ReadFull(br, msg)
		return nil, fmt.Errorf("services from stkd: GET %s: %s: %s", target, strings.TrimSpace(code), strings.TrimSpace(string(msg[:n])))
	}
	var doc servicesJSON
	if err := json.NewDecoder(br).Decode(&doc); err != nil {
		return nil, fmt.Errorf("services from stkd: GET %s: %w", target, err)
	}
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
