package controller

import (
	"testing"
	"time"
)

func TestFailover(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tol := time.Minute
	for _, tc := range []struct {
		name       string
		clusters   []ClusterHealth
		evict      []string
		tolerating []string
		brake      bool
		recheck    time.Duration
	}{
		{"all ready", []ClusterHealth{{Name: "a", Ready: true}, {Name: "b", Ready: true}}, nil, nil, false, 0},
		{"inside toleration", []ClusterHealth{{Name: "a", Ready: true}, {Name: "b", Ready: true}, {Name: "c", NotReadySince: ago(20 * time.Second)}},
			nil, []string{"c"}, false, 40 * time.Second},
		{"past toleration", []ClusterHealth{{Name: "a", Ready: true}, {Name: "b", Ready: true}, {Name: "c", NotReadySince: ago(2 * time.Minute)}},
			[]string{"c"}, nil, false, 0},
		{"exactly half down still evicts", []ClusterHealth{{Name: "a", Ready: true}, {Name: "b", NotReadySince: ago(time.Hour)}},
			[]string{"b"}, nil, false, 0},
		{"brake: more than half down", []ClusterHealth{{Name: "a", Ready: true}, {Name: "b", NotReadySince: ago(time.Hour)}, {Name: "c", NotReadySince: ago(time.Hour)}},
			nil, []string{"b", "c"}, true, 0},
		{"brake: all down", []ClusterHealth{{Name: "a", NotReadySince: ago(time.Hour)}}, nil, []string{"a"}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Failover(tc.clusters, now, tol)
			if d.Brake != tc.brake || len(d.Evict) != len(tc.evict) || len(d.Tolerating) != len(tc.tolerating) || d.RecheckAfter != tc.recheck {
				t.Fatalf("Failover = %+v; want evict %v tolerating %v brake %v recheck %v", d, tc.evict, tc.tolerating, tc.brake, tc.recheck)
			}
			for _, c := range tc.evict {
				if !d.Evict[c] {
					t.Errorf("%s not evicted", c)
				}
			}
			for _, c := range tc.tolerating {
				if !d.Tolerating[c] {
					t.Errorf("%s not tolerated", c)
				}
			}
		})
	}
}

// TestFailoverBrakeHolds: under the brake, clusters past their toleration
// are held (reported), not evicted, and the one still inside it is
// rechecked when its toleration ends.
func TestFailoverBrakeHolds(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d := Failover([]ClusterHealth{{Name: "a", Ready: true}, {Name: "b", NotReadySince: now.Add(-time.Hour)},
		{Name: "c", NotReadySince: now.Add(-20 * time.Second)}}, now, time.Minute)
	if !d.Brake || len(d.Evict) != 0 || !d.Held["b"] || d.Held["c"] || !d.Tolerating["c"] || d.RecheckAfter != 40*time.Second {
		t.Fatalf("Failover = %+v; want brake, b held, c tolerated, recheck 40s", d)
	}
	if d.Unready != 2 || d.Total != 3 {
		t.Errorf("unready %d of %d, want 2 of 3", d.Unready, d.Total)
	}
}
