package embedded

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// check verifies the tree's invariants: keys strictly increasing, every
// leaf at the same depth, node sizes within bounds, subtree counts equal
// to the counted items below, and Len.
func (t *ctree) check() error {
	if t.root == nil {
		if t.n != 0 {
			return fmt.Errorf("empty tree with Len %d", t.n)
		}
		return nil
	}
	var prev *string
	leafDepth := -1
	total := 0
	var walk func(n *cnode, depth int, root bool) (int, error)
	walk = func(n *cnode, depth int, root bool) (int, error) {
		if len(n.items) > ctreeMax || !root && len(n.items) < ctreeMin {
			return 0, fmt.Errorf("node at depth %d has %d items", depth, len(n.items))
		}
		if n.children != nil && len(n.children) != len(n.items)+1 {
			return 0, fmt.Errorf("node at depth %d has %d items and %d children", depth, len(n.items), len(n.children))
		}
		if n.children == nil {
			if leafDepth < 0 {
				leafDepth = depth
			} else if leafDepth != depth {
				return 0, fmt.Errorf("leaves at depths %d and %d", leafDepth, depth)
			}
		}
		live := 0
		for i, ki := range n.items {
			if n.children != nil {
				c, err := walk(n.children[i], depth+1, false)
				if err != nil {
					return 0, err
				}
				live += c
			}
			if prev != nil && *prev >= ki.key {
				return 0, fmt.Errorf("key %q after %q", ki.key, *prev)
			}
			prev = &ki.key
			if ki.counted != ki.headLive() {
				return 0, fmt.Errorf("key %q: counted %v, head live %v", ki.key, ki.counted, ki.headLive())
			}
			live += b2i(ki.counted)
			total++
		}
		if n.children != nil {
			c, err := walk(n.children[len(n.items)], depth+1, false)
			if err != nil {
				return 0, err
			}
			live += c
		}
		if live != n.live {
			return 0, fmt.Errorf("node at depth %d counts %d live, holds %d", depth, n.live, live)
		}
		return live, nil
	}
	if _, err := walk(t.root, 0, true); err != nil {
		return err
	}
	if total != t.n {
		return fmt.Errorf("Len %d, holds %d", t.n, total)
	}
	return nil
}

// model is the reference the tree is checked against: key → live at head.
type model map[string]bool

func (m model) count(from, to string) int {
	n := 0
	for k, live := range m {
		if live && k >= from && (to == "" || k < to) {
			n++
		}
	}
	return n
}

