package scheduler

// The scheduler's tests link the scheduler plugins directly rather than
// internal/plugin/all, so that they do not depend on other components.
import (
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
)
