package namesvc

import "slices"

// Store keeps the server's registrations, one name space per group.
//
// The Server calls a Store with its own lock held, one call at a time, so
// implementations need no locking of their own; they must not block for
// long, and must not keep or call back into the Server. Registrations are
// immutable once stored, except for the server's bookkeeping fields, which a
// Store neither reads nor writes.
//
// MemStore is the in-memory implementation. Another backend (etcd, for
// servers sharing names) implements the same seven methods and is passed in
// ServerConfig.Store; no protocol code changes.
type Store interface {
	// Put stores r in the store of r.Group, creating that group if needed.
	// If a registration of the same group and name satisfies replaces, the
	// first such one is replaced in place (keeping its position in
	// registration order) and returned; otherwise r is appended after the
	// name's other registrations and Put returns nil.
	Put(r *Registration, replaces func(old *Registration) bool) (old *Registration)
	// Get appends the registrations of name in group to dst, in
	// registration order, and returns the extended slice.
	Get(dst []*Registration, group, name string) []*Registration
	// Delete removes r and reports whether it was stored. A group stays
	// known when its last registration goes.
	Delete(r *Registration) bool
	// AddGroup creates group if it does not exist.
	AddGroup(group string)
	// HasGroup reports whether group has been created (by a registration
	// or AddGroup). The default group "" always exists.
	HasGroup(group string) bool
	// Range calls fn for every registration, grouped by group and name, in
	// registration order within a name, until fn returns false.
	Range(fn func(r *Registration) bool)
	// Len returns the number of stored registrations.
	Len() int
}

// MemStore is the in-memory Store: a map of groups, each a map of names to
// their registrations in registration order. The zero value is not ready;
// use NewMemStore.
type MemStore struct {
	groups map[string]map[string][]*Registration
	n      int
}

// NewMemStore returns an empty in-memory store holding the default group.
func NewMemStore() *MemStore {
	return &MemStore{groups: map[string]map[string][]*Registration{"": {}}}
}

// Put implements Store.
func (m *MemStore) Put(r *Registration, replaces func(old *Registration) bool) *Registration {
	g := m.groups[r.Group]
	if g == nil {
		g = map[string][]*Registration{}
		m.groups[r.Group] = g
	}
	regs := g[r.Name]
	if replaces != nil {
		for i, old := range regs {
			if replaces(old) {
				regs[i] = r
				return old
			}
		}
	}
	g[r.Name] = append(regs, r)
	m.n++
	return nil
}

// Get implements Store.
func (m *MemStore) Get(dst []*Registration, group, name string) []*Registration {
	return append(dst, m.groups[group][name]...)
}

// Delete implements Store.
func (m *MemStore) Delete(r *Registration) bool {
	g := m.groups[r.Group]
	regs := g[r.Name]
	i := slices.Index(regs, r)
	if i < 0 {
		return false
	}
	if len(regs) == 1 {
		delete(g, r.Name)
	} else {
		regs = slices.Delete(regs, i, i+1)
		g[r.Name] = regs
	}
	m.n--
	return true
}

// AddGroup implements Store.
func (m *MemStore) AddGroup(group string) {
	if _, ok := m.groups[group]; !ok {
		m.groups[group] = map[string][]*Registration{}
	}
}

// HasGroup implements Store.
func (m *MemStore) HasGroup(group string) bool {
	_, ok := m.groups[group]
	return ok
}

// Range implements Store.
func (m *MemStore) Range(fn func(r *Registration) bool) {
	for _, g := range m.groups {
		for _, regs := range g {
			for _, r := range regs {
				if !fn(r) {
					return
				}
			}
		}
	}
}

// Len implements Store.
func (m *MemStore) Len() int { return m.n }
