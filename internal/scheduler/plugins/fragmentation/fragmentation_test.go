package fragmentation

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// handle adds pending shapes to the test handle.
type handle struct {
	st.Handle
	shapes []framework.PendingShape
}

func (h *handle) PendingShapes(max int) []framework.PendingShape {
	return h.shapes[:min(max, len(h.shapes))]
}

const gi = int64(1) << 30

func shape(cpu string, memGi int64, n int) framework.PendingShape {
	rl := st.ResourceList("cpu", cpu)
	return framework.PendingShape{MilliCPU: rl.Cpu().MilliValue(), Memory: memGi * gi, Count: n}
}

// node is a 32-CPU / 256 GiB / 110-pod node holding pods of the given
// cpu/memory requests.
func node(name string, used ...[2]string) (*v1.Node, []*v1.Pod) {
	n := st.Node(name).Cap("cpu", "32", "memory", "256Gi", "pods", "110").Obj()
	var pods []*v1.Pod
	for i, u := range used {
		pods = append(pods, st.Pod(name+"-p"+string(rune('a'+i))).Node(name).Req("cpu", u[0], "memory", u[1]).Obj())
	}
	return n, pods
}

func TestScore(t *testing.T) {
	// Nodes of 32 CPUs and 256 GiB.
	empty := func(name string) ([]*v1.Node, []*v1.Pod) {
		n, p := node(name)
		return []*v1.Node{n}, p
	}
	withHole := func(name, cpu, mem string) ([]*v1.Node, []*v1.Pod) {
		free := st.ResourceList("cpu", "32", "memory", "256Gi")
		c, m := free[v1.ResourceCPU], free[v1.ResourceMemory]
		c.Sub(st.ResourceList("cpu", cpu)[v1.ResourceCPU])
		m.Sub(st.ResourceList("memory", mem)[v1.ResourceMemory])
		n, p := node(name, [2]string{c.String(), m.String()})
		return []*v1.Node{n}, p
	}
	full := func(name string, pods int) ([]*v1.Node, []*v1.Pod) {
		n := st.Node(name).Cap("cpu", "32", "memory", "256Gi", "pods", "110").Obj()
		var ps []*v1.Pod
		for i := range pods {
			ps = append(ps, st.Pod(name+"-"+strings.Repeat("x", i+1)).Node(name).Req("cpu", "10m", "memory", "1Mi").Obj())
		}
		return []*v1.Node{n}, ps
	}
	join := func(parts ...func() ([]*v1.Node, []*v1.Pod)) ([]*v1.Node, []*v1.Pod) {
		var ns []*v1.Node
		var ps []*v1.Pod
		for _, f := range parts {
			n, p := f()
			ns, ps = append(ns, n...), append(ps, p...)
		}
		return ns, ps
	}
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		pending []framework.PendingShape
		nodes   func() ([]*v1.Node, []*v1.Pod)
		want    map[string]int64
	}{
		{
			name:    "a small pod keeps out of the hole a pending big pod needs",
			pod:     st.Pod("small").Req("cpu", "1", "memory", "4Gi").Obj(),
			pending: []framework.PendingShape{shape("6", 40, 1), shape("1", 4, 3)},
			nodes: func() ([]*v1.Node, []*v1.Pod) {
				return join(func() ([]*v1.Node, []*v1.Pod) { return withHole("hole", "6", "40Gi") }, func() ([]*v1.Node, []*v1.Pod) { return empty("empty") })
			},
			want: map[string]int64{"hole": 0, "empty": 100},
		},
		{
			name:    "a pod fills a hole no pending pod can use",
			pod:     st.Pod("filler").Req("cpu", "2", "memory", "2Gi").Obj(),
			pending: []framework.PendingShape{shape("4", 16, 5), shape("2", 2, 1)},
			nodes: func() ([]*v1.Node, []*v1.Pod) {
				return join(func() ([]*v1.Node, []*v1.Pod) { return withHole("hole", "2", "2Gi") }, func() ([]*v1.Node, []*v1.Pod) { return empty("empty") })
			},
			want: map[string]int64{"hole": 100, "empty": 0},
		},
		{
			name:    "memory stranded by a CPU-heavy pod counts",
			pod:     st.Pod("cpu-heavy").Req("cpu", "4", "memory", "4Gi").Obj(),
			pending: []framework.PendingShape{shape("1", 12, 4)},
			// On "balanced" 4 CPUs and 48 GiB stay free: four pending
			// pods still fit. On "cpu-short" the pod would take the last
			// CPUs and leave 44 GiB nobody can use.
			nodes: func() ([]*v1.Node, []*v1.Pod) {
				return join(func() ([]*v1.Node, []*v1.Pod) { return withHole("balanced", "8", "52Gi") }, func() ([]*v1.Node, []*v1.Pod) { return withHole("cpu-short", "4", "48Gi") })
			},
			want: map[string]int64{"balanced": 100, "cpu-short": 0},
		},
		{
			name:    "the last pod slot is room too",
			pod:     st.Pod("tiny").Req("cpu", "100m", "memory", "128Mi").Obj(),
			pending: []framework.PendingShape{shape("1", 1, 10)},
			nodes: func() ([]*v1.Node, []*v1.Pod) {
				return join(func() ([]*v1.Node, []*v1.Pod) { return full("one-slot-left", 109) }, func() ([]*v1.Node, []*v1.Pod) { return empty("empty") })
			},
			// Taking the last slot strands all the node's room: the change
			// is larger on the nearly full node, which is therefore worse.
			want: map[string]int64{"one-slot-left": 0, "empty": 100},
		},
		{
			name:    "equal changes tie",
			pod:     st.Pod("p").Req("cpu", "1", "memory", "1Gi").Obj(),
			pending: []framework.PendingShape{shape("1", 1, 2)},
			nodes: func() ([]*v1.Node, []*v1.Pod) {
				return join(func() ([]*v1.Node, []*v1.Pod) { return empty("a") }, func() ([]*v1.Node, []*v1.Pod) { return empty("b") })
			},
			want: map[string]int64{"a": 0, "b": 0},
		},
		{
			name:  "no pending pods: skipped",
			pod:   st.Pod("p").Req("cpu", "1").Obj(),
			nodes: func() ([]*v1.Node, []*v1.Pod) { return empty("a") },
			want:  map[string]int64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, pods := tc.nodes()
			snap := st.Cluster(nodes, pods, nil)
			p, err := New(nil, &handle{Handle: st.Handle{Snap: snap}, shapes: tc.pending})
			if err != nil {
				t.Fatal(err)
			}
			got := st.Score(t.Context(), t, p, tc.pod, snap)
			if len(got) != len(tc.want) {
				t.Fatalf("scores = %v, want %v", got, tc.want)
			}
			for n, w := range tc.want {
				if got[n] != w {
					t.Errorf("score(%s) = %d, want %d (all: %v)", n, got[n], w, got)
				}
			}
		})
	}
}

