package plugin

import "context"

// Validator is implemented by plugins whose configuration can be wrong.
// Validate runs after the factory and before Start; its error says which
// field is wrong and why.
type Validator interface {
	Validate() error
}

// Runner is implemented by plugins that run in the background. Start
// returns once the plugin is ready, or with the reason it could not start;
// the plugin runs until ctx ends. Stop releases what Start acquired and is
// safe to call more than once.
type Runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}
