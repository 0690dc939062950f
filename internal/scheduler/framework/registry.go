package framework

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keelson-dev/keelson/internal/plugin"
)

// Factory builds a plugin from its args (JSON; nil when the profile gives
// none) and the framework handle.
type Factory func(args json.RawMessage, h Handle) (Plugin, error)

// Kinds under which scheduler plugins register: the plugin's main
// extension point. A plugin takes part in every point it implements
// whatever kind it registered under.
const (
	KindPreEnqueue = "preenqueue"
	KindQueueSort  = "queuesort"
	KindFilter     = "filter"
	KindPostFilter = "postfilter"
	KindScore      = "score"
	KindReserve    = "reserve"
	KindPermit     = "permit"
	KindBind       = "bind"
)

// ConfigVersion is the version of plugin args this framework speaks.
const ConfigVersion = "v1alpha1"

// Register registers a scheduler plugin as "scheduler.<kind>.<name>" in the
// project registry. Call it from init(). Names must be unique across
// kinds; the registry panics on duplicates.
func Register(kind, name, summary string, f Factory) {
	plugin.Register(plugin.Info{
		Name:          "scheduler." + kind + "." + name,
		Summary:       summary,
		ConfigVersion: ConfigVersion,
		Factory:       f,
	})
}

// LookupFactory finds a scheduler plugin by its short name, whatever its
// kind.
func LookupFactory(name string) (Factory, error) {
	var found []plugin.Info
	for _, info := range plugin.List("scheduler.") {
		if strings.HasSuffix(info.Name, "."+name) && strings.Count(info.Name, ".") == 2 {
			found = append(found, info)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("unknown scheduler plugin %q (compiled in: %s)", name, strings.Join(PluginNames(), ", "))
	case 1:
	default:
		return nil, fmt.Errorf("scheduler plugin name %q is registered under several kinds", name)
	}
	f, ok := found[0].Factory.(Factory)
	if !ok {
		return nil, fmt.Errorf("plugin %s: factory is %T, not framework.Factory", found[0].Name, found[0].Factory)
	}
	return f, nil
}

// PluginNames lists the short names of the compiled-in scheduler plugins.
func PluginNames() []string {
	var out []string
	for _, info := range plugin.List("scheduler.") {
		out = append(out, info.Name[strings.LastIndexByte(info.Name, '.')+1:])
	}
	return out
}

// DecodeArgs strictly decodes a plugin's JSON args into out (unknown
// fields are errors); empty args leave out unchanged.
func DecodeArgs(args json.RawMessage, out any) error {
	if len(bytes.TrimSpace(args)) == 0 || string(bytes.TrimSpace(args)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decoding args: %w", err)
	}
	return nil
}
