package namesvc

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
)

func TestNameIndexOrderedUnderChurn(t *testing.T) {
	var x nameIndex
	lists := map[nameKey]*nameList{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		k := nameKey{fmt.Sprint("g", r.IntN(3)), fmt.Sprintf("n%05d", r.IntN(5000))}
		if l := lists[k]; l != nil && i%3 == 0 {
			if !x.remove(l) {
				t.Fatalf("remove %v: not found", k)
			}
			delete(lists, k)
		} else if l == nil {
			l = &nameList{key: k}
			lists[k] = l
			x.insert(l)
		}
	}
	want := make([]nameKey, 0, len(lists))
	for k := range lists {
		want = append(want, k)
	}
	slices.SortFunc(want, nameKey.compare)
	var got []nameKey
	x.ascend(nameKey{}, func(l *nameList) bool { got = append(got, l.key); return true })
	if !slices.Equal(got, want) || x.len() != len(want) {
		t.Fatalf("index holds %d keys (len %d), want %d in order", len(got), x.len(), len(want))
	}
	for _, c := range x.chunks {
		if len(c) == 0 || len(c) > indexChunkMax {
			t.Fatalf("chunk of %d", len(c))
		}
	}
	// From the middle, and from a key that is not there.
	mid := want[len(want)/2]
	got = got[:0]
	x.ascend(mid, func(l *nameList) bool { got = append(got, l.key); return len(got) < 3 })
	if !slices.Equal(got, want[len(want)/2:len(want)/2+3]) {
		t.Errorf("from %v: %v", mid, got)
	}
	got = got[:0]
	x.ascend(nameKey{mid.group, mid.name + "\x00"}, func(l *nameList) bool { got = append(got, l.key); return false })
	if got[0] != want[len(want)/2+1] {
		t.Errorf("after %v: %v", mid, got)
	}
}

// pageServer registers names from fake peers: n names "svc-%05d" in the
// default group, and a few in group "g" and with other addresses.
func pageServer(t testing.TB, n int) *Server {
	t.Helper()
	s, _ := newTestServer(t, ServerConfig{Limits: NoLimits(), Logger: testutil.Discard()})
	peers := make([]*discardPeer, 10)
	for i := range peers {
		peers[i] = &discardPeer{testpeer.New(flow.TCP, fmt.Sprintf("127.0.0.1:%d", 30000+i))}
	}
	for i := range n {
		info := regInfo(fmt.Sprintf("svc-%05d", i))
		s.Handle(peers[i%len(peers)], buildRegister(uint64(i), &info))
	}
	return s
}

