package linearize

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checks must reject what they exist to catch: these histories are
// built by hand, each with one anomaly.

func put(client int, call, ret int64, key, value string, rev int64) Op {
	return Op{Client: client, Call: call, Return: ret, In: Input{Kind: Put, Key: key, Value: value}, Out: Output{Rev: rev}}
}

func get(client int, call, ret int64, key string, rev int64, value string, mod, create, version int64) Op {
	out := Output{Rev: rev}
	if value != "" {
		out.Found, out.Value, out.ModRev, out.CreateRev, out.Version = true, value, mod, create, version
	}
	return Op{Client: client, Call: call, Return: ret, In: Input{Kind: Get, Key: key}, Out: out}
}

func cas(client int, call, ret int64, key, value string, expect, rev int64, ok bool) Op {
	return Op{Client: client, Call: call, Return: ret, In: Input{Kind: CAS, Key: key, Value: value, Expect: expect}, Out: Output{Rev: rev, Succeeded: ok}}
}

func del(client int, call, ret int64, key string, rev, deleted int64) Op {
	return Op{Client: client, Call: call, Return: ret, In: Input{Kind: Delete, Key: key}, Out: Output{Rev: rev, Deleted: deleted}}
}

func unknown(op Op) Op {
	op.Out, op.Return = Output{Unknown: true}, Infinity
	return op
}

func TestModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"sequential", []Op{
			put(0, 0, 1, "a", "v1", 2),
			get(1, 2, 3, "a", 2, "v1", 2, 2, 1),
			put(0, 4, 5, "a", "v2", 3),
			cas(1, 6, 7, "a", "v3", 3, 4, true),
			get(0, 8, 9, "a", 4, "v3", 4, 2, 3),
			del(1, 10, 11, "a", 5, 1),
			get(0, 12, 13, "a", 5, "", 0, 0, 0),
			cas(1, 14, 15, "a", "v4", 0, 6, true),
			get(0, 16, 17, "a", 6, "v4", 6, 6, 1),
		}, porcupine.Ok},
		{"concurrent put and get", []Op{
			put(0, 0, 10, "a", "v1", 2),
			get(1, 1, 2, "a", 1, "", 0, 0, 0),
			get(2, 3, 4, "a", 2, "v1", 2, 2, 1),
		}, porcupine.Ok},
		{"stale read", []Op{
			put(0, 0, 1, "a", "v1", 2),
			get(1, 2, 3, "a", 1, "", 0, 0, 0),
		}, porcupine.Illegal},
		{"read goes back", []Op{
			put(0, 0, 10, "a", "v1", 2),
			get(1, 1, 2, "a", 2, "v1", 2, 2, 1),
			get(2, 3, 4, "a", 1, "", 0, 0, 0),
		}, porcupine.Illegal},
		{"wrong version", []Op{
			put(0, 0, 1, "a", "v1", 2),
			put(0, 2, 3, "a", "v2", 3),
			get(1, 4, 5, "a", 3, "v2", 3, 2, 1),
		}, porcupine.Illegal},
		{"two compare-and-sets win on one revision", []Op{
			put(0, 0, 1, "a", "v1", 2),
			cas(1, 2, 10, "a", "x", 2, 3, true),
			cas(2, 2, 10, "a", "y", 2, 4, true),
		}, porcupine.Illegal},
		{"compare-and-set fails although it holds", []Op{
			put(0, 0, 1, "a", "v1", 2),
			{Client: 1, Call: 2, Return: 3, In: Input{Kind: CAS, Key: "a", Value: "x", Expect: 2},
				Out: Output{Rev: 2, Found: true, Value: "v1", ModRev: 2, CreateRev: 2, Version: 1}},
		}, porcupine.Illegal},
		{"write revision goes back on a key", []Op{
			put(0, 0, 1, "a", "v1", 5),
			put(0, 2, 3, "a", "v2", 4),
		}, porcupine.Illegal},
		{"unknown put seen later", []Op{
			unknown(put(0, 0, 1, "a", "v1", 0)),
			get(1, 5, 6, "a", 7, "v1", 7, 7, 1),
			put(1, 7, 8, "a", "v2", 8),
			get(1, 9, 10, "a", 8, "v2", 8, 7, 2),
		}, porcupine.Ok},
		{"unknown put never applied", []Op{
			unknown(put(0, 0, 1, "a", "v1", 0)),
			get(1, 5, 6, "a", 7, "", 0, 0, 0),
		}, porcupine.Ok},
		{"unknown put seen, then unseen", []Op{
			unknown(put(0, 0, 1, "a", "v1", 0)),
			get(1, 5, 6, "a", 7, "v1", 7, 7, 1),
			get(1, 7, 8, "a", 7, "", 0, 0, 0),
		}, porcupine.Illegal},
		{"unknown put seen before it was called", []Op{
			get(1, 0, 1, "a", 7, "v1", 7, 7, 1),
			unknown(put(0, 2, 3, "a", "v1", 0)),
		}, porcupine.Illegal},
		{"unknown compare-and-set that cannot hold", []Op{
			put(0, 0, 1, "a", "v1", 2),
			unknown(cas(1, 2, 3, "a", "x", 9, 0, false)),
			get(1, 5, 6, "a", 7, "x", 7, 2, 2),
		}, porcupine.Illegal},
		{"unknown put seen by a failed create", []Op{
			put(0, 0, 1, "a", "v1", 2),
			unknown(put(1, 2, 3, "a", "v2", 0)),
			{Client: 2, Call: 4, Return: 5, In: Input{Kind: CAS, Key: "a", Value: "x", Expect: 0},
				Out: Output{Rev: 4, Found: true, Value: "v2", ModRev: 4, CreateRev: 2, Version: 2}},
		}, porcupine.Ok},
		{"unknown delete", []Op{
			put(0, 0, 1, "a", "v1", 2),
			unknown(del(1, 2, 3, "a", 0, 0)),
			get(0, 5, 6, "a", 7, "", 0, 0, 0),
		}, porcupine.Ok},
		{"keys are independent", []Op{
			put(0, 0, 1, "a", "v1", 2),
			put(0, 2, 3, "b", "w1", 3),
			get(1, 4, 5, "a", 3, "v1", 2, 2, 1),
			get(1, 4, 5, "b", 3, "w1", 3, 3, 1),
		}, porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := CheckLinearizable(tt.ops, 10*time.Second)
			if res != tt.want {
				t.Errorf("got %s, want %s", res, tt.want)
			}
			if res == porcupine.Illegal && testing.Verbose() {
				t.Logf("explained:\n%s", Explain(tt.ops, 10*time.Second))
			}
		})
	}
}