func (m model) keys(from, to string) []string {
	var out []string
	for k := range m {
		if k >= from && (to == "" || k < to) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func entry(key string, live bool) *keyIndex {
	return &keyIndex{key: key, revs: []revision{{mod: 1, tomb: !live}}}
}

// setLive appends a revision that makes ki live or not and fixes the tree.
func setLive(tr *ctree, ki *keyIndex, live bool) {
	ki.revs = append(ki.revs, revision{mod: ki.revs[len(ki.revs)-1].mod + 1, tomb: !live})
	tr.fix(ki)
}

// ctreeOp applies one operation, chosen by op and arg, to both tree and
// model, then compares a query against the model.
func ctreeOp(t *testing.T, tr *ctree, m model, op byte, arg uint16, keySpace int) {
	t.Helper()
	key := fmt.Sprintf("k%05d", int(arg)%keySpace)
	key2 := fmt.Sprintf("k%05d", int(arg>>3)%keySpace)
	switch op % 6 {
	case 0, 1: // insert (live or not)
		live := op%6 == 0
		ok := tr.Insert(entry(key, live))
		_, had := m[key]
		if ok == had {
			t.Fatalf("Insert(%q) = %v, model has it: %v", key, ok, had)
		}
		if !had {
			m[key] = live
		}
	case 2: // delete
		ok := tr.Delete(&keyIndex{key: key})
		_, had := m[key]
		if ok != had {
			t.Fatalf("Delete(%q) = %v, model has it: %v", key, ok, had)
		}
		delete(m, key)
	case 3: // flip liveness
		ki, ok := tr.Get(key)
		if _, had := m[key]; ok != had {
			t.Fatalf("Get(%q) = %v, model has it: %v", key, ok, had)
		}
		if ok {
			setLive(tr, ki, !m[key])
			m[key] = !m[key]
		}
	case 4: // count
		from, to := min(key, key2), max(key, key2)
		if arg%7 == 0 {
			to = ""
		}
		if got, want := tr.countRange(from, to), m.count(from, to); got != want {
			t.Fatalf("countRange(%q, %q) = %d, want %d", from, to, got, want)
		}
	case 5: // ascend
		from, to := min(key, key2), max(key, key2)
		var got []string
		limit := int(arg % 40)
		tr.AscendRange(from, to, func(ki *keyIndex) bool {
			got = append(got, ki.key)
			return len(got) < limit || limit == 0
		})
		want := m.keys(from, to)
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("AscendRange(%q, %q) limit %d = %q, want %q", from, to, limit, got, want)
		}
	}
}

// TestCtreeModel runs random operations against the tree and a map,
// checking the invariants as it goes; key spaces from tiny (root splits
// and merges back and forth) to large (several levels).
func TestCtreeModel(t *testing.T) {
	for _, keySpace := range []int{5, 100, 2500} {
		t.Run(fmt.Sprint(keySpace), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(keySpace), 7))
			tr, m := newTree(), model{}
			ops := 10*keySpace + 2000
			for i := range ops {
				op := byte(rng.IntN(6))
				if i > ops/2 && op == 0 {
					op = 2 // second half: shrink, so that merges run too
				}
				ctreeOp(t, tr, m, op, uint16(rng.IntN(1<<16)), keySpace)
				if i%max(keySpace/4, 1) == 0 {
					if err := tr.check(); err != nil {
						t.Fatalf("after %d ops: %v", i, err)
					}
				}
			}
			if err := tr.check(); err != nil {
				t.Fatal(err)
			}
			if tr.Len() != len(m) || tr.Live() != m.count("", "") {
				t.Fatalf("Len %d Live %d, model %d and %d", tr.Len(), tr.Live(), len(m), m.count("", ""))
			}
			// Delete everything: the tree must end empty and valid.
			for _, k := range m.keys("", "") {
				if !tr.Delete(&keyIndex{key: k}) {
					t.Fatalf("Delete(%q) = false", k)
				}
			}
			if err := tr.check(); err != nil || tr.Len() != 0 || tr.Live() != 0 {
				t.Fatalf("after deleting all: %v, Len %d, Live %d", err, tr.Len(), tr.Live())
			}
		})
	}
}

func TestBuildSorted(t *testing.T) {
	for _, n := range []int{0, 1, 30, 31, 32, 33, 500, 1023, 1024, 1025, 33000} {
		items := make([]*keyIndex, n)
		m := model{}
		for i := range items {
			k := fmt.Sprintf("k%07d", i)
			items[i] = entry(k, i%3 != 0)
			m[k] = i%3 != 0
		}
		tr := buildSorted(items)
		if err := tr.check(); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got, want := tr.countRange("k0000010", "k0000500"), m.count("k0000010", "k0000500"); got != want {
			t.Fatalf("n=%d: count %d, want %d", n, got, want)
		}
		// The built tree keeps working under inserts and deletes.
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		for range 2000 {
			ctreeOp(t, tr, m, byte(rng.IntN(6)), uint16(rng.IntN(1<<16)), n+10)
		}
		if err := tr.check(); err != nil {
			t.Fatalf("n=%d after ops: %v", n, err)
		}
	}
}

// FuzzCtree drives the tree with operations read from the input (two
// bytes each: op and key) and checks it against the model.
func FuzzCtree(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 4, 9, 2, 1, 3, 2, 4, 200})
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr, m := newTree(), model{}
		for i := 0; i+2 < len(ops); i += 3 {
			ctreeOp(t, tr, m, ops[i], uint16(ops[i+1])|uint16(ops[i+2])<<8, 200)
		}
		if err := tr.check(); err != nil {
			t.Fatal(err)
		}
		if got, want := tr.countRange("", ""), m.count("", ""); got != want {
			t.Fatalf("count all %d, want %d", got, want)
		}
	})
}
