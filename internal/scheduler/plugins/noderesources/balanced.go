package noderesources

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// BalancedName is the balanced allocation plugin's name.
const BalancedName = "balancedallocation"

func init() {
	framework.Register(framework.KindScore, BalancedName, "prefer nodes whose resources stay evenly used", NewBalanced)
}

// BalancedArgs configure balancedallocation.
type BalancedArgs struct {
	// Resources default to cpu and memory (weights are ignored).
	Resources []ResourceSpec `json:"resources,omitempty"`
}

// Balanced implements PreScore and Score.
type Balanced struct{ resources []v1.ResourceName }

// NewBalanced is the factory.
func NewBalanced(raw json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	var args BalancedArgs
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	rs := args.Resources
	if len(rs) == 0 {
		rs = defaultResources
	}
	b := &Balanced{}
	for _, r := range rs {
		if r.Name == "" {
			return nil, fmt.Errorf("resources: resource without a name")
		}
		b.resources = append(b.resources, v1.ResourceName(r.Name))
	}
	return b, nil
}

// NodeLocal implements framework.NodeLocalPlugin: the verdict and score
// depend on the pod and the node only.
func (*Balanced) NodeLocal() {}

// Name implements framework.Plugin.
func (*Balanced) Name() string { return BalancedName }

// PreScore skips pods that request none of the resources: they change no
// node's balance.
func (b *Balanced) PreScore(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	for _, r := range b.resources {
		if pod.Requests.Get(r) > 0 {
			return nil
		}
	}
	return framework.NewStatus(framework.Skip)
}

// Score is (1 - standard deviation of the used fractions) × 100.
func (b *Balanced) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var fr [8]float64
	fractions := fr[:0]
	for _, r := range b.resources {
		req, alloc, wants := requestedAfter(r, pod, node, false)
		if alloc == 0 || (wants == 0 && isExtended(r)) {
			continue
		}
		fractions = append(fractions, min(1, float64(req)/float64(alloc)))
	}
	var std float64
	switch len(fractions) {
	case 0, 1:
	case 2:
		std = math.Abs(fractions[0]-fractions[1]) / 2
	default:
		var mean float64
		for _, f := range fractions {
			mean += f
		}
		mean /= float64(len(fractions))
		for _, f := range fractions {
			std += (f - mean) * (f - mean)
		}
		std = math.Sqrt(std / float64(len(fractions)))
	}
	return int64((1 - std) * float64(framework.MaxNodeScore)), nil
}
