package plugin

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Info describes one registered plugin.
type Info struct {
	// Name is namespaced: "<component>.<kind>.<name>", e.g. "store.backend.postgres".
	Name string
	// Summary is one line for `keelson plugins`.
	Summary string
	// ConfigVersion names the version of the plugin's config type, e.g. "v1".
	ConfigVersion string
	// Factory builds the plugin; its type is fixed by the extension point
	// (for example store.BackendFactory) and asserted by the component.
	Factory any
}

var (
	mu       sync.RWMutex
	registry = map[string]Info{}
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9]*\.[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$`)
)

// Register adds a plugin. It panics on a malformed or duplicate name: both
// are programming errors caught the first time the binary starts.
func Register(info Info) {
	if !nameRE.MatchString(info.Name) {
		panic(fmt.Sprintf("plugin: name %q is not <component>.<kind>.<name> in lower case", info.Name))
	}
	if info.Factory == nil {
		panic(fmt.Sprintf("plugin: %s registered without a factory", info.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[info.Name]; dup {
		panic(fmt.Sprintf("plugin: %s registered twice", info.Name))
	}
	if info.ConfigVersion == "" {
		info.ConfigVersion = "v1"
	}
	registry[info.Name] = info
}

// Lookup returns the plugin registered under name.
func Lookup(name string) (Info, bool) {
	mu.RLock()
	defer mu.RUnlock()
	info, ok := registry[name]
	return info, ok
}

// List returns the plugins whose name starts with prefix ("" for all),
// sorted by name.
func List(prefix string) []Info {
	mu.RLock()
	defer mu.RUnlock()
	var out []Info
	for name, info := range registry {
		if strings.HasPrefix(name, prefix) {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the last segment of every plugin name under prefix, sorted;
// handy for error messages ("known backends: mysql, postgres").
func Names(prefix string) []string {
	var out []string
	for _, info := range List(prefix) {
		out = append(out, strings.TrimPrefix(info.Name, prefix))
	}
	return out
}
