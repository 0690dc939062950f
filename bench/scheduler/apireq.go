package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiCounts are the kube-apiserver's apiserver_request_total summed by
// "VERB resource[/subresource]".
type apiCounts map[string]float64

// apiRequests reads the kube-apiserver's request counters.
func (b *bench) apiRequests(ctx context.Context) (apiCounts, error) {
	raw, err := b.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver metrics: %w", err)
	}
	out := apiCounts{}
	for l := range strings.SplitSeq(string(raw), "\n") {
		rest, ok := strings.CutPrefix(l, "apiserver_request_total{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64)
		if err != nil {
			continue
		}
		lbl := map[string]string{}
		for kv := range strings.SplitSeq(rest[:end], ",") {
			k, val, ok := strings.Cut(kv, "=")
			if ok {
				lbl[k] = strings.Trim(val, `"`)
			}
		}
		key := lbl["verb"] + " " + lbl["resource"]
		if lbl["subresource"] != "" {
			key += "/" + lbl["subresource"]
		}
		out[key] += v
	}
	return out, nil
}

// sub is c minus before.
func (c apiCounts) sub(before apiCounts) apiCounts {
	out := apiCounts{}
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// perPod is the count of resource requests other than LIST and WATCH
// (the scheduler's informers start with those) per pod; non-resource
// requests (the bench's reads of /metrics) are left out.
func (c apiCounts) perPod(pods int) float64 {
	var n float64
	for k, v := range c {
		if !strings.HasPrefix(k, "LIST ") && !strings.HasPrefix(k, "WATCH ") && !strings.HasSuffix(k, " ") {
			n += v
		}
	}
	return n / float64(max(pods, 1))
}

// breakdown lists the requests per pod, largest first, leaving out those
// under 0.01 per pod.
func (c apiCounts) breakdown(pods int) string {
	keys := slices.Collect(maps.Keys(c))
	slices.SortFunc(keys, func(a, b string) int {
		if c[a] != c[b] {
			if c[a] > c[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		if per := c[k] / float64(max(pods, 1)); per >= 0.01 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, per))
		}
	}
	return strings.Join(parts, ", ")
}

// settledRequests reads the request counters until the mutating ones
// have not moved for three seconds (events trail the bindings), at most
// 30 s.
func (b *bench) settledRequests(ctx context.Context) (apiCounts, error) {
	mutating := func(c apiCounts) float64 {
		var n float64
		for k, v := range c {
			if !strings.HasPrefix(k, "GET ") && !strings.HasPrefix(k, "LIST ") && !strings.HasPrefix(k, "WATCH ") {
				n += v
			}
		}
		return n
	}
	last, err := b.apiRequests(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	still := 0
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := b.apiRequests(ctx)
		if err != nil {
			return nil, err
		}
		if mutating(cur) != mutating(last) {
			still = 0
		} else if still++; still == 3 {
			return cur, nil
		}
		last = cur
	}
	return last, nil
}
