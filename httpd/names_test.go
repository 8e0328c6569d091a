package httpd

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// namesWorld runs a real name server on loopback with n names registered
// by a Go client ("svc-000".., three of them also in group "g"), and the
// HTTP server on it.
func namesWorld(t *testing.T, n int, lim namesvc.Limits) (*namesvc.Server, *namesvc.Client, string) {
	t.Helper()
	quiet := testutil.Discard()
	ns, err := namesvc.NewServer(namesvc.ServerConfig{Logger: quiet, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	addr, err := ns.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := namesvc.Dial("tcp:"+addr.String(), namesvc.ClientOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := func(name, group string) {
		info := namesvc.Info{Name: name, Group: group, Linger: time.Second,
			Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7000")}}}
		if err := c.Register(ctx, info); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
	for i := range n {
		reg(fmt.Sprintf("svc-%03d", i), "")
	}
	for i := range 3 {
		reg(fmt.Sprintf("svc-%03d", i), "g")
	}
	_, ts := newTest(t, Config{Names: ns, Logger: quiet})
	return ns, c, ts.URL
}

func TestNamesAPIPages(t *testing.T) {
	_, _, url := namesWorld(t, 250, namesvc.Limits{})
	var want []string
	for i := range 250 {
		want = append(want, fmt.Sprintf("/svc-%03d", i))
	}
	want = append(want, "g/svc-000", "g/svc-001", "g/svc-002")

	var got []string
	cursor, pages := "", 0
	for {
		var p NamesJSON
		getJSON(t, url+"/api/v1/names?limit=100&cursor="+cursor, &p)
		pages++
		if p.Total != 253 || p.Limit != 100 || (pages == 1 && p.Matches != 253) {
			t.Errorf("page %d: total %d, limit %d, matches %d", pages, p.Total, p.Limit, p.Matches)
		}
		for _, n := range p.Names {
			got = append(got, n.Group+"/"+n.Name)
		}
		if p.Truncated != (p.NextCursor != "") {
			t.Errorf("page %d: truncated %v, next %q", pages, p.Truncated, p.NextCursor)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("%d pages listing %d names, want 3 pages of the %d names in order:\n%v", pages, len(got), len(want), got)
	}

	var p NamesJSON
	getJSON(t, url+"/api/v1/names", &p)
	if len(p.Names) != namesvc.DefaultPageLimit || !p.Truncated {
		t.Errorf("default page: %d names", len(p.Names))
	}
	getJSON(t, url+"/api/v1/names?limit=100000", &p)
	if p.Limit != namesvc.MaxPageLimit || len(p.Names) != 253 || p.Truncated {
		t.Errorf("a huge limit: limit %d, %d names", p.Limit, len(p.Names))
	}
	getJSON(t, url+"/api/v1/names?prefix=svc-24&limit=5", &p)
	if len(p.Names) != 5 || p.Names[0].Name != "svc-240" || p.NextCursor == "" || p.Matches != 10 {
		t.Errorf("prefix: %d names, matches %d", len(p.Names), p.Matches)
	}
	getJSON(t, url+"/api/v1/names?q=SVC-00&group=g", &p)
	if len(p.Names) != 3 || p.Names[0].Group != "g" || p.Matches != 3 || p.Truncated {
		t.Errorf("q and group: %+v", p)
	}
	getJSON(t, url+"/api/v1/names?q=no-such", &p)
	if len(p.Names) != 0 || p.Names == nil || p.Matches != 0 || p.Truncated {
		t.Errorf("no match: %+v", p)
	}
	for _, bad := range []string{"?cursor=not-a-cursor", "?limit=0", "?limit=x"} {
		if r := get(t, url+"/api/v1/names"+bad); r.status != http.StatusBadRequest || !strings.Contains(r.body, "error") {
			t.Errorf("GET %s: %d %s", bad, r.status, r.body)
		}
	}
}

// TestNamesAPIPagesFallback: a Names without NamesPage is paged from its
// list with the same parameters.
func TestNamesAPIPagesFallback(t *testing.T) {
	names := &fakeNames{}
	for i := range 5 {
		names.add(namesvc.Entry{Info: namesvc.Info{Name: fmt.Sprint("n", i)}})
	}
	_, ts := newTest(t, Config{Names: names})
	var got []string
	cursor := ""
	for range 10 {
		var p NamesJSON
		getJSON(t, ts.URL+"/api/v1/names?limit=2&cursor="+cursor, &p)
		for _, n := range p.Names {
			got = append(got, n.Name)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, []string{"n0", "n1", "n2", "n3", "n4"}) {
		t.Errorf("pages listed %v", got)
	}
}

func TestNamesRefusalMetrics(t *testing.T) {
	_, c, url := namesWorld(t, 2, namesvc.Limits{RegistrationsPerClient: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// 5 registrations stored (3 names in two groups); a sixth is refused.
	if err := c.Register(ctx, namesvc.Info{Name: "one-too-many"}); err == nil {
		t.Fatal("registration over the per-client limit answered")
	}
	// A refusal is no answer: the 300 ms without one do not mean the
	// server has handled the request yet on a loaded machine.
	var samples []promSample
	var refused float64
	testutil.WaitForf(t, 10*time.Second, func() bool {
		var err error
		if samples, err = parseExposition(get(t, url+"/metrics").body); err != nil {
			t.Fatal(err)
		}
		refused = sampleValue(t, samples, "stk_names_refused_total", "reason", "client_registrations")
		return refused == 1
	}, func() string { return fmt.Sprintf("refused client_registrations %v, want 1", refused) })
	if v := sampleValue(t, samples, "stk_names_refused_total", "reason", "meta_bytes"); v != 0 {
		t.Errorf("refused meta_bytes %v, want 0", v)
	}
	if v := sampleValue(t, samples, "stk_names_groups"); v != 2 {
		t.Errorf("groups %v", v)
	}
}
