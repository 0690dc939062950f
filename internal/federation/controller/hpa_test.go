package controller

import "testing"

func TestKeepDivision(t *testing.T) {
	p := func(n int32) *int32 { return &n }
	fresh := func() map[string]*int32 { return map[string]*int32{"a": p(5), "b": p(5)} }
	for _, tc := range []struct {
		name  string
		held  map[string]int32
		total int32
		want  map[string]int32
	}{
		{"held division kept", map[string]int32{"a": 2, "b": 8}, 10, map[string]int32{"a": 2, "b": 8}},
		{"total changed: fresh", map[string]int32{"a": 2, "b": 6}, 10, map[string]int32{"a": 5, "b": 5}},
		{"a selected cluster holds nothing: fresh", map[string]int32{"a": 10}, 10, map[string]int32{"a": 5, "b": 5}},
		{"a cluster left the placement: fresh", map[string]int32{"a": 2, "b": 6, "c": 2}, 10, map[string]int32{"a": 5, "b": 5}},
		{"nothing held: fresh", nil, 10, map[string]int32{"a": 5, "b": 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets := fresh()
			keepDivision(targets, tc.held, tc.total)
			for cl, n := range tc.want {
				if *targets[cl] != n {
					t.Errorf("%s: %d, want %d", cl, *targets[cl], n)
				}
			}
		})
	}
}
