package namesvc

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// The replication hooks (replica.go): the export hand-off of a server's
// own registrations and the other nodes' registrations it applies.

// remoteReg builds another node's registration as the cluster package
// does: the elements a registration stores, from info.
func remoteReg(info Info) *Registration {
	q := buildRegister(0, &info)
	var es []seq.Element
	for _, e := range q.Elements {
		if e.UserType != seq.UTNSRequestID {
			es = append(es, seq.Element{UserType: e.UserType, Data: slices.Clone(e.Data)})
		}
	}
	return &Registration{Name: info.Name, Group: info.Group, Elements: es, Linger: info.Linger,
		Registrant: netip.MustParseAddrPort("10.0.0.9:5000"), Transport: flow.TCP, Registered: time.Unix(1_800_000_000, 0)}
}

func addrInfo(name, addr string) Info {
	i := regInfo(name)
	i.Addresses = []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort(addr)}}
	return i
}

// answerAddrs looks name up at s and returns the first address of each
// answer, in answer order.
func answerAddrs(t *testing.T, s *Server, name, group string) []string {
	t.Helper()
	q := testpeer.New(flow.TCP, "127.0.0.1:49999")
	s.Handle(q, buildQuery(seq.TypeQuery, 7, name, group, false))
	var out []string
	for _, a := range q.Take() {
		var info Info
		parseAnswer(a, &info)
		if len(info.Addresses) == 0 {
			out = append(out, "-")
			continue
		}
		out = append(out, info.Addresses[0].Addr.String())
	}
	return out
}

