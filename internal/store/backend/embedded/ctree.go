package embedded

// ctree is the index's ordered map from key to *keyIndex: a B-tree that
// also keeps, per subtree, how many of its keys are live at the index head
// (their newest revision is a put). With those counts the number of live
// keys in [a, b) is rank(b) - rank(a), two root-to-leaf descents, instead
// of a walk over every key of the range.
//
// "Head" is the newest revision each key has in the index, including
// revisions the committer has built but not yet published. rangeAt turns a
// head count into a count at the reader's revision with the few keys
// written after it (Engine.recent).
//
// Every change to a key's revisions must be followed by fix, so that the
// key's counted flag and the subtree counts above it follow its newest
// revision. The tree is not safe for concurrent use; Engine.mu guards it.

const (
	ctreeMin = 31             // fewest items in a node other than the root
	ctreeMax = 2*ctreeMin + 1 // most items in a node
)

type cnode struct {
	items    []*keyIndex
	children []*cnode // nil in a leaf
	live     int      // counted items in this subtree
}

type ctree struct {
	root *cnode
	n    int
}

func newTree() *ctree { return &ctree{} }

func newLeaf() *cnode { return &cnode{items: make([]*keyIndex, 0, ctreeMax)} }

func newInner() *cnode {
	return &cnode{items: make([]*keyIndex, 0, ctreeMax), children: make([]*cnode, 0, ctreeMax+1)}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// headLive reports whether the key's newest revision is a put.
func (k *keyIndex) headLive() bool { return len(k.revs) > 0 && !k.revs[len(k.revs)-1].tomb }

// find returns the position of the first item whose key is >= key, and
// whether that item's key is key.
func (n *cnode) find(key string) (int, bool) {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.items[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(n.items) && n.items[lo].key == key
}

// Len returns the number of keys in the tree.
func (t *ctree) Len() int { return t.n }

// Live returns the number of counted keys.
func (t *ctree) Live() int {
	if t.root == nil {
		return 0
	}
	return t.root.live
}

// Get returns the entry for key.
func (t *ctree) Get(key string) (*keyIndex, bool) {
	for n := t.root; n != nil; {
		i, found := n.find(key)
		if found {
			return n.items[i], true
		}
		if n.children == nil {
			return nil, false
		}
		n = n.children[i]
	}
	return nil, false
}

// Insert adds ki, counted if its newest revision is a put. It reports
// false, changing nothing, if the tree already has ki's key.
func (t *ctree) Insert(ki *keyIndex) bool {
	if _, ok := t.Get(ki.key); ok {
		return false
	}
	t.insertNew(ki)
	return true
}

// add appends r, which must be newer than every revision the key has, to
// key's entry (created if needed) and returns the entry: one descent for a
// key already there, two for a new one.
func (t *ctree) add(key string, r revision) *keyIndex {
	if ki, ok := t.Get(key); ok {
		ki.revs = append(ki.revs, r)
		t.fix(ki)
		return ki
	}
	ki := &keyIndex{key: key, revs: []revision{r}}
	t.insertNew(ki)
	return ki
}

// insertNew inserts ki, whose key the tree must not have.
func (t *ctree) insertNew(ki *keyIndex) {
	ki.counted = ki.headLive()
	d := b2i(ki.counted)
	if t.root == nil {
		t.root = newLeaf()
	}
	if len(t.root.items) == ctreeMax {
		old := t.root
		t.root = newInner()
		t.root.children = append(t.root.children, old)
		t.root.live = old.live
		t.root.split(0)
	}
	n := t.root
	for {
		n.live += d
		i, _ := n.find(ki.key)
		if n.children == nil {
			n.items = insertAt(n.items, i, ki)
			break
		}
		if len(n.children[i].items) == ctreeMax {
			n.split(i)
			if n.items[i].key < ki.key {
				i++
			}
		}
		n = n.children[i]
	}
	t.n++
}

// split splits n's full child i around its middle item, which moves up
// into n.
func (n *cnode) split(i int) {
	c := n.children[i]
	mid := c.items[ctreeMin]
	var r *cnode
	if c.children == nil {
		r = newLeaf()
	} else {
		r = newInner()
		r.children = append(r.children, c.children[ctreeMin+1:]...)
		clear(c.children[ctreeMin+1:])
		c.children = c.children[:ctreeMin+1]
		for _, cc := range r.children {
			r.live += cc.live
		}
	}
	r.items = append(r.items, c.items[ctreeMin+1:]...)
	clear(c.items[ctreeMin:])
	c.items = c.items[:ctreeMin]
	for _, ki := range r.items {
		r.live += b2i(ki.counted)
	}
	c.live -= r.live + b2i(mid.counted)
	n.items = insertAt(n.items, i, mid)
	n.children = insertAt(n.children, i+1, r)
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

// Delete removes ki's key from the tree and reports whether it was there.
func (t *ctree) Delete(ki *keyIndex) bool {
	if t.root == nil {
		return false
	}
	got := t.root.remove(ki.key, false)
	if len(t.root.items) == 0 && t.root.children != nil {
		t.root = t.root.children[0]
	}
	if got == nil {
		return false
	}
	t.n--
	return true
}

// remove deletes key (or, if last, the greatest item) from the subtree of
// n, which is the root or has more than ctreeMin items, and returns the
// removed entry (nil if key is absent).
func (n *cnode) remove(key string, last bool) *keyIndex {
	var i int
	var found bool
	if last {
		i = len(n.items)
		if n.children == nil {
			i, found = i-1, i > 0
		}
	} else {
		i, found = n.find(key)
	}
	if n.children == nil {
		if !found {
			return nil
		}
		ki := n.items[i]
		n.items = removeAt(n.items, i)
		n.live -= b2i(ki.counted)
		return ki
	}
	if len(n.children[i].items) <= ctreeMin {
		n.grow(i)
		return n.remove(key, last)
	}
	c := n.children[i]
	if found {
		// Replace the item with its predecessor, the greatest item of the
		// subtree on its left.
		ki := n.items[i]
		n.items[i] = c.remove("", true)
		n.live -= b2i(ki.counted)
		return ki
	}
	ki := c.remove(key, last)
	if ki != nil {
		n.live -= b2i(ki.counted)
	}
	return ki
}

// grow gives n's child i, which has ctreeMin items, one more: borrowed
// through n from a sibling with items to spare, or by merging it with a
// sibling and the item between them.
func (n *cnode) grow(i int) {
	c := n.children[i]
	if i > 0 && len(n.children[i-1].items) > ctreeMin {
		l := n.children[i-1]
		sep := n.items[i-1]
		c.items = insertAt(c.items, 0, sep)
		c.live += b2i(sep.counted)
		moved := l.items[len(l.items)-1]
		l.items = removeAt(l.items, len(l.items)-1)
		l.live -= b2i(moved.counted)
		n.items[i-1] = moved
		if l.children != nil {
			cc := l.children[len(l.children)-1]
			l.children = removeAt(l.children, len(l.children)-1)
			l.live -= cc.live
			c.children = insertAt(c.children, 0, cc)
			c.live += cc.live
		}
		return
	}
	if i < len(n.items) && len(n.children[i+1].items) > ctreeMin {
		r := n.children[i+1]
		sep := n.items[i]
		c.items = append(c.items, sep)
		c.live += b2i(sep.counted)
		moved := r.items[0]
		r.items = removeAt(r.items, 0)
		r.live -= b2i(moved.counted)
		n.items[i] = moved
		if r.children != nil {
			cc := r.children[0]
			r.children = removeAt(r.children, 0)
			r.live -= cc.live
			c.children = append(c.children, cc)
			c.live += cc.live
		}
		return
	}
	if i == len(n.items) {
		i--
	}
	l, r := n.children[i], n.children[i+1]
	sep := n.items[i]
	l.items = append(l.items, sep)
	l.items = append(l.items, r.items...)
	l.children = append(l.children, r.children...)
	l.live += b2i(sep.counted) + r.live
	n.items = removeAt(n.items, i)
	n.children = removeAt(n.children, i+1)
}

// fix brings ki's counted flag, and the counts of the subtrees holding it,
// in line with ki's newest revision. An entry that is not in the tree
// (which callers never pass) is left alone.
func (t *ctree) fix(ki *keyIndex) {
	want := ki.headLive()
	if want == ki.counted {
		return
	}
	var path [64]*cnode // far deeper than any tree of 63-key nodes
	depth := 0
	for n := t.root; n != nil && depth < len(path); {
		path[depth] = n
		depth++
		i, found := n.find(ki.key)
		if found {
			if n.items[i] != ki {
				return
			}
			d := b2i(want) - b2i(ki.counted)
			ki.counted = want
			for _, p := range path[:depth] {
				p.live += d
			}
			return
		}
		if n.children == nil {
			return
		}
		n = n.children[i]
	}
}

// rank returns the number of counted keys below key.
func (t *ctree) rank(key string) int {
	r := 0
	for n := t.root; n != nil; {
		i, found := n.find(key)
		for _, ki := range n.items[:i] {
			r += b2i(ki.counted)
		}
		if n.children == nil {
			break
		}
		for _, c := range n.children[:i] {
			r += c.live
		}
		if found {
			r += n.children[i].live
			break
		}
		n = n.children[i]
	}
	return r
}

// countRange returns the number of counted keys in [from, to); an empty to
// means no upper bound.
func (t *ctree) countRange(from, to string) int {
	if to == "" {
		return t.Live() - t.rank(from)
	}
	if to <= from {
		return 0
	}
	return t.rank(to) - t.rank(from)
}

// Ascend calls fn for every entry in key order until fn returns false.
func (t *ctree) Ascend(fn func(*keyIndex) bool) {
	if t.root != nil {
		t.root.ascend("", true, fn)
	}
}

// AscendGreaterOrEqual calls fn for every entry from key on, in order,
// until fn returns false.
func (t *ctree) AscendGreaterOrEqual(key string, fn func(*keyIndex) bool) {
	if t.root != nil {
		t.root.ascend(key, false, fn)
	}
}

// AscendRange calls fn for every entry in [from, to), in order, until fn
// returns false.
func (t *ctree) AscendRange(from, to string, fn func(*keyIndex) bool) {
	t.AscendGreaterOrEqual(from, func(ki *keyIndex) bool {
		return ki.key < to && fn(ki)
	})
}

func (n *cnode) ascend(from string, all bool, fn func(*keyIndex) bool) bool {
	i := 0
	if !all {
		i, _ = n.find(from)
	}
	for ; i < len(n.items); i++ {
		if n.children != nil && !n.children[i].ascend(from, all, fn) {
			return false
		}
		all = true
		if !fn(n.items[i]) {
			return false
		}
	}
	if n.children != nil {
		return n.children[len(n.items)].ascend(from, all, fn)
	}
	return true
}

// buildSorted returns a tree of items, which must be in strictly
// increasing key order, with every node but the last of each level full
// or nearly: the compact shape a checkpoint load wants.
func buildSorted(items []*keyIndex) *ctree {
	t := &ctree{n: len(items)}
	for _, ki := range items {
		ki.counted = ki.headLive()
	}
	if len(items) == 0 {
		return t
	}
	// full[h] is the number of items a full tree of height h holds.
	full := []int{0}
	for full[len(full)-1] < len(items) {
		full = append(full, (full[len(full)-1]+1)*(ctreeMax+1)-1)
	}
	t.root = build(items, len(full)-1, full)
	return t
}

// build makes a subtree of height h from items; a subtree of height h-1
// holds at most full[h-1] items, and every node gets at least ctreeMin.
func build(items []*keyIndex, h int, full []int) *cnode {
	if h == 1 {
		n := &cnode{items: make([]*keyIndex, len(items), ctreeMax)}
		copy(n.items, items)
		for _, ki := range items {
			n.live += b2i(ki.counted)
		}
		return n
	}
	n := newInner()
	per := full[h-1] + 1
	c := (len(items) + 1 + per - 1) / per // children
	c = max(c, 2)
	rest := len(items) - (c - 1) // items in the children
	pos := 0
	for j := range c {
		m := rest / c
		if j < rest%c {
			m++
		}
		child := build(items[pos:pos+m], h-1, full)
		n.children = append(n.children, child)
		n.live += child.live
		pos += m
		if j < c-1 {
			n.items = append(n.items, items[pos])
			n.live += b2i(items[pos].counted)
			pos++
		}
	}
	return n
}
