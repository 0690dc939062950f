// Package plugin is Keelson's one registry of compiled-in extensions.
//
// Every component is extended the same way: a plugin package registers
// itself from init() under a namespaced name — "store.backend.<name>",
// "scheduler.filter.<name>", "dns.source.<name>", "federation.policy.<name>",
// "autoscale.forecaster.<name>" — and the blank imports that pull plugin
// packages into the binary are collected in one file,
// internal/plugin/all/all.go. Registering a name twice is a programming
// error and panics at start-up, so duplicates never ship.
//
// Lifecycle. A plugin's factory turns a typed, versioned config into an
// instance; the instance is validated, then started with a context and
// stopped when that context ends (or explicitly by Stop):
//
//	configure (factory) → Validate → Start(ctx) → Stop
//
// Plugins whose order matters (scheduler filters, DNS sources) are ordered
// by the component's config, never by registration order.
package plugin
