package placement

import "sort"

// Share is one cluster's claim in a Divided placement.
type Share struct {
	Cluster string
	// Weight ≥ 0. A cluster of weight 0 gets only its Min unless every
	// cluster with a positive weight is at its Max.
	Weight int64
	// Min replicas come first; Max 0 means unbounded.
	Min, Max int32
}

// Divide shares total replicas among shares and returns each share's
// count (same order) and how many replicas could not be placed because
// every cluster reached its Max.
//
// It is a sequential divisor (D'Hondt) method: replicas are handed out one
// at a time, each to the cluster that most deserves the next one —
// first any cluster still below its Min (by name), then the highest
// Weight/(assigned+1) (ties: higher weight, then name), then, if only
// zero-weight clusters can still take replicas, the one with the fewest.
// Because the result for total+1 is the result for total plus one more
// replica, raising the total never takes a replica away from any cluster
// (monotonicity), and the parts always sum to total minus unplaced.
func Divide(total int32, shares []Share) (counts []int32, unplaced int32) {
	counts = make([]int32, len(shares))
	if total <= 0 || len(shares) == 0 {
		return counts, max(total, 0)
	}
	// Sort indexes by name once so every tie-break is by name.
	order := make([]int, len(shares))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return shares[order[a]].Cluster < shares[order[b]].Cluster })

	open := func(i int) bool { return shares[i].Max <= 0 || counts[i] < shares[i].Max }
	for n := int32(0); n < total; n++ {
		best := -1
		// 1. below minimum.
		for _, i := range order {
			if open(i) && counts[i] < shares[i].Min {
				best = i
				break
			}
		}
		// 2. highest weight per seat.
		if best < 0 {
			for _, i := range order {
				if !open(i) || shares[i].Weight <= 0 {
					continue
				}
				if best < 0 || deserves(shares[i].Weight, counts[i], shares[best].Weight, counts[best]) {
					best = i
				}
			}
		}
		// 3. only zero-weight clusters left: fewest first.
		if best < 0 {
			for _, i := range order {
				if open(i) && (best < 0 || counts[i] < counts[best]) {
					best = i
				}
			}
		}
		if best < 0 {
			return counts, total - n
		}
		counts[best]++
	}
	return counts, 0
}

// deserves reports whether a cluster with weight wa and sa replicas has a
// strictly higher claim to the next replica than one with wb, sb:
// wa/(sa+1) > wb/(sb+1), ties to the higher weight. Callers iterate in
// name order, so remaining ties go to the earlier name.
func deserves(wa int64, sa int32, wb int64, sb int32) bool {
	l := mulSat(wa, int64(sb)+1)
	r := mulSat(wb, int64(sa)+1)
	if l != r {
		return l > r
	}
	return wa > wb
}

// mulSat multiplies non-negative a and b, saturating at the int64 maximum.
func mulSat(a, b int64) int64 {
	const maxInt64 = int64(^uint64(0) >> 1)
	if a != 0 && b > maxInt64/a {
		return maxInt64
	}
	return a * b
}