func TestCheckRevisions(t *testing.T) {
	ok := []Op{
		put(0, 0, 1, "a", "v1", 2),
		put(1, 2, 3, "b", "w1", 3),
		get(2, 4, 5, "a", 3, "v1", 2, 2, 1),
	}
	if errs := CheckRevisions(ok); len(errs) > 0 {
		t.Errorf("legal history: %v", errs)
	}
	// A read of another key served at a revision older than a write that
	// finished before it: each key alone looks fine.
	stale := append(ok[:2:2], get(2, 4, 5, "a", 2, "v1", 2, 2, 1))
	if errs := CheckRevisions(stale); len(errs) != 1 {
		t.Errorf("stale revision across keys: %v", errs)
	}
	dup := []Op{put(0, 0, 1, "a", "v1", 2), put(1, 0, 1, "b", "w1", 2)}
	if errs := CheckRevisions(dup); len(errs) != 1 || !strings.Contains(errs[0].Error(), "created twice") {
		t.Errorf("one revision twice: %v", errs)
	}
}

func TestCheckStream(t *testing.T) {
	evs := []Event{
		{Rev: 2, Key: "a", Value: "v1", ModRev: 2, CreateRev: 2, Version: 1},
		{Rev: 3, Key: "a", Value: "v2", ModRev: 3, CreateRev: 2, Version: 2},
		{Rev: 4, Key: "a", Delete: true},
		{Rev: 5, Key: "a", Value: "v3", ModRev: 5, CreateRev: 5, Version: 1},
	}
	if errs := CheckStream(evs, 2, 5); len(errs) > 0 {
		t.Errorf("legal stream: %v", errs)
	}
	tests := []struct {
		name   string
		evs    []Event
		to     int64
		expect string
	}{
		{"gap", []Event{evs[0], evs[2], evs[3]}, 5, "missing"},
		{"duplicate", []Event{evs[0], evs[1], evs[1], evs[2], evs[3]}, 5, "again or out of order"},
		{"out of order", []Event{evs[0], evs[2], evs[1], evs[3]}, 5, "again or out of order"},
		{"incomplete", evs[:3], 5, "never arrived"},
		{"bad version", []Event{evs[0], {Rev: 3, Key: "a", Value: "v2", ModRev: 3, CreateRev: 2, Version: 1}}, 3, "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := CheckStream(tt.evs, 2, tt.to); !anyContains(errs, tt.expect) {
				t.Errorf("got %v, want an error containing %q", errs, tt.expect)
			}
		})
	}
}

func TestCheckAgainstHistory(t *testing.T) {
	evs := []Event{
		{Rev: 2, Key: "a", Value: "v1", ModRev: 2, CreateRev: 2, Version: 1},
		{Rev: 3, Key: "a", Value: "v2", ModRev: 3, CreateRev: 2, Version: 2},
		{Rev: 4, Key: "a", Delete: true},
	}
	ops := []Op{
		put(0, 0, 1, "a", "v1", 2),
		unknown(put(1, 0, 1, "a", "v2", 0)),
		get(2, 2, 3, "a", 3, "v2", 3, 2, 2),
		del(0, 4, 5, "a", 4, 1),
		cas(1, 6, 7, "a", "x", 3, 4, false),
	}
	if errs := CheckAgainstHistory(evs, ops); len(errs) > 0 {
		t.Errorf("consistent: %v", errs)
	}
	tests := []struct {
		name   string
		evs    []Event
		ops    []Op
		expect string
	}{
		{"acknowledged write missing", evs[1:], ops, "no event at revision 2"},
		{"failed compare-and-set applied", append(evs[:3:3], Event{Rev: 5, Key: "a", Value: "x", ModRev: 5, CreateRev: 5, Version: 1}), ops, "saw fail"},
		{"write applied twice", append(evs[:3:3], Event{Rev: 5, Key: "a", Value: "v1", ModRev: 5, CreateRev: 5, Version: 1}), ops, "applied twice"},
		{"phantom delete", evs, []Op{ops[0], ops[1], ops[2]}, "no delete"},
		{"read disagrees", evs, append(ops[:4:4], get(2, 2, 3, "a", 2, "v2", 3, 2, 2)), "watch stream has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := CheckAgainstHistory(tt.evs, tt.ops); !anyContains(errs, tt.expect) {
				t.Errorf("got %v, want an error containing %q", errs, tt.expect)
			}
		})
	}
}

func anyContains(errs []error, s string) bool {
	for _, err := range errs {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}
