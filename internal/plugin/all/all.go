// Package all links every compiled-in plugin into the binary. It is the one
// place that lists them: add a blank import here when adding a plugin
// package.
package all

import (
	_ "github.com/keelson-dev/keelson/internal/plugin" // registry itself; plugin packages follow

	_ "github.com/keelson-dev/keelson/internal/federation/placement"

	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/defaultbinder"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/defaultpreemption"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/fragmentation"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/interpodaffinity"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/loadaware"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/nodeaffinity"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/nodename"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/nodeports"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/noderesources"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/nodeunschedulable"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/podtopologyspread"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/prioritysort"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/schedulinggates"
	_ "github.com/keelson-dev/keelson/internal/scheduler/plugins/tainttoleration"

	_ "github.com/keelson-dev/keelson/internal/store/backend/embedded"
	_ "github.com/keelson-dev/keelson/internal/store/backend/mysql"
	_ "github.com/keelson-dev/keelson/internal/store/backend/postgres"
)