// listAll follows the cursors from the first page to the last.
func listAll(t *testing.T, s *Server, q NamesQuery) (names []string, pages int) {
	t.Helper()
	for {
		p, err := s.NamesPage(q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range p.Entries {
			names = append(names, e.Group+"/"+e.Name+"@"+e.Registrant.String())
		}
		if p.Next == "" {
			return names, pages
		}
		if pages > 10000 {
			t.Fatal("no end")
		}
		q.Cursor = p.Next
	}
}

func TestNamesPage(t *testing.T) {
	s := pageServer(t, 1000)
	// A name registered from several connections, and other groups.
	for i := range 3 {
		p := &discardPeer{testpeer.New(flow.TCP, fmt.Sprintf("127.0.0.2:%d", 100+i))}
		info := regInfo("svc-00500")
		info.Addresses[0].Addr = netip.AddrPortFrom(info.Addresses[0].Addr.Addr(), uint16(9000+i))
		s.Handle(p, buildRegister(1, &info))
		info = regInfo(fmt.Sprint("alpha-", i))
		info.Group = "g"
		s.Handle(p, buildRegister(2, &info))
	}
	all := s.Names()
	var want []string
	for _, e := range all {
		want = append(want, e.Group+"/"+e.Name+"@"+e.Registrant.String())
	}
	if len(want) != 1006 {
		t.Fatalf("%d names", len(want))
	}
	for _, limit := range []int{1, 7, 100, 5000} {
		got, pages := listAll(t, s, NamesQuery{Limit: limit})
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: pages list %d names, Names %d, or in another order", limit, len(got), len(want))
		}
		if wantPages := (1006 + min(limit, MaxPageLimit) - 1) / min(limit, MaxPageLimit); pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}
	p, _ := s.NamesPage(NamesQuery{})
	if len(p.Entries) != DefaultPageLimit || p.Total != 1006 || p.Matches != 1006 {
		t.Errorf("default page: %d entries, total %d, matches %d", len(p.Entries), p.Total, p.Matches)
	}

	// Filters.
	got, _ := listAll(t, s, NamesQuery{Prefix: "svc-004", Limit: 3})
	if len(got) != 100 || !strings.HasPrefix(got[0], "/svc-00400@") {
		t.Errorf("prefix: %d names, first %v", len(got), got[:1])
	}
	got, _ = listAll(t, s, NamesQuery{Prefix: "alpha", Limit: 2})
	if len(got) != 3 || got[0] != "g/alpha-0@127.0.0.2:100" {
		t.Errorf("prefix in another group: %v", got)
	}
	got, _ = listAll(t, s, NamesQuery{Group: "g", HasGroup: true})
	if len(got) != 3 {
		t.Errorf("group g: %v", got)
	}
	got, _ = listAll(t, s, NamesQuery{Group: "", HasGroup: true, Prefix: "alpha"})
	if len(got) != 0 {
		t.Errorf("group default, prefix alpha: %v", got)
	}
	p, _ = s.NamesPage(NamesQuery{Contains: "SVC-0050", Limit: 5})
	if len(p.Entries) != 5 || p.Matches != 13 || p.Next == "" { // svc-00500 x4, 00501..00509
		t.Errorf("contains: %d entries, %d matches, next %q", len(p.Entries), p.Matches, p.Next)
	}
	p, _ = s.NamesPage(NamesQuery{Contains: ":9001"}) // an address
	if len(p.Entries) != 1 || p.Entries[0].Name != "svc-00500" || p.Matches != 1 || p.Next != "" {
		t.Errorf("contains an address: %+v", p)
	}
	p, _ = s.NamesPage(NamesQuery{Contains: "tcp:127.0.0.1:7000", Limit: 1})
	if p.Matches != 1003 {
		t.Errorf("contains protocol:address: %d matches", p.Matches)
	}
	p, _ = s.NamesPage(NamesQuery{Contains: "127.0.0.2:101"}) // a registrant
	if len(p.Entries) != 2 {
		t.Errorf("contains a registrant: %d", len(p.Entries))
	}
	if _, err := s.NamesPage(NamesQuery{Cursor: "garbage!"}); err != ErrBadCursor {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestNamesPageCursorStable: names added and removed between pages
// neither repeat nor hide the names that stay.
func TestNamesPageCursorStable(t *testing.T) {
	s := pageServer(t, 300)
	extra := &discardPeer{testpeer.New(flow.TCP, "127.0.0.3:1")}
	seen := map[string]int{}
	q := NamesQuery{Limit: 40}
	for i := 0; ; i++ {
		p, err := s.NamesPage(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			seen[e.Name+"@"+e.Registrant.String()]++
		}
		// Churn: a new name before and after the cursor, and a
		// connection's names gone.
		for _, n := range []string{fmt.Sprintf("svc-%05d-new", i*40), fmt.Sprintf("svc-%05d-new", 299-i)} {
			info := regInfo(n)
			s.Handle(extra, buildRegister(1, &info))
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	for i := range 300 {
		k := fmt.Sprintf("svc-%05d@127.0.0.1:%d", i, 30000+i%10)
		if seen[k] != 1 {
			t.Errorf("%s listed %d times", k, seen[k])
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", k, n)
		}
	}
}

func TestNamesPageScanLimit(t *testing.T) {
	defer func(l int) { pageScanLimit = l }(pageScanLimit)
	pageScanLimit = 1000
	s := pageServer(t, 1050)
	p, err := s.NamesPage(NamesQuery{Contains: "no-such-thing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 0 || p.Next == "" || p.Scanned != 1000 || p.Matches != -1 {
		t.Fatalf("first page: %d entries, next %q, scanned %d, matches %d", len(p.Entries), p.Next, p.Scanned, p.Matches)
	}
	p, _ = s.NamesPage(NamesQuery{Contains: "no-such-thing", Cursor: p.Next})
	if p.Next != "" || p.Scanned != 50 {
		t.Fatalf("second page: next %q, scanned %d", p.Next, p.Scanned)
	}
}

// BenchmarkNamesPage: one page of a 1 000 000-name store, without a
// filter, from the middle, and a substring search.
func BenchmarkNamesPage(b *testing.B) {
	s := pageServer(b, 1_000_000)
	mid, _ := s.NamesPage(NamesQuery{Prefix: "svc-5"})
	for _, bc := range []struct {
		name string
		q    NamesQuery
	}{
		{"first", NamesQuery{}},
		{"middle", NamesQuery{Cursor: mid.Next}},
		{"limit1000", NamesQuery{Limit: 1000}},
		{"prefix", NamesQuery{Prefix: "svc-7777"}},
		{"contains-rare", NamesQuery{Contains: "SVC-99999"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.NamesPage(bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
