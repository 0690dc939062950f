package linearize

import (
	"fmt"
	"math"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// Kind is the kind of a recorded operation.
type Kind uint8

// The operations a history holds, each on one key.
const (
	// Get is a linearizable Range of one key.
	Get Kind = iota + 1
	// Put is a plain Put.
	Put
	// CAS is Txn If(ModRevision(key) == Expect) Then(Put) Else(Get).
	// Expect 0 means "the key does not exist" (create).
	CAS
	// Delete is a DeleteRange of one key.
	Delete
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	case Delete:
		return "delete"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Input is what a client asked for.
type Input struct {
	Kind   Kind
	Key    string
	Value  string // Put and CAS; unique per write in a history
	Expect int64  // CAS: the compared mod_revision
}

// Output is what the client got back. For an operation whose outcome the
// client never learned (timeout, connection lost) Unknown is set and the
// operation's return time is Infinity: it may have taken effect at any
// point after its call, or not at all.
type Output struct {
	Unknown bool
	// Rev is the response header's revision: the revision a write
	// created, or the revision a read (or a write that changed nothing)
	// was served at.
	Rev int64
	// Succeeded is a CAS's Txn outcome.
	Succeeded bool
	// Deleted is a Delete's count (0 or 1).
	Deleted int64
	// The key as read by a Get or a failed CAS's Else branch.
	Found                      bool
	Value                      string
	ModRev, CreateRev, Version int64
}

// Infinity is the return time of an operation whose outcome is unknown.
const Infinity int64 = math.MaxInt64

// writes reports whether out says the operation created a revision.
func (in Input) writes(out Output) bool {
	if out.Unknown {
		return false
	}
	switch in.Kind {
	case Put:
		return true
	case CAS:
		return out.Succeeded
	case Delete:
		return out.Deleted > 0
	}
	return false
}

// reads reports whether out carries a read of the key.
func (in Input) reads(out Output) bool {
	if out.Unknown {
		return false
	}
	return in.Kind == Get || (in.Kind == CAS && !out.Succeeded)
}

// keyState is the sequential specification's state of one key: an etcd
// key-value (value, create and mod revision, version) plus what is known
// about revisions. A write whose outcome is unknown leaves its revision
// unknown (0); the next read that sees its effect fills it in. Floor is a
// lower bound: every later write to the key gets a larger revision, and
// every read of it is served at a revision at least Floor.
type keyState struct {
	Found     bool
	Value     string
	ModRev    int64 // 0: unknown (the last write's outcome was unknown)
	CreateRev int64 // 0: unknown
	Version   int64
	Floor     int64
}

// put is the state after a put of v at revision rev (0: unknown).
func (s keyState) put(v string, rev int64) keyState {
	n := keyState{Found: true, Value: v, ModRev: rev, Version: 1, CreateRev: rev, Floor: s.Floor}
	if s.Found {
		n.Version = s.Version + 1
		n.CreateRev = s.CreateRev
	}
	if rev > 0 {
		n.Floor = rev
	}
	return n
}

// del is the state after a delete at revision rev (0: unknown).
func (s keyState) del(rev int64) keyState {
	n := keyState{Floor: s.Floor}
	if rev > 0 {
		n.Floor = rev
	}
	return n
}

// newRevOK reports whether a write may create revision rev now.
func (s keyState) newRevOK(rev int64) bool {
	return rev > s.Floor && (s.ModRev == 0 || rev > s.ModRev)
}

// modRevMatches reports whether the key's mod revision may be r, for a
// CAS compare. With an unknown mod revision, any r above Floor may be it.
func (s keyState) modRevMatches(r int64) bool {
	if !s.Found {
		return r == 0
	}
	if s.ModRev != 0 {
		return s.ModRev == r
	}
	return r > s.Floor
}

// read checks a read of the key served at revision at, returning the state
// with any unknown revisions learned from it.
func (s keyState) read(out Output) (bool, keyState) {
	if out.Found != s.Found || out.Rev < s.Floor {
		return false, s
	}
	if !s.Found {
		return true, s
	}
	if out.Value != s.Value || out.Version != s.Version || out.ModRev > out.Rev {
		return false, s
	}
	n := s
	if s.ModRev == 0 {
		if out.ModRev <= s.Floor {
			return false, s
		}
		n.ModRev, n.Floor = out.ModRev, out.ModRev
	} else if out.ModRev != s.ModRev {
		return false, s
	}
	if s.CreateRev == 0 {
		if out.CreateRev <= 0 || out.CreateRev > n.ModRev {
			return false, s
		}
		n.CreateRev = out.CreateRev
	} else if out.CreateRev != s.CreateRev {
		return false, s
	}
	if n.Version == 1 && n.CreateRev != n.ModRev {
		return false, s
	}
	return true, n
}

// step is the sequential specification of one key.
func step(s keyState, in Input, out Output) (bool, keyState) {
	switch in.Kind {
	case Get:
		return s.read(out)
	case Put:
		if out.Unknown {
			return true, s.put(in.Value, 0)
		}
		if !s.newRevOK(out.Rev) {
			return false, s
		}
		return true, s.put(in.Value, out.Rev)
	case CAS:
		if out.Unknown {
			// Deterministic once placed: it succeeds exactly when the
			// compare holds where it is linearized.
			if s.modRevMatches(in.Expect) {
				n := s.put(in.Value, 0)
				n.Floor = max(n.Floor, in.Expect)
				return true, n
			}
			return true, s
		}
		if out.Succeeded {
			if !s.modRevMatches(in.Expect) || !s.newRevOK(out.Rev) || out.Rev <= in.Expect {
				return false, s
			}
			return true, s.put(in.Value, out.Rev)
		}
		// The compare certainly held (ModRev 0 is unknown, not "absent").
		if s.Found && s.ModRev != 0 && s.ModRev == in.Expect || !s.Found && in.Expect == 0 {
			return false, s
		}
		ok, n := s.read(out)
		if ok && out.Found && out.ModRev == in.Expect {
			return false, s
		}
		return ok, n
	case Delete:
		if out.Unknown {
			if !s.Found {
				return true, s
			}
			return true, s.del(0)
		}
		if out.Deleted > 0 {
			if !s.Found || !s.newRevOK(out.Rev) {
				return false, s
			}
			return true, s.del(out.Rev)
		}
		if s.Found || out.Rev < s.Floor {
			return false, s
		}
		return true, s
	}
	return false, s
}

// Model is the porcupine model of the history: a map of independent etcd
// keys, partitioned by key so each key is checked on its own. Revisions
// across keys are checked separately (see CheckRevisions).
var Model = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() any { return keyState{} },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(keyState), input.(Input), output.(Output))
	},
	Equal: func(a, b any) bool { return a.(keyState) == b.(keyState) },
	DescribeOperation: func(input, output any) string {
		return describe(input.(Input), output.(Output))
	},
	DescribeState: func(state any) string {
		s := state.(keyState)
		if !s.Found {
			return fmt.Sprintf("absent (floor %d)", s.Floor)
		}
		return fmt.Sprintf("%q mod=%s create=%s ver=%d (floor %d)", s.Value, revString(s.ModRev), revString(s.CreateRev), s.Version, s.Floor)
	},
}

