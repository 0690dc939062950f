package loadaware

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "loadaware"

// Node annotations read by the plugin.
const (
	AnnotationCPUUsage    = "keelson.dev/cpu-usage"
	AnnotationMemoryUsage = "keelson.dev/memory-usage"
	// AnnotationUsageTime is when the usage was measured (RFC 3339).
	AnnotationUsageTime = "keelson.dev/usage-time"
)

// ReasonOverloaded is reported by Filter.
const ReasonOverloaded = "node(s) were too loaded"

func init() {
	framework.Register(framework.KindScore, Name, "score by real node load (metrics.k8s.io NodeMetrics, usage annotations, requests as fallback)", New)
}

// Args configure the plugin.
type Args struct {
	// CPUWeight and MemoryWeight weigh the two resources (default 1 each).
	CPUWeight    int64 `json:"cpuWeight,omitempty"`
	MemoryWeight int64 `json:"memoryWeight,omitempty"`
	// ThresholdPercent, when set (1–100), filters out nodes whose CPU or
	// memory usage is already above it.
	ThresholdPercent int64 `json:"thresholdPercent,omitempty"`
	// MaxAgeSeconds ignores usage measured longer ago (0: no limit; needs
	// keelson.dev/usage-time, or the NodeMetrics timestamp).
	MaxAgeSeconds int64 `json:"maxAgeSeconds,omitempty"`
	// MetricsAPI reads node usage from metrics.k8s.io NodeMetrics
	// (metrics-server) as well; a node with NodeMetrics uses them, one
	// without falls back to its annotations, then to requests.
	MetricsAPI bool `json:"metricsAPI,omitempty"`
	// MetricsIntervalSeconds is how often NodeMetrics are listed while
	// pods are being scheduled (default 15).
	MetricsIntervalSeconds int64 `json:"metricsIntervalSeconds,omitempty"`
}

// Plugin implements Filter and Score.
type Plugin struct {
	args Args
	now  func() time.Time

	// cache holds parsed annotations per node name, valid for one Node
	// object (parsing quantities for every node each cycle is costly).
	cache sync.Map // string → *usage
	// metrics is the NodeMetrics source (nil unless args.metricsAPI).
	metrics *metricsSource
}

type usage struct {
	node     *v1.Node
	cpu, mem int64
	ok       bool
	measured time.Time
}

// New is the factory.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	args := Args{CPUWeight: 1, MemoryWeight: 1, MetricsIntervalSeconds: 15}
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.CPUWeight < 0 || args.MemoryWeight < 0 || args.CPUWeight+args.MemoryWeight == 0 {
		return nil, errors.New("cpuWeight and memoryWeight must not be negative and not both 0")
	}
	if args.ThresholdPercent < 0 || args.ThresholdPercent > 100 || args.MaxAgeSeconds < 0 {
		return nil, errors.New("thresholdPercent must be within 0..100 and maxAgeSeconds not negative")
	}
	if args.MetricsIntervalSeconds <= 0 {
		return nil, errors.New("metricsIntervalSeconds must be positive")
	}
	p := &Plugin{args: args, now: time.Now}
	if args.MetricsAPI {
		var fetch FetchFunc
		if h != nil && h.ClientSet() != nil {
			fetch = clientFetcher(h.ClientSet())
		} else {
			fetch = func(context.Context) (map[string]metricsUsage, error) {
				return nil, errors.New("no client for the metrics API")
			}
		}
		p.metrics = &metricsSource{fetch: fetch, interval: time.Duration(args.MetricsIntervalSeconds) * time.Second, timeout: 10 * time.Second,
			now: func() time.Time { return p.now() }}
	}
	return p, nil
}

// SetClock replaces the clock used to age usage.
func (p *Plugin) SetClock(now func() time.Time) { p.now = now }

// SetFetcher replaces how NodeMetrics are listed (tests); only with
// metricsAPI.
func (p *Plugin) SetFetcher(f FetchFunc) {
	if p.metrics != nil {
		p.metrics.fetch = f
	}
}

// PreFilter refreshes NodeMetrics in the background when they are older
// than the interval; the cycle uses what is there.
func (p *Plugin) PreFilter(context.Context, *framework.CycleState, *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	if p.metrics != nil {
		p.metrics.maybeRefresh()
	}
	if p.args.ThresholdPercent == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	return nil, nil
}

// PreScore refreshes NodeMetrics as PreFilter does (a profile may enable
// the plugin for Score only).
func (p *Plugin) PreScore(context.Context, *framework.CycleState, *framework.PodInfo, []*framework.NodeInfo) *framework.Status {
	if p.metrics != nil {
		p.metrics.maybeRefresh()
	}
	return nil
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

func (p *Plugin) parse(node *v1.Node) *usage {
	if u, ok := p.cache.Load(node.Name); ok && u.(*usage).node == node {
		return u.(*usage)
	}
	u := &usage{node: node}
	c, cok := node.Annotations[AnnotationCPUUsage]
	m, mok := node.Annotations[AnnotationMemoryUsage]
	if cok && mok {
		cq, err1 := resource.ParseQuantity(c)
		mq, err2 := resource.ParseQuantity(m)
		if err1 == nil && err2 == nil {
			u.cpu, u.mem, u.ok = cq.MilliValue(), mq.Value(), true
		}
		if t, err := time.Parse(time.RFC3339, node.Annotations[AnnotationUsageTime]); err == nil {
			u.measured = t
		}
	}
	p.cache.Store(node.Name, u)
	return u
}

func (p *Plugin) fresh(measured time.Time) bool {
	return p.args.MaxAgeSeconds == 0 || (!measured.IsZero() && p.now().Sub(measured) <= time.Duration(p.args.MaxAgeSeconds)*time.Second)
}

// load returns the node's CPU (millicores) and memory (bytes) in use:
// NodeMetrics (metricsAPI), else annotations, else requests.
func (p *Plugin) load(node *framework.NodeInfo) (cpu, mem int64) {
	if p.metrics != nil {
		if m, ok := p.metrics.get(node.Name()); ok && p.fresh(m.measured) {
			return m.cpu, m.mem
		}
	}
	u := p.parse(node.Node())
	if u.ok && p.fresh(u.measured) {
		return u.cpu, u.mem
	}
	return node.NonZeroRequested.MilliCPU, node.NonZeroRequested.Memory
}

// Filter rejects nodes loaded above the threshold (when set).
func (p *Plugin) Filter(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if p.args.ThresholdPercent == 0 {
		return nil
	}
	cpu, mem := p.load(node)
	a := &node.Allocatable
	if (a.MilliCPU > 0 && cpu*100 > p.args.ThresholdPercent*a.MilliCPU) || (a.Memory > 0 && mem*100 > p.args.ThresholdPercent*a.Memory) {
		return framework.NewStatus(framework.Unschedulable, ReasonOverloaded)
	}
	return nil
}

func free(used, alloc int64) int64 {
	if alloc <= 0 || used >= alloc {
		return 0
	}
	return (alloc - used) * framework.MaxNodeScore / alloc
}

// Score is the weighted free fraction of CPU and memory after adding the
// pod's requests to the node's load.
func (p *Plugin) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	cpu, mem := p.load(node)
	cpu += pod.NonZeroCPU
	mem += pod.NonZeroMemory
	s := p.args.CPUWeight*free(cpu, node.Allocatable.MilliCPU) + p.args.MemoryWeight*free(mem, node.Allocatable.Memory)
	return s / (p.args.CPUWeight + p.args.MemoryWeight), nil
}

// EventsToRegister: load changes arrive as node updates.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventNode, Action: framework.Add | framework.Update}}
}
