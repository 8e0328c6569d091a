package namesvc

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/stk-go/stk/seq"
)

// Page sizes and bounds of NamesPage.
const (
	// DefaultPageLimit is the page size when NamesQuery.Limit is 0.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page.
	MaxPageLimit = 1000
	// PageScanLimit bounds the registrations one NamesPage examines, so
	// that a search matching little of a large store answers in tens of
	// milliseconds: past it the page ends early with a Next cursor to go on
	// from.
	PageScanLimit = 250_000
	// pageBatch is how many names are examined per hold of the read lock,
	// so that registrations are not held up behind a long listing.
	pageBatch = 2048
)

// pageScanLimit is PageScanLimit; tests lower it.
var pageScanLimit = PageScanLimit

// ErrBadCursor is returned by NamesPage for a cursor it did not make.
var ErrBadCursor = errors.New("namesvc: invalid page cursor; start again without one")

// NamesQuery selects a page of registrations.
type NamesQuery struct {
	// Group, if HasGroup, restricts the page to one group ("" is the
	// default group).
	Group    string
	HasGroup bool
	// Prefix restricts the page to names that start with it (byte-wise,
	// case-sensitive). It is served from the ordered index: a prefix
	// matching few names is as cheap as a page of all names.
	Prefix string
	// Contains restricts the page to registrations that contain it,
	// ignoring ASCII case, in the name, the group, an address
	// ("[protocol:]ip:port") or the registrant's address. It is a scan:
	// at most PageScanLimit registrations are examined per page.
	Contains string
	// Cursor continues a listing after the page that returned it as Next;
	// "" starts at the first name. A cursor stays valid while names come
	// and go: the next page starts after the last name it listed.
	Cursor string
	// Limit is the page size; 0 means DefaultPageLimit, and it is at most
	// MaxPageLimit.
	Limit int
}

// NamesPage is one page of registrations, sorted by group, then name, then
// registration order.
type NamesPage struct {
	Entries []Entry
	// Next is the cursor of the next page; "" when the listing is at its
	// end. A page that reached PageScanLimit may have fewer entries than
	// asked for (even none) and still a Next.
	Next string
	// Total counts the stored registrations, whatever the query
	// (lingering ones included, and expired ones until the collector's
	// next run).
	Total int
	// Matches counts the registrations that match the query: Total
	// without a filter; with one, exact only when this is the first page
	// and the whole match range was examined within PageScanLimit,
	// otherwise -1 (unknown).
	Matches int
	// Scanned is how many registrations the page examined.
	Scanned int
}

// pagePos is a place in the listing: after registration serial of key
// (serial 0: before the name's first registration, MaxUint64: after its
// last).
type pagePos struct {
	key    nameKey
	serial uint64
}

func (p pagePos) cursor() string {
	b := make([]byte, 0, 4+len(p.key.group)+len(p.key.name)+20)
	b = append(b, '1')
	b = append(b, p.key.group...)
	b = append(b, 0)
	b = append(b, p.key.name...)
	b = append(b, 0)
	b = strconv.AppendUint(b, p.serial, 10)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(c string) (pagePos, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || b[0] != '1' {
		return pagePos{}, ErrBadCursor
	}
	parts := strings.Split(string(b[1:]), "\x00")
	if len(parts) != 3 {
		return pagePos{}, ErrBadCursor
	}
	serial, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return pagePos{}, ErrBadCursor
	}
	return pagePos{nameKey{parts[0], parts[1]}, serial}, nil
}