func notified(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestExportLocalChanges(t *testing.T) {
	s, clk := newTestServer(t, ServerConfig{})
	c1 := testpeer.New(flow.TCP, "127.0.0.1:40001")
	// Before StartExport nothing is recorded.
	s.Handle(c1, buildRegister(1, new(addrInfo("early", "127.0.0.1:1"))))
	ch := s.StartExport()
	if notified(ch) {
		t.Fatal("notified of a registration made before StartExport")
	}
	if got := s.LocalRegistrations(nil); len(got) != 1 || got[0].Name != "early" || got[0].Reg == nil || got[0].Serial == 0 {
		t.Fatalf("LocalRegistrations: %+v", got)
	}

	s.Handle(c1, buildRegister(2, new(addrInfo("svc", "127.0.0.1:2"))))
	// The same connection registers again twice: replacements, coalesced
	// into the latest state, under the same serial.
	s.Handle(c1, buildRegister(3, new(addrInfo("svc", "127.0.0.1:3"))))
	s.Handle(c1, buildRegister(4, new(addrInfo("svc", "127.0.0.1:4"))))
	if !notified(ch) {
		t.Fatal("no notification after registrations")
	}
	got, resync := s.TakeLocalChanges(nil)
	if resync || len(got) != 1 {
		t.Fatalf("changes %+v resync %v, want one coalesced change", got, resync)
	}
	c := got[0]
	if c.Name != "svc" || c.Reg == nil || c.Reg.Info().Addresses[0].Addr.Port() != 4 || c.Reg.Node() != "" {
		t.Fatalf("change %+v: want svc at port 4", c)
	}
	serial := c.Serial
	if got, _ := s.TakeLocalChanges(nil); len(got) != 0 {
		t.Fatalf("changes taken twice: %+v", got)
	}

	// Disconnect: each registration now lingers, with its expiry (the
	// linger of 5 s from now); the removal after the linger is a change too.
	s.Disconnect(c1)
	got, _ = s.TakeLocalChanges(nil)
	slices.SortFunc(got, func(a, b LocalChange) int { return strings.Compare(a.Name, b.Name) })
	if want := clk.Now().Add(5 * time.Second); len(got) != 2 || got[0].Name != "early" || got[1].Name != "svc" ||
		got[1].Reg == nil || got[1].Serial != serial || !got[0].Expires.Equal(want) || !got[1].Expires.Equal(want) {
		t.Fatalf("lingering: %+v, want early and svc expiring at %v", got, want)
	}
	if l := s.LocalRegistrations(nil); len(l) != 2 || l[0].Expires.IsZero() {
		t.Fatalf("LocalRegistrations of lingering registrations: %+v, want their expiry", l)
	}
	clk.Advance(6 * time.Second)
	if n := s.collect(clk.Now()); n != 2 {
		t.Fatalf("collect removed %d, want 2", n)
	}
	got, _ = s.TakeLocalChanges(nil)
	slices.SortFunc(got, func(a, b LocalChange) int { return strings.Compare(a.Name, b.Name) })
	if len(got) != 2 || got[0].Name != "early" || got[0].Reg != nil || got[1].Name != "svc" || got[1].Reg != nil || got[1].Serial != serial {
		t.Fatalf("removals: %+v", got)
	}

	// A lingering twin replaced by a new connection keeps the serial.
	c2 := testpeer.New(flow.TCP, "127.0.0.1:40002")
	s.Handle(c2, buildRegister(5, new(addrInfo("twin", "127.0.0.1:5"))))
	s.Disconnect(c2)
	c3 := testpeer.New(flow.TCP, "127.0.0.1:40003")
	s.Handle(c3, buildRegister(6, new(addrInfo("twin", "127.0.0.1:5"))))
	got, _ = s.TakeLocalChanges(nil)
	if len(got) != 1 || got[0].Reg == nil || got[0].Reg.Registrant.Port() != 40003 || !got[0].Expires.IsZero() {
		t.Fatalf("twin: %+v, want the new registration, not lingering", got)
	}
}

func TestExportOverflowAsksForResync(t *testing.T) {
	defer func(n int) { maxPendingExport = n }(maxPendingExport)
	maxPendingExport = 3
	s, _ := newTestServer(t, ServerConfig{})
	ch := s.StartExport()
	c := testpeer.New(flow.TCP, "127.0.0.1:40001")
	for i := range 5 {
		s.Handle(c, buildRegister(uint64(i+1), new(addrInfo(fmt.Sprint("n", i), "127.0.0.1:1"))))
	}
	if !notified(ch) {
		t.Fatal("not notified")
	}
	got, resync := s.TakeLocalChanges(nil)
	if !resync {
		t.Fatalf("no resync after overflow; changes %+v", got)
	}
	if n := len(s.LocalRegistrations(nil)); n != 5 {
		t.Fatalf("LocalRegistrations: %d, want 5", n)
	}
	// The next round is back to changes.
	s.Handle(c, buildRegister(9, new(addrInfo("n9", "127.0.0.1:1"))))
	if got, resync := s.TakeLocalChanges(nil); resync || len(got) != 1 {
		t.Fatalf("after resync: %+v %v", got, resync)
	}
}

func TestApplyRemoteLookupOrderAndPushes(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{Limits: Limits{Registrations: 2}})
	ch := s.StartExport()
	sub := testpeer.New(flow.TCP, "127.0.0.1:41000")
	s.Handle(sub, buildQuery(seq.TypeSubscribe, 0x77, "svc", "", false))
	sub.Take()

	b := remoteReg(addrInfo("svc", "10.0.0.2:2"))
	a := remoteReg(addrInfo("svc", "10.0.0.1:1"))
	if n := s.ApplyRemote([]RemoteChange{
		{Key: RemoteKey{Node: "b", Name: "svc", Serial: 1}, Reg: b},
		{Key: RemoteKey{Node: "a", Name: "svc", Serial: 4}, Reg: a},
	}); n != 2 {
		t.Fatalf("ApplyRemote applied %d, want 2", n)
	}
	pushed := sub.Take()
	if len(pushed) != 2 || elems(pushed[0]) != elems(answerSequence(b, u64Bytes(0x77))) {
		t.Fatalf("subscriber got %d pushes, want one per remote registration, as for local ones: %v", len(pushed), pushed)
	}
	// A local registration: answered first.
	c := testpeer.New(flow.TCP, "127.0.0.1:40001")
	s.Handle(c, buildRegister(1, new(addrInfo("svc", "127.0.0.1:3"))))
	if len(sub.Take()) != 1 {
		t.Fatal("local registration not pushed")
	}
	if got, want := answerAddrs(t, s, "svc", ""), []string{"127.0.0.1:3", "10.0.0.2:2", "10.0.0.1:1"}; !slices.Equal(got, want) {
		t.Fatalf("lookup order %v, want %v (local first, then remote as learned)", got, want)
	}
	// Remote registrations are never exported.
	got, _ := s.TakeLocalChanges(nil)
	if len(got) != 1 || got[0].Reg.Node() != "" {
		t.Fatalf("exported %+v, want only the local registration", got)
	}
	_ = notified(ch)

	// A re-put of the same registration (resync) changes nothing and pushes nothing.
	v := s.NamesVersion()
	if n := s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "b", Name: "svc", Serial: 1}, Reg: remoteReg(addrInfo("svc", "10.0.0.2:2"))}}); n != 0 || len(sub.Take()) != 0 || s.NamesVersion() != v {
		t.Fatalf("identical re-put applied %d", n)
	}
	// A replacement keeps its place and is pushed.
	s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "b", Name: "svc", Serial: 1}, Reg: remoteReg(addrInfo("svc", "10.0.0.2:9"))}})
	if len(sub.Take()) != 1 {
		t.Fatal("replacement not pushed")
	}
	if got, want := answerAddrs(t, s, "svc", ""), []string{"127.0.0.1:3", "10.0.0.2:9", "10.0.0.1:1"}; !slices.Equal(got, want) {
		t.Fatalf("lookup after replacement %v, want %v", got, want)
	}

	// Remote registrations do not count against the local limit of 2.
	s.Handle(c, buildRegister(2, new(addrInfo("other", "127.0.0.1:4"))))
	if r := c.Take(); len(r) != 2 { // the replies to both registrations
		t.Fatalf("second local registration refused with 2 remote ones held: %v", r)
	}
	st := s.Stats()
	if st.Registrations != 2 || st.Remote != 2 {
		t.Fatalf("stats: %d local, %d remote", st.Registrations, st.Remote)
	}

	// Removal: lookups stop answering it.
	if n := s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "b", Name: "svc", Serial: 1}}, {Key: RemoteKey{Node: "x", Name: "svc", Serial: 1}}}); n != 1 {
		t.Fatalf("removal applied %d, want 1 (the unknown key is no change)", n)
	}
	if got, want := answerAddrs(t, s, "svc", ""), []string{"127.0.0.1:3", "10.0.0.1:1"}; !slices.Equal(got, want) {
		t.Fatalf("lookup after removal %v, want %v", got, want)
	}
	if nodes := s.RemoteNodes(); len(nodes) != 3 || nodes["a"].IsZero() {
		t.Fatalf("RemoteNodes %v", nodes)
	}
}

