package linearize

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one recorded operation: which client ran it, what it asked and got,
// and when it was called and returned (nanoseconds since the history
// began; Return is Infinity when the outcome is unknown).
type Op struct {
	Client       int
	Call, Return int64
	In           Input
	Out          Output
}

// History records the operations of concurrent clients. It is safe for
// concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock (monotonic).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records an operation.
func (h *History) Add(op Op) {
	if op.Out.Unknown {
		op.Return = Infinity
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the recorded operations.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Operations converts ops for porcupine.
func Operations(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		out[i] = porcupine.Operation{ClientId: op.Client, Input: op.In, Call: op.Call, Output: op.Out, Return: op.Return}
	}
	return out
}

// CheckLinearizable checks ops against Model with porcupine, one key at a
// time, giving up after timeout (result porcupine.Unknown).
func CheckLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(Model, Operations(ops), timeout)
}

// CheckRevisions checks what the per-key model cannot see: the store's one
// revision counter across keys. Every write that succeeded has its own
// revision, and revisions respect real time: an operation called after
// another returned is served at a revision at least as new (strictly newer
// if it writes).
func CheckRevisions(ops []Op) []error {
	var errs []error
	byRev := map[int64]Op{}
	var known []Op
	for _, op := range ops {
		if op.Out.Unknown {
			continue
		}
		known = append(known, op)
		if op.In.writes(op.Out) {
			if prev, dup := byRev[op.Out.Rev]; dup {
				errs = append(errs, fmt.Errorf("revision %d created twice: %s and %s", op.Out.Rev, describe(prev.In, prev.Out), describe(op.In, op.Out)))
			}
			byRev[op.Out.Rev] = op
		}
	}
	// Sweep by call time, folding in every operation that returned
	// strictly before the call.
	byReturn := slices.Clone(known)
	slices.SortFunc(byReturn, func(a, b Op) int { return cmp.Compare(a.Return, b.Return) })
	slices.SortFunc(known, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	var maxRev int64
	var maxOp Op
	j := 0
	for _, op := range known {
		for j < len(byReturn) && byReturn[j].Return < op.Call {
			if byReturn[j].Out.Rev > maxRev {
				maxRev, maxOp = byReturn[j].Out.Rev, byReturn[j]
			}
			j++
		}
		if op.Out.Rev < maxRev || op.In.writes(op.Out) && op.Out.Rev == maxRev {
			errs = append(errs, fmt.Errorf("client %d: %s (called at %v) is served at revision %d, but %s returned before it was called (at %v)",
				op.Client, describe(op.In, op.Out), time.Duration(op.Call), op.Out.Rev, describe(maxOp.In, maxOp.Out), time.Duration(maxOp.Return)))
			if len(errs) > 20 {
				return errs
			}
		}
	}
	return errs
}

// Event is one watch event as a watcher received it.
type Event struct {
	Rev                        int64 // the response's event revision (the kv's mod revision)
	Key                        string
	Delete                     bool
	Value                      string
	ModRev, CreateRev, Version int64
}

func (e Event) String() string {
	if e.Delete {
		return fmt.Sprintf("delete %s @%d", e.Key, e.Rev)
	}
	return fmt.Sprintf("put %s=%s @%d (mod %d create %d ver %d)", e.Key, e.Value, e.Rev, e.ModRev, e.CreateRev, e.Version)
}

// CheckStream checks one watcher's events for a watch that started at
// revision from and has been read through revision to, on a keyspace where
// every revision changes exactly one key and nothing existed before from:
// each revision in [from, to] arrives exactly once, in order, and every
// event's create revision and version follow from the events before it.
func CheckStream(events []Event, from, to int64) []error {
	var errs []error
	add := func(format string, args ...any) bool {
		errs = append(errs, fmt.Errorf(format, args...))
		return len(errs) < 20
	}
	next := from
	type kv struct{ create, version int64 }
	state := map[string]kv{}
	for i, ev := range events {
		switch {
		case ev.Rev < next:
			if !add("event %d (%s): revision %d again or out of order (expected %d next)", i, ev, ev.Rev, next) {
				return errs
			}
			continue
		case ev.Rev > next:
			if !add("event %d (%s): revisions %d..%d missing", i, ev, next, ev.Rev-1) {
				return errs
			}
		}
		next = ev.Rev + 1
		cur, exists := state[ev.Key]
		if ev.Delete {
			if !exists && !add("event %d (%s): delete of a key that does not exist", i, ev) {
				return errs
			}
			delete(state, ev.Key)
			continue
		}
		want := kv{create: ev.Rev, version: 1}
		if exists {
			want = kv{create: cur.create, version: cur.version + 1}
		}
		if ev.ModRev != ev.Rev || ev.CreateRev != want.create || ev.Version != want.version {
			if !add("event %d (%s): want mod %d create %d version %d", i, ev, ev.Rev, want.create, want.version) {
				return errs
			}
		}
		state[ev.Key] = want
	}
	if next <= to {
		add("revisions %d..%d never arrived", next, to)
	}
	return errs
}

// CheckAgainstHistory checks a complete, ordered event stream (see
// CheckStream) against the clients' history: every acknowledged write is
// in it at its revision, every event comes from exactly one write a client
// issued and did not see fail, and every read returned the key as the
// stream has it at the read's revision.
func CheckAgainstHistory(events []Event, ops []Op) []error {
	var errs []error
	add := func(format string, args ...any) bool {
		errs = append(errs, fmt.Errorf(format, args...))
		return len(errs) < 20
	}
	atRev := map[int64]Event{}
	for _, ev := range events {
		atRev[ev.Rev] = ev
	}
	byValue := map[string]Op{}
	unknownDeletes := map[string]int{}
	knownDeletes := map[int64]Op{}
	for _, op := range ops {
		switch op.In.Kind {
		case Put, CAS:
			byValue[op.In.Value] = op
		case Delete:
			if op.Out.Unknown {
				unknownDeletes[op.In.Key]++
			} else if op.Out.Deleted > 0 {
				knownDeletes[op.Out.Rev] = op
			}
		}
		if !op.In.writes(op.Out) {
			continue
		}
		ev, ok := atRev[op.Out.Rev]
		switch {
		case !ok:
			if !add("acknowledged %s: no event at revision %d", describe(op.In, op.Out), op.Out.Rev) {
				return errs
			}
		case ev.Key != op.In.Key || ev.Delete != (op.In.Kind == Delete) || !ev.Delete && ev.Value != op.In.Value:
			if !add("acknowledged %s: the event at revision %d is %s", describe(op.In, op.Out), op.Out.Rev, ev) {
				return errs
			}
		}
	}
	seen := map[string]int64{}
	for _, ev := range events {
		if ev.Delete {
			if _, ok := knownDeletes[ev.Rev]; ok {
				continue
			}
			if unknownDeletes[ev.Key] == 0 {
				if !add("%s: no delete of %s was issued that could have made it", ev, ev.Key) {
					return errs
				}
				continue
			}
			unknownDeletes[ev.Key]--
			continue
		}
		if r, dup := seen[ev.Value]; dup {
			if !add("%s: value %s was already written at revision %d (a write applied twice)", ev, ev.Value, r) {
				return errs
			}
		}
		seen[ev.Value] = ev.Rev
		op, ok := byValue[ev.Value]
		switch {
		case !ok || op.In.Key != ev.Key:
			if !add("%s: no client wrote this value to this key", ev) {
				return errs
			}
		case op.Out.Unknown:
		case !op.In.writes(op.Out):
			if !add("%s: comes from %s, which the client saw fail", ev, describe(op.In, op.Out)) {
				return errs
			}
		case op.Out.Rev != ev.Rev:
			if !add("%s: comes from %s, acknowledged at another revision", ev, describe(op.In, op.Out)) {
				return errs
			}
		}
	}
	// Reads agree with the stream at their revision.
	perKey := map[string][]Event{}
	for _, ev := range events {
		perKey[ev.Key] = append(perKey[ev.Key], ev)
	}
	for _, op := range ops {
		if !op.In.reads(op.Out) {
			continue
		}
		evs := perKey[op.In.Key]
		i := sort.Search(len(evs), func(i int) bool { return evs[i].Rev > op.Out.Rev })
		want := Output{Rev: op.Out.Rev}
		if i > 0 && !evs[i-1].Delete {
			ev := evs[i-1]
			want.Found, want.Value, want.ModRev, want.CreateRev, want.Version = true, ev.Value, ev.ModRev, ev.CreateRev, ev.Version
		}
		got := op.Out
		got.Succeeded, got.Deleted = false, 0
		if got != want {
			if !add("client %d: %s, but at revision %d the watch stream has %s", op.Client, describe(op.In, op.Out), op.Out.Rev, describe(Input{Kind: Get, Key: op.In.Key}, want)) {
				return errs
			}
		}
	}
	return errs
}

// Explain describes where a history that is not linearizable gets stuck:
// for each key whose operations alone are not linearizable, the last
// operations of the longest linearizable prefix porcupine found (with the
// key's state after each) and the earliest-called operations it could not
// place after them.
func Explain(ops []Op, timeout time.Duration) string {
	var b strings.Builder
	for _, part := range partitionByKey(Operations(ops)) {
		res, info := porcupine.CheckOperationsVerbose(Model, part, timeout)
		if res == porcupine.Ok {
			continue
		}
		key := part[0].Input.(Input).Key
		fmt.Fprintf(&b, "key %s: %s (%d operations)\n", key, res, len(part))
		partials := info.PartialLinearizationsOperations()
		if len(partials) == 0 || len(partials[0]) == 0 {
			continue
		}
		longest := slices.MaxFunc(partials[0], func(a, b []porcupine.Operation) int { return cmp.Compare(len(a), len(b)) })
		state := Model.Init()
		placed := map[porcupine.Operation]bool{}
		for i, op := range longest {
			_, state = Model.Step(state, op.Input, op.Output)
			placed[op] = true
			if i >= len(longest)-6 {
				fmt.Fprintf(&b, "  linearized  client %2d [%v, %s] %s => %s\n", op.ClientId, time.Duration(op.Call), returnString(op.Return),
					describe(op.Input.(Input), op.Output.(Output)), Model.DescribeState(state))
			}
		}
		var rest []porcupine.Operation
		for _, op := range part {
			if !placed[op] {
				rest = append(rest, op)
			}
		}
		slices.SortFunc(rest, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		for _, op := range rest[:min(len(rest), 10)] {
			fmt.Fprintf(&b, "  not placed  client %2d [%v, %s] %s\n", op.ClientId, time.Duration(op.Call), returnString(op.Return),
				describe(op.Input.(Input), op.Output.(Output)))
		}
	}
	return b.String()
}

func returnString(r int64) string {
	if r == Infinity {
		return "∞"
	}
	return time.Duration(r).String()
}
