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
// ServerConfig.Store; no protocol code changes. Ascend must find its
// starting key without visiting the names before it (an ordered index):
// the status pages list the names a page at a time from it, and a store
// of a million names must not be scanned for each page.
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
	// Ascend calls fn for every name with registrations whose (group,
	// name) is at or after (group, name), in order of group then name
	// (byte-wise), until fn returns false. regs are the name's
	// registrations in registration order; fn must not keep or change
	// them, nor call the store.
	Ascend(group, name string, fn func(group, name string, regs []*Registration) bool)
	// Len returns the number of stored registrations.
	Len() int
}

// MemStore is the in-memory Store: a map from group and name to the
// name's registrations in registration order, and an ordered index of
// the same lists for Ascend. The zero value is not ready; use NewMemStore.
type MemStore struct {
	names  map[nameKey]*nameList
	groups map[string]struct{}
	index  nameIndex
	n      int
}

// NewMemStore returns an empty in-memory store holding the default group.
func NewMemStore() *MemStore {
	return &MemStore{names: map[nameKey]*nameList{}, groups: map[string]struct{}{"": {}}}
}

// Put implements Store.
func (m *MemStore) Put(r *Registration, replaces func(old *Registration) bool) *Registration {
	k := nameKey{r.Group, r.Name}
	l := m.names[k]
	if l == nil {
		m.groups[r.Group] = struct{}{}
		l = &nameList{key: k}
		m.names[k] = l
		m.index.insert(l)
	}
	if replaces != nil {
		for i, old := range l.regs {
			if replaces(old) {
				l.regs[i] = r
				return old
			}
		}
	}
	l.regs = append(l.regs, r)
	m.n++
	return nil
}

// Get implements Store.
func (m *MemStore) Get(dst []*Registration, group, name string) []*Registration {
	if l := m.names[nameKey{group, name}]; l != nil {
		return append(dst, l.regs...)
	}
	return dst
}

// Delete implements Store.
func (m *MemStore) Delete(r *Registration) bool {
	l := m.names[nameKey{r.Group, r.Name}]
	if l == nil {
		return false
	}
	i := slices.Index(l.regs, r)
	if i < 0 {
		return false
	}
	m.n--
	if len(l.regs) == 1 {
		delete(m.names, l.key)
		m.index.remove(l)
		return true
	}
	l.regs = slices.Delete(l.regs, i, i+1)
	return true
}

// AddGroup implements Store.
func (m *MemStore) AddGroup(group string) { m.groups[group] = struct{}{} }

// HasGroup implements Store.
func (m *MemStore) HasGroup(group string) bool {
	_, ok := m.groups[group]
	return ok
}

// Ascend implements Store.
func (m *MemStore) Ascend(group, name string, fn func(group, name string, regs []*Registration) bool) {
	m.index.ascend(nameKey{group, name}, func(l *nameList) bool { return fn(l.key.group, l.key.name, l.regs) })
}

// Len implements Store.
func (m *MemStore) Len() int { return m.n }