// NamesPage returns one page of the registrations still answered that
// match q. It walks the store's ordered index from the cursor, holding the
// read lock for at most pageBatch names at a time, and never copies or
// sorts the store: its cost is the page plus what the filter skips
// (bounded by PageScanLimit).
func (s *Server) NamesPage(q NamesQuery) (NamesPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	pos := pagePos{}
	if q.Cursor != "" {
		var err error
		if pos, err = parseCursor(q.Cursor); err != nil {
			return NamesPage{}, err
		}
	}
	filtered := q.HasGroup || q.Prefix != "" || q.Contains != ""
	counting := filtered && q.Cursor == "" // count the matches past the page
	lq := strings.ToLower(q.Contains)
	if q.HasGroup && pos.key.compare(nameKey{q.Group, q.Prefix}) < 0 {
		pos = pagePos{key: nameKey{q.Group, q.Prefix}}
	}

	page := NamesPage{Entries: []Entry{}, Matches: -1}
	var last pagePos   // the last entry listed
	more := false      // a match exists after the page
	done := false      // the listing reached its end
	exhausted := false // PageScanLimit reached
	for !done && !exhausted && (!more || counting) {
		now := s.now()
		names := 0
		s.mu.RLock()
		page.Total = s.store.Len() + s.remoteLenLocked()
		done = true // unless the walk stops early
		s.ascendLocked(pos.key.group, pos.key.name, func(g, n string, regs []*Registration) bool {
			k := nameKey{g, n}
			if q.HasGroup && g != q.Group {
				return false // past the group: the end
			}
			if q.Prefix != "" && !strings.HasPrefix(n, q.Prefix) {
				switch {
				case n < q.Prefix:
					pos, done = pagePos{key: nameKey{g, q.Prefix}}, false
				case q.HasGroup:
					return false
				default: // past the prefix in this group: on to the next group
					pos, done = pagePos{key: nameKey{g + "\x00", ""}}, false
				}
				return false
			}
			if names++; names > pageBatch {
				pos, done = pagePos{key: k}, false
				return false
			}
			after := uint64(0)
			if k == pos.key {
				after = pos.serial
			}
			for _, r := range regs {
				if r.serial <= after {
					continue
				}
				if page.Scanned >= pageScanLimit {
					pos, done, exhausted = pagePos{k, r.serial - 1}, false, true
					return false
				}
				page.Scanned++
				if !s.visibleLocked(r, now) || (lq != "" && !matchContains(r, lq)) {
					continue
				}
				if len(page.Entries) < limit {
					page.Entries = append(page.Entries, s.entryLocked(r, now))
					last = pagePos{k, r.serial}
					continue
				}
				if !more {
					more = true
					page.Matches = len(page.Entries)
				}
				if !counting {
					pos, done = pagePos{k, r.serial - 1}, false
					return false
				}
				page.Matches++
			}
			pos = pagePos{k, math.MaxUint64}
			return true
		})
		s.mu.RUnlock()
	}
	switch {
	case more:
		page.Next = last.cursor()
	case exhausted:
		page.Next = pos.cursor()
	}
	switch {
	case !filtered:
		page.Matches = page.Total
	case counting && done && !exhausted:
		if !more {
			page.Matches = len(page.Entries)
		}
	default:
		page.Matches = -1
	}
	return page, nil
}

// matchContains reports whether r contains lq (lower case) in its name,
// group, an address or its registrant's address, ignoring ASCII case. It
// allocates nothing: a search scans a large part of the store.
func matchContains(r *Registration, lq string) bool {
	if containsFold(r.Name, lq) || containsFold(r.Group, lq) {
		return true
	}
	var buf [64]byte
	for i, e := range r.Elements {
		if e.UserType != seq.UTNSConnectIPv4 || len(e.Data) != sizeConnectIPv4 {
			continue
		}
		b := buf[:0]
		// The address's protocol is the NS_PROTOCOL element right after it.
		if i+1 < len(r.Elements) && r.Elements[i+1].UserType == seq.UTNSProtocol {
			if p := r.Elements[i+1].Data; len(p) > 1 {
				b = append(append(b, p[:len(p)-1]...), ':')
			}
		}
		b = decodeSockaddr(e.Data).AppendTo(b)
		if containsFold(string(b), lq) { // no allocation: the conversion does not escape
			return true
		}
	}
	if r.Registrant.IsValid() {
		return containsFold(string(r.Registrant.AppendTo(buf[:0])), lq)
	}
	return false
}

// containsFold reports whether s contains lq (lower case), ignoring ASCII
// case.
func containsFold(s, lq string) bool {
	n := len(lq)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && lower(s[i+j]) == lq[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
