// Package all links every compiled-in plugin into the binary. It is the one
// place that lists them: add a blank import here when adding a plugin
// package.
package all

import (
	_ "github.com/keelson-dev/keelson/internal/plugin" // registry itself; plugin packages follow
)
