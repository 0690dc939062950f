package scheduler

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/prioritysort"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/schedulinggates"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func newTestQueue(clk *clocktesting.FakeClock, events map[string][]framework.ClusterEvent) *Queue {
	return NewQueue(QueueOptions{
		Clock: clk, InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, MaxInUnschedulable: 5 * time.Minute,
		Less: (&prioritysort.Plugin{}).Less,
		PreEnqueue: func(pi *framework.PodInfo) *framework.Status {
			return (&schedulinggates.Plugin{}).PreEnqueue(nil, pi.Pod).WithPlugin(schedulinggates.Name)
		},
		Events: func(*v1.Pod) map[string][]framework.ClusterEvent { return events },
	})
}

func TestQueueOrdersByPriority(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := newTestQueue(clk, nil)
	q.Add(st.Pod("low").Priority(1).Obj())
	clk.Step(time.Millisecond)
	q.Add(st.Pod("high").Priority(100).Obj())
	clk.Step(time.Millisecond)
	q.Add(st.Pod("low2").Priority(1).Obj())
	q.Add(st.Pod("gated").Priority(1000).Gate("wait").Obj())
	var got []string
	for range 3 {
		p, _, err := q.Pop(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Pod.Name)
	}
	if want := "high low low2"; join(got) != want {
		t.Fatalf("pop order = %s, want %s", join(got), want)
	}
	if _, _, _, g := q.Lengths(); g != 1 {
		t.Fatalf("gated = %d, want 1", g)
	}
	q.Update(st.Pod("gated").Priority(1000).Obj())
	if p, _, _ := q.Pop(t.Context()); p.Pod.Name != "gated" {
		t.Fatalf("ungated pod not active, popped %s", p.Pod.Name)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestQueueBackoffAndEvents(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	events := map[string][]framework.ClusterEvent{
		"noderesourcesfit": {{Resource: framework.EventNode, Action: framework.Add}},
	}
	for _, tc := range []struct {
		name       string
		rejected   bool
		event      *framework.ClusterEvent
		eventFirst bool
		wantActive bool
		wait       time.Duration
	}{
		{"error backs off then retries", false, nil, false, true, time.Second},
		{"error still backing off", false, nil, false, false, 500 * time.Millisecond},
		{"rejected waits for an event", true, nil, false, false, time.Minute},
		{"rejected moves on a relevant event", true, &framework.ClusterEvent{Resource: framework.EventNode, Action: framework.Add}, false, true, time.Second},
		{"irrelevant event leaves it", true, &framework.ClusterEvent{Resource: framework.EventNamespace, Action: framework.Add}, false, false, time.Second},
		{"event during the attempt is not lost", true, &framework.ClusterEvent{Resource: framework.EventNamespace, Action: framework.Add}, true, true, time.Second},
		{"retried after max time in unschedulable", true, nil, false, true, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQueue(clk, events)
			q.Add(st.Pod("p").Obj())
			p, cycle, err := q.Pop(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tc.eventFirst {
				q.OnEvent(*tc.event)
			}
			p.UnschedulablePlugins = map[string]struct{}{"noderesourcesfit": {}}
			q.AddUnschedulable(p, cycle, tc.rejected)
			if tc.event != nil && !tc.eventFirst {
				q.OnEvent(*tc.event)
			}
			clk.Step(tc.wait)
			q.Flush()
			if a, _, _, _ := q.Lengths(); (a == 1) != tc.wantActive {
				t.Fatalf("active = %d, want active %v", a, tc.wantActive)
			}
		})
	}
}
