package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestDivideTable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		total    int32
		shares   []Share
		want     []int32
		unplaced int32
	}{
		{"equal weights", 4, []Share{{Cluster: "a", Weight: 1}, {Cluster: "b", Weight: 1}}, []int32{2, 2}, 0},
		{"odd total ties to name", 3, []Share{{Cluster: "b", Weight: 1}, {Cluster: "a", Weight: 1}}, []int32{1, 2}, 0},
		{"weights 2:1", 3, []Share{{Cluster: "a", Weight: 2}, {Cluster: "b", Weight: 1}}, []int32{2, 1}, 0},
		{"weights 3:1 of 8", 8, []Share{{Cluster: "a", Weight: 3}, {Cluster: "b", Weight: 1}}, []int32{6, 2}, 0},
		{"min first", 2, []Share{{Cluster: "a", Weight: 10}, {Cluster: "b", Weight: 1, Min: 2}}, []int32{0, 2}, 0},
		{"max caps", 5, []Share{{Cluster: "a", Weight: 10, Max: 1}, {Cluster: "b", Weight: 1}}, []int32{1, 4}, 0},
		{"all at max", 5, []Share{{Cluster: "a", Weight: 1, Max: 1}, {Cluster: "b", Weight: 1, Max: 2}}, []int32{1, 2}, 2},
		{"zero weight only min", 4, []Share{{Cluster: "a", Weight: 1}, {Cluster: "b", Weight: 0, Min: 1}}, []int32{3, 1}, 0},
		{"all zero weight spread evenly", 3, []Share{{Cluster: "a"}, {Cluster: "b"}}, []int32{2, 1}, 0},
		{"zero total", 0, []Share{{Cluster: "a", Weight: 1}}, []int32{0}, 0},
		{"no shares", 3, nil, []int32{}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unplaced := Divide(tc.total, tc.shares)
			if !slices.Equal(got, tc.want) || unplaced != tc.unplaced {
				t.Fatalf("Divide(%d, %+v) = %v, %d; want %v, %d", tc.total, tc.shares, got, unplaced, tc.want, tc.unplaced)
			}
		})
	}
}

// randomShares draws division inputs: 1–8 clusters, small or huge weights,
// zero weights, random mins and maxes.
func randomShares(r *rand.Rand) []Share {
	n := 1 + r.IntN(8)
	out := make([]Share, n)
	for i := range out {
		s := Share{Cluster: fmt.Sprintf("c%d", i), Weight: int64(r.IntN(5))}
		if r.IntN(3) == 0 {
			s.Weight = int64(r.IntN(1_000_000))
		}
		if r.IntN(3) == 0 {
			s.Min = int32(r.IntN(4))
		}
		if r.IntN(3) == 0 {
			s.Max = s.Min + int32(r.IntN(6))
		}
		out[i] = s
	}
	return out
}

// TestDivideMonotonicProperty checks, for random weights, mins and maxes
// and every total from 0 to 60, that (1) the parts plus the unplaced
// remainder sum to the total, (2) no cluster exceeds its max, (3) mins are
// met as soon as the total allows, and (4) raising the total by one never
// lowers any cluster's share.
func TestDivideMonotonicProperty(t *testing.T) {
	prop := func(shares []Share) bool {
		prev := make([]int32, len(shares))
		var sumMin int32
		for _, s := range shares {
			if s.Max > 0 {
				sumMin += min(s.Min, s.Max)
			} else {
				sumMin += s.Min
			}
		}
		for total := int32(0); total <= 60; total++ {
			got, unplaced := Divide(total, shares)
			var sum int32
			for i, n := range got {
				sum += n
				if n < prev[i] {
					t.Logf("total %d: cluster %s went from %d to %d (%+v)", total, shares[i].Cluster, prev[i], n, shares)
					return false
				}
				if shares[i].Max > 0 && n > shares[i].Max {
					t.Logf("total %d: cluster %s over max: %d", total, shares[i].Cluster, n)
					return false
				}
				if total >= sumMin && n < min(shares[i].Min, max(shares[i].Max, shares[i].Min)) {
					t.Logf("total %d: cluster %s below min: %d", total, shares[i].Cluster, n)
					return false
				}
			}
			if sum+unplaced != total || unplaced < 0 {
				t.Logf("total %d: parts sum to %d, unplaced %d", total, sum, unplaced)
				return false
			}
			prev = got
		}
		return true
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		shares := randomShares(r)
		if !prop(shares) {
			t.Fatalf("property failed for %+v", shares)
		}
	}
}

func BenchmarkDivide20Clusters(b *testing.B) {
	shares := make([]Share, 20)
	for i := range shares {
		shares[i] = Share{Cluster: fmt.Sprintf("c%02d", i), Weight: int64(i + 1)}
	}
	for b.Loop() {
		Divide(100, shares)
	}
}
