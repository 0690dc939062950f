package embedded

import (
	"slices"
	"sort"
)

// revision is one version of a key in the index. The value itself stays in
// the log: seg/off/vlen say where.
type revision struct {
	mod, create, version, lease int64
	off                         int64
	seg                         uint32
	vlen                        uint32
	tomb                        bool
}

// keyIndex holds every retained revision of one key, oldest first.
type keyIndex struct {
	key  string
	revs []revision
	// counted is set while the tree counts the key as live at the head
	// (see ctree.fix); it fits in the struct's padding.
	counted bool
}

// at returns the position of the newest revision with mod <= rev, or -1.
func (k *keyIndex) at(rev int64) int {
	n := len(k.revs)
	if n == 0 {
		return -1
	}
	if k.revs[n-1].mod <= rev { // the common case: reading the latest
		return n - 1
	}
	return sort.Search(n, func(i int) bool { return k.revs[i].mod > rev }) - 1
}

// before returns the position of the newest revision with mod < rev, or -1.
func (k *keyIndex) before(rev int64) int { return k.at(rev - 1) }

// live returns the revision visible at rev, if the key exists then.
func (k *keyIndex) live(rev int64) (revision, bool) {
	i := k.at(rev)
	if i < 0 || k.revs[i].tomb {
		return revision{}, false
	}
	return k.revs[i], true
}

// compact drops the revisions that rev makes unreachable: everything older
// than the newest revision <= rev, and that one too if it is a delete. It
// reports whether the key has no revisions left.
func (k *keyIndex) compact(rev int64) (empty bool) {
	i := k.at(rev)
	if i < 0 {
		return len(k.revs) == 0
	}
	drop := i
	if k.revs[i].tomb {
		drop = i + 1
	}
	if drop == 0 {
		return false
	}
	rest := len(k.revs) - drop
	if rest == 0 {
		k.revs = nil
		return true
	}
	if cap(k.revs) > 8 && cap(k.revs) > 4*rest {
		k.revs = append(make([]revision, 0, rest), k.revs[drop:]...)
		return false
	}
	copy(k.revs, k.revs[drop:])
	clear(k.revs[rest:])
	k.revs = k.revs[:rest]
	return false
}

// find returns the position of the revision with mod == rev, or -1.
func (k *keyIndex) find(rev int64) int {
	i := k.at(rev)
	if i >= 0 && k.revs[i].mod == rev {
		return i
	}
	return -1
}

// put inserts r at its place by mod revision; if that revision is already
// there (a version copied forward by reclamation), r's location replaces
// the old one.
func (k *keyIndex) put(r revision) {
	i := k.at(r.mod)
	if i >= 0 && k.revs[i].mod == r.mod {
		k.revs[i].seg, k.revs[i].off, k.revs[i].vlen = r.seg, r.off, r.vlen
		return
	}
	k.revs = slices.Insert(k.revs, i+1, r)
}

// reachable reports whether revs[i] can still be read at some revision at
// or after the compaction point rev: it is the newest version at or below
// rev, or newer. Only a reachable put holds a live value.
func (k *keyIndex) reachable(i int, rev int64) bool {
	return i == len(k.revs)-1 || k.revs[i+1].mod > rev
}

// recentKey is an entry of Engine.recent: key ki was written at rev.
type recentKey struct {
	rev int64
	ki  *keyIndex
}

// recentMax bounds Engine.recent: past it, the oldest published entries
// are dropped (down to half) and reads at revisions below the new floor
// count by walking their range.
const recentMax = 1 << 15

// trimRecent drops old entries of e.recent once it is over recentMax,
// keeping every unpublished one. e.mu must be held for writing.
func (e *Engine) trimRecent() {
	if len(e.recent) <= recentMax {
		return
	}
	committed := e.committed.Load()
	drop := len(e.recent) - recentMax/2
	for drop > 0 && e.recent[drop-1].rev > committed {
		drop--
	}
	if drop == 0 {
		return
	}
	e.recentFloor = max(e.recentFloor, e.recent[drop-1].rev)
	n := copy(e.recent, e.recent[drop:])
	clear(e.recent[n:])
	e.recent = e.recent[:n]
}

// countAt returns the number of keys in [from, to) (to "" = no upper
// bound) live at rev, which must be at least e.recentFloor and at least the
// compaction point: the tree's count at the head, corrected for the keys
// written after rev. e.mu must be held.
func (e *Engine) countAt(from, to string, rev int64) int64 {
	n := int64(e.tree.countRange(from, to))
	i := sort.Search(len(e.recent), func(i int) bool { return e.recent[i].rev > rev })
	tail := e.recent[i:]
	if len(tail) == 0 {
		return n
	}
	var seen map[*keyIndex]struct{}
	if len(tail) > 1 {
		seen = make(map[*keyIndex]struct{}, len(tail))
	}
	for _, rk := range tail {
		ki := rk.ki
		if ki.key < from || to != "" && ki.key >= to {
			continue
		}
		if seen != nil {
			if _, dup := seen[ki]; dup {
				continue
			}
			seen[ki] = struct{}{}
		}
		_, live := ki.live(rev)
		n += int64(b2i(live) - b2i(ki.counted))
	}
	return n
}
