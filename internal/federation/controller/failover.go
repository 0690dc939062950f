package controller

import (
	"time"
)

// ClusterHealth is what failover knows about one cluster.
type ClusterHealth struct {
	Name  string
	Ready bool
	// NotReadySince is when Ready last became false (zero if Ready).
	NotReadySince time.Time
}

// FailoverDecision is the outcome of Failover.
type FailoverDecision struct {
	// Evict are clusters whose replicas must move away.
	Evict map[string]bool
	// Tolerating are unready clusters still inside the toleration (kept).
	Tolerating map[string]bool
	// Brake is set when more than half of the clusters are not ready: no
	// cluster is evicted, all unready ones are kept.
	Brake bool
	// Held are the unready clusters whose toleration has run out but
	// which the brake keeps (empty without the brake).
	Held map[string]bool
	// Unready counts the clusters not ready, of Total.
	Unready, Total int
	// RecheckAfter is when the earliest tolerating cluster runs out of
	// toleration (0 if none).
	RecheckAfter time.Duration
}

// Failover decides which clusters to evict at now, given their health and
// the toleration. The fleet-wide brake — more than half of all clusters
// not ready at once — stops every eviction: a failure that wide is more
// likely the control plane's view (network, host) than the members, and
// moving everything onto the few survivors would overload them.
func Failover(clusters []ClusterHealth, now time.Time, toleration time.Duration) FailoverDecision {
	d := FailoverDecision{Evict: map[string]bool{}, Tolerating: map[string]bool{}, Held: map[string]bool{}, Total: len(clusters)}
	for _, c := range clusters {
		if !c.Ready {
			d.Unready++
		}
	}
	d.Brake = d.Unready*2 > len(clusters)
	for _, c := range clusters {
		if c.Ready {
			continue
		}
		left := c.NotReadySince.Add(toleration).Sub(now)
		if left <= 0 {
			if d.Brake {
				d.Held[c.Name] = true
				d.Tolerating[c.Name] = true
			} else {
				d.Evict[c.Name] = true
			}
			continue
		}
		d.Tolerating[c.Name] = true
		if d.RecheckAfter == 0 || left < d.RecheckAfter {
			d.RecheckAfter = left
		}
	}
	return d
}