func TestScoreWithoutPendingHandleSkips(t *testing.T) {
	n, _ := node("a")
	snap := st.Cluster([]*v1.Node{n}, nil, nil)
	p := st.NewPlugin(t, New, "", snap)
	if got := st.Score(t.Context(), t, p, st.Pod("p").Req("cpu", "1").Obj(), snap); len(got) != 0 {
		t.Fatalf("scores = %v, want none (skipped)", got)
	}
}

func TestFragment(t *testing.T) {
	const cpu, mem = 32000, 256 * gi
	shapes := []framework.PendingShape{shape("6", 40, 1), shape("1", 4, 3)}
	for _, tc := range []struct {
		name                   string
		freeCPU, freeMem, slot int64
		want                   float64
	}{
		{"everything fits", 32000, 256 * gi, 110, 0},
		{"big misfits: a quarter of the pods, room 5/32", 5000, 100 * gi, 110, 0.25 * 100.0 / 256},
		{"nothing fits: all of the larger free fraction", 500, 64 * gi, 110, 0.25},
		{"no slot left: all the room is stranded", 32000, 128 * gi, 0, 1},
		{"no room at all", 0, 0, 110, 0},
		{"overcommitted node counts as no room", -100, -gi, 110, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Fragment(shapes, 4, tc.freeCPU, tc.freeMem, tc.slot, cpu, mem)
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("Fragment = %v, want %v", got, tc.want)
			}
		})
	}
	if got := Fragment(nil, 0, 1000, gi, 1, cpu, mem); got != 0 {
		t.Fatalf("Fragment without pending pods = %v, want 0", got)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args, err string
	}{
		{"", ""},
		{`{"maxShapes": 8}`, ""},
		{`{"maxShapes": 0}`, "outside 1..1024"},
		{`{"maxShapes": 5000}`, "outside 1..1024"},
		{`{"shapes": 8}`, "unknown field"},
	} {
		var raw json.RawMessage
		if tc.args != "" {
			raw = json.RawMessage(tc.args)
		}
		_, err := New(raw, &st.Handle{})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("New(%s) error = %v, want %q", tc.args, err, tc.err)
		}
	}
}