func TestApplyRemoteGroupsAndListings(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	in := addrInfo("m", "10.0.0.1:1")
	in.Group = "g"
	s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "a", Group: "g", Name: "m", Serial: 1}, Reg: remoteReg(in)}})
	// The group exists here now: a lookup in it does not fall back to the
	// default store.
	if got := answerAddrs(t, s, "m", "g"); len(got) != 1 {
		t.Fatalf("lookup in the remote registration's group: %v", got)
	}
	c := testpeer.New(flow.TCP, "127.0.0.1:40001")
	for i, n := range []string{"a", "m", "z"} {
		s.Handle(c, buildRegister(uint64(i+1), new(addrInfo(n, "127.0.0.1:1"))))
	}
	for i, n := range []string{"b", "m", "zz"} {
		s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "n2", Name: n, Serial: uint64(i + 1)}, Reg: remoteReg(addrInfo(n, "10.0.0.2:2"))}})
	}
	var names []string
	for _, e := range s.Names() {
		names = append(names, e.Group+"/"+e.Name+"@"+e.Node)
	}
	want := []string{"/a@", "/b@n2", "/m@", "/m@n2", "/z@", "/zz@n2", "g/m@a"}
	if !slices.Equal(names, want) {
		t.Fatalf("Names %v, want %v", names, want)
	}
	// Pages of one entry walk the same list, across local and remote
	// registrations of one name.
	var paged []string
	cursor := ""
	for range 20 {
		p, err := s.NamesPage(NamesQuery{Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			paged = append(paged, e.Group+"/"+e.Name+"@"+e.Node)
		}
		if p.Total != 7 {
			t.Fatalf("page total %d, want 7", p.Total)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("pages %v, want %v", paged, want)
	}
	p, _ := s.NamesPage(NamesQuery{Prefix: "m"})
	if len(p.Entries) != 3 || p.Entries[1].Node != "n2" || p.Entries[2].Node != "a" { // m in both groups
		t.Fatalf("prefix page %+v", p.Entries)
	}
}

// Another node's lingering registration: lookups here stop answering it
// at its expiry, as its node does, before its removal arrives; the
// expiry alone is never pushed, a registration back after a reconnect
// (a new Registered time) is.
func TestApplyRemoteLingering(t *testing.T) {
	s, clk := newTestServer(t, ServerConfig{})
	sub := testpeer.New(flow.TCP, "127.0.0.1:41000")
	s.Handle(sub, buildQuery(seq.TypeSubscribe, 0x77, "svc", "", false))
	sub.Take()
	key := RemoteKey{Node: "a", Name: "svc", Serial: 3}
	s.ApplyRemote([]RemoteChange{{Key: key, Reg: remoteReg(addrInfo("svc", "10.0.0.1:1"))}})
	if len(sub.Take()) != 1 {
		t.Fatal("remote registration not pushed")
	}

	// Its client went at its node: it lingers 2 s.
	expires := clk.Now().Add(2 * time.Second)
	v := s.NamesVersion()
	if n := s.ApplyRemote([]RemoteChange{{Key: key, Reg: remoteReg(addrInfo("svc", "10.0.0.1:1")), Expires: expires}}); n != 1 {
		t.Fatalf("the expiry applied %d changes, want 1", n)
	}
	if p := sub.Take(); len(p) != 0 {
		t.Fatalf("lingering pushed %d answers: its node pushes none", len(p))
	}
	if s.NamesVersion() == v {
		t.Fatal("NamesVersion unchanged: the Names page would not show it lingering")
	}
	if e := s.Names(); len(e) != 1 || !e[0].Lingering || !e[0].Expires.Equal(expires) || e[0].Node != "a" {
		t.Fatalf("Names: %+v, want svc of node a lingering until %v", e, expires)
	}
	clk.Advance(1999 * time.Millisecond)
	if got := answerAddrs(t, s, "svc", ""); len(got) != 1 {
		t.Fatalf("answers within the linger: %v", got)
	}
	clk.Advance(time.Millisecond)
	if got := answerAddrs(t, s, "svc", ""); len(got) != 0 {
		t.Fatalf("answered at its expiry, before its node's removal arrived: %v", got)
	}
	if len(s.Names()) != 0 {
		t.Fatal("listed after its expiry")
	}
	// The same re-put (a resync) changes nothing.
	if n := s.ApplyRemote([]RemoteChange{{Key: key, Reg: remoteReg(addrInfo("svc", "10.0.0.1:1")), Expires: expires}}); n != 0 {
		t.Fatalf("identical re-put applied %d", n)
	}

	// Back after a reconnect at its node: a new registration there (the
	// same serial, a new Registered time, no expiry), pushed here too.
	back := remoteReg(addrInfo("svc", "10.0.0.1:1"))
	back.Registered = back.Registered.Add(time.Minute)
	if n := s.ApplyRemote([]RemoteChange{{Key: key, Reg: back}}); n != 1 {
		t.Fatalf("the registration back applied %d", n)
	}
	if p := sub.Take(); len(p) != 1 {
		t.Fatalf("the registration back pushed %d answers, want 1", len(p))
	}
	if got := answerAddrs(t, s, "svc", ""); len(got) != 1 {
		t.Fatalf("answers after it came back: %v", got)
	}
	if e := s.Names(); len(e) != 1 || e[0].Lingering {
		t.Fatalf("Names after it came back: %+v", e)
	}
}

// Groups created by other nodes' registrations count in Stats.Groups, not
// against the local Groups limit.
func TestApplyRemoteGroupsCount(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{Limits: Limits{Groups: 2}}) // the default group and one more
	if g := s.Stats().Groups; g != 1 {
		t.Fatalf("groups at start: %d, want 1 (the default)", g)
	}
	for i, g := range []string{"r1", "r2", "r1"} {
		in := addrInfo("m", "10.0.0.1:1")
		in.Group = g
		s.ApplyRemote([]RemoteChange{{Key: RemoteKey{Node: "a", Group: g, Name: "m", Serial: uint64(i + 1)}, Reg: remoteReg(in)}})
	}
	if g := s.Stats().Groups; g != 3 {
		t.Fatalf("groups with two made by remote registrations: %d, want 3", g)
	}
	c := testpeer.New(flow.TCP, "127.0.0.1:40001")
	in := addrInfo("x", "127.0.0.1:1")
	in.Group = "local"
	s.Handle(c, buildRegister(1, &in))
	if st := s.Stats(); st.Refused[RefusedGroups] != 0 || st.Registrations != 1 || st.Groups != 4 {
		t.Fatalf("a local registration in a new group with remote groups past the local limit: refused %d, %d registrations, %d groups; want it stored, 4 groups",
			st.Refused[RefusedGroups], st.Registrations, st.Groups)
	}
}

// TakeLocalChanges while the server records changes: run with -race, it
// caught TakeLocalChanges reading the server's (empty) pending map after
// releasing its lock.
func TestTakeLocalChangesConcurrent(t *testing.T) {
	s, _ := newTestServer(t, ServerConfig{})
	ch := s.StartExport()
	c := testpeer.New(flow.TCP, "127.0.0.1:40001")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			s.Handle(c, buildRegister(uint64(i+1), new(addrInfo(fmt.Sprint("n", i%50), "127.0.0.1:1"))))
			c.Take()
		}
	}()
	seen := map[uint64]bool{}
	for {
		got, _ := s.TakeLocalChanges(nil)
		for _, ch := range got {
			seen[ch.Serial] = true
		}
		select {
		case <-done:
			got, _ := s.TakeLocalChanges(nil)
			for _, ch := range got {
				seen[ch.Serial] = true
			}
			if len(seen) != 50 {
				t.Fatalf("changes of %d registrations taken, want 50", len(seen))
			}
			_ = notified(ch)
			return
		case <-ch:
		default:
		}
	}
}
