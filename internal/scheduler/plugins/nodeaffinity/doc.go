// Package nodeaffinity implements spec.nodeSelector and
// requiredDuringScheduling node affinity as a filter (both must match; any
// one of the required terms suffices), and scores nodes by the summed
// weights of the preferred terms they match.
package nodeaffinity
