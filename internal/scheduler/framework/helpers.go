package framework

// DefaultNormalizeScore scales scores so the largest becomes maxScore
// (when reverse, the smallest does: score = maxScore - scaled). All-zero
// scores become 0, or maxScore when reverse.
func DefaultNormalizeScore(maxScore int64, reverse bool, scores []NodeScore) *Status {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	if highest == 0 {
		if reverse {
			for i := range scores {
				scores[i].Score = maxScore
			}
		}
		return nil
	}
	for i := range scores {
		v := maxScore * scores[i].Score / highest
		if reverse {
			v = maxScore - v
		}
		scores[i].Score = v
	}
	return nil
}

// MinMaxNormalizeScore maps the lowest score to 0 and the highest to
// maxScore linearly (negative raw scores allowed); equal scores become 0.
func MinMaxNormalizeScore(maxScore int64, scores []NodeScore) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0].Score, scores[0].Score
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		if hi == lo {
			scores[i].Score = 0
			continue
		}
		scores[i].Score = maxScore * (scores[i].Score - lo) / (hi - lo)
	}
}
