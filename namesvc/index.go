package namesvc

import (
	"cmp"
	"slices"
	"sort"
	"strings"
)

// nameKey identifies a name in its group; keys order by group, then
// name, byte-wise.
type nameKey struct{ group, name string }

func (a nameKey) compare(b nameKey) int {
	return cmp.Or(strings.Compare(a.group, b.group), strings.Compare(a.name, b.name))
}

// nameList is one name's registrations, in registration order.
type nameList struct {
	key  nameKey
	regs []*Registration
}

// nameIndex keeps the name lists sorted by key so that a page of names
// can be listed from any key without copying or sorting the store: a
// sorted list of sorted chunks (a two-level B+ tree). Inserting or
// deleting moves at most indexChunkMax pointers in a chunk plus one
// pointer per chunk, about 2 k for a million names; finding a key is two
// binary searches.
type nameIndex struct {
	chunks [][]*nameList // each sorted, non-empty, at most indexChunkMax long
	n      int
}

const indexChunkMax = 512

// chunkFor returns the first chunk whose last key is >= k, or
// len(x.chunks).
func (x *nameIndex) chunkFor(k nameKey) int {
	return sort.Search(len(x.chunks), func(i int) bool {
		c := x.chunks[i]
		return c[len(c)-1].key.compare(k) >= 0
	})
}

func searchChunk(c []*nameList, k nameKey) int {
	return sort.Search(len(c), func(i int) bool { return c[i].key.compare(k) >= 0 })
}

// insert adds l, whose key must not be in the index.
func (x *nameIndex) insert(l *nameList) {
	x.n++
	if len(x.chunks) == 0 {
		x.chunks = append(x.chunks, []*nameList{l})
		return
	}
	ci := min(x.chunkFor(l.key), len(x.chunks)-1) // past the end: the last chunk
	c := x.chunks[ci]
	c = slices.Insert(c, searchChunk(c, l.key), l)
	if len(c) <= indexChunkMax {
		x.chunks[ci] = c
		return
	}
	half := len(c) / 2
	right := slices.Clone(c[half:])
	clear(c[half:])
	x.chunks[ci] = c[:half]
	x.chunks = slices.Insert(x.chunks, ci+1, right)
}

// remove deletes l and reports whether it was there.
func (x *nameIndex) remove(l *nameList) bool {
	ci := x.chunkFor(l.key)
	if ci == len(x.chunks) {
		return false
	}
	c := x.chunks[ci]
	i := searchChunk(c, l.key)
	if i == len(c) || c[i] != l {
		return false
	}
	x.n--
	c = slices.Delete(c, i, i+1)
	switch {
	case len(c) == 0:
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
		return true
	case len(c) < indexChunkMax/4 && ci+1 < len(x.chunks) && len(c)+len(x.chunks[ci+1]) <= indexChunkMax:
		// Merge a small chunk into its neighbour, so that chunks stay
		// large after many deletions.
		c = append(c, x.chunks[ci+1]...)
		x.chunks = slices.Delete(x.chunks, ci+1, ci+2)
	}
	x.chunks[ci] = c
	return true
}

// ascend calls fn for every list with a key >= from, in order, until fn
// returns false. fn must not change the index.
func (x *nameIndex) ascend(from nameKey, fn func(*nameList) bool) {
	ci := x.chunkFor(from)
	if ci == len(x.chunks) {
		return
	}
	for i := searchChunk(x.chunks[ci], from); ci < len(x.chunks); ci, i = ci+1, 0 {
		for _, l := range x.chunks[ci][i:] {
			if !fn(l) {
				return
			}
		}
	}
}

func (x *nameIndex) len() int { return x.n }
