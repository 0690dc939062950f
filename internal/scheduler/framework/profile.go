package framework

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ExtensionPoint names, as used in PluginConfig.ExtensionPoints.
var ExtensionPoints = []string{"PreEnqueue", "QueueSort", "PreFilter", "Filter", "PostFilter", "PreScore", "Score", "Reserve", "Permit", "PreBind", "Bind", "PostBind"}

// ProfileConfig is one scheduling profile: the pods whose
// spec.schedulerName equals SchedulerName are scheduled with its plugins.
type ProfileConfig struct {
	SchedulerName string `json:"schedulerName"`
	// Plugins are enabled in this order; within each extension point they
	// run in this order.
	Plugins []PluginConfig `json:"plugins"`
}

// PluginConfig enables one plugin in a profile.
type PluginConfig struct {
	// Name is the plugin's short name, e.g. "noderesourcesfit".
	Name string `json:"name"`
	// Weight multiplies the plugin's normalized score (1–100; 0 means 1).
	Weight int32 `json:"weight,omitempty"`
	// Args is the plugin's own config, decoded by its factory.
	Args json.RawMessage `json:"args,omitempty"`
	// ExtensionPoints, when set, restricts the plugin to these points
	// (e.g. ["Filter"] to use a plugin's filter but not its score).
	ExtensionPoints []string `json:"extensionPoints,omitempty"`
}

// MaxWeight is the largest plugin weight.
const MaxWeight = 100

// Validate checks the profile without building plugins.
func (p *ProfileConfig) Validate() error {
	var errs []error
	if p.SchedulerName == "" {
		errs = append(errs, errors.New("schedulerName is empty"))
	}
	seen := map[string]bool{}
	for i, pc := range p.Plugins {
		where := fmt.Sprintf("plugins[%d]", i)
		if pc.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
			continue
		}
		where += " (" + pc.Name + ")"
		if seen[pc.Name] {
			errs = append(errs, fmt.Errorf("%s: enabled twice", where))
		}
		seen[pc.Name] = true
		if _, err := LookupFactory(pc.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if pc.Weight < 0 || pc.Weight > MaxWeight {
			errs = append(errs, fmt.Errorf("%s: weight %d is outside 0..%d", where, pc.Weight, MaxWeight))
		}
		for _, ep := range pc.ExtensionPoints {
			if canonicalPoint(ep) == "" {
				errs = append(errs, fmt.Errorf("%s: unknown extension point %q (one of %s)", where, ep, strings.Join(ExtensionPoints, ", ")))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("profile %q: %w", p.SchedulerName, err)
	}
	return nil
}

func canonicalPoint(s string) string {
	for _, ep := range ExtensionPoints {
		if strings.EqualFold(ep, s) {
			return ep
		}
	}
	return ""
}

func (pc *PluginConfig) enabledAt(point string) bool {
	if len(pc.ExtensionPoints) == 0 {
		return true
	}
	for _, ep := range pc.ExtensionPoints {
		if strings.EqualFold(ep, point) {
			return true
		}
	}
	return false
}
