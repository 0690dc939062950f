package framework

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestStatusNilIsSuccess(t *testing.T) {
	var s *Status
	if !s.IsSuccess() || s.Code() != Success || s.Err() != nil || s.Message() != "" || s.IsRejected() {
		t.Fatal("nil status is not a plain success")
	}
	for _, tc := range []struct {
		s        *Status
		rejected bool
	}{
		{NewStatus(Unschedulable, "x"), true},
		{NewStatus(UnschedulableAndUnresolvable, "x"), true},
		{NewStatus(Pending, "x"), true},
		{AsStatus(errors.New("boom")), false},
		{NewStatus(Skip), false},
	} {
		if tc.s.IsRejected() != tc.rejected {
			t.Errorf("%v: IsRejected = %v", tc.s, !tc.rejected)
		}
	}
}

func TestFitErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  FitError
		want string
	}{
		{"counted and sorted", FitError{NumAllNodes: 5, Diagnosis: Diagnosis{NodeToStatus: map[string]*Status{
			"a": NewStatus(Unschedulable, "Insufficient cpu"),
			"b": NewStatus(Unschedulable, "Insufficient cpu", "Insufficient memory"),
			"c": NewStatus(Unschedulable, "Insufficient cpu"),
			"d": NewStatus(UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"),
			"e": NewStatus(UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"),
		}}}, "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {k: v}, 1 Insufficient memory."},
		{"prefilter", FitError{NumAllNodes: 2, Diagnosis: Diagnosis{PreFilterMsg: "invalid pod affinity"}}, "0/2 nodes are available: invalid pod affinity."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParallelizerVisitsEachIndexOnce(t *testing.T) {
	for _, tc := range []struct{ workers, n int }{{1, 0}, {1, 10}, {2, 1}, {2, 5000}, {8, 777}} {
		seen := make([]atomic.Int32, tc.n)
		Parallelizer{Workers: tc.workers}.Until(context.Background(), tc.n, func(i int) { seen[i].Add(1) })
		for i := range seen {
			if seen[i].Load() != 1 {
				t.Fatalf("workers %d n %d: index %d visited %d times", tc.workers, tc.n, i, seen[i].Load())
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	s := []NodeScore{{"a", 0}, {"b", 5}, {"c", 10}}
	DefaultNormalizeScore(100, true, s)
	if s[0].Score != 100 || s[1].Score != 50 || s[2].Score != 0 {
		t.Fatalf("reverse normalize = %v", s)
	}
	m := []NodeScore{{"a", -10}, {"b", 0}, {"c", 10}}
	MinMaxNormalizeScore(100, m)
	if m[0].Score != 0 || m[1].Score != 50 || m[2].Score != 100 {
		t.Fatalf("min-max normalize = %v", m)
	}
}