func revString(r int64) string {
	if r == 0 {
		return "?"
	}
	return strconv.FormatInt(r, 10)
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	idx := map[string]int{}
	var parts [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(Input).Key
		i, ok := idx[k]
		if !ok {
			i = len(parts)
			idx[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case Get:
		call = fmt.Sprintf("get(%s)", in.Key)
	case Put:
		call = fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
	case CAS:
		call = fmt.Sprintf("cas(%s, mod=%d, %s)", in.Key, in.Expect, in.Value)
	case Delete:
		call = fmt.Sprintf("delete(%s)", in.Key)
	}
	if out.Unknown {
		return call + " -> ?"
	}
	kv := func() string {
		if !out.Found {
			return fmt.Sprintf("absent @%d", out.Rev)
		}
		return fmt.Sprintf("%s mod=%d create=%d ver=%d @%d", out.Value, out.ModRev, out.CreateRev, out.Version, out.Rev)
	}
	switch in.Kind {
	case Get:
		return call + " -> " + kv()
	case Put:
		return fmt.Sprintf("%s -> @%d", call, out.Rev)
	case CAS:
		if out.Succeeded {
			return fmt.Sprintf("%s -> ok @%d", call, out.Rev)
		}
		return call + " -> failed, " + kv()
	case Delete:
		return fmt.Sprintf("%s -> deleted %d @%d", call, out.Deleted, out.Rev)
	}
	return call
}
