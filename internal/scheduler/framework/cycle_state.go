package framework

import "errors"

// ErrNotFound is returned by CycleState.Read when nothing was written
// under the key.
var ErrNotFound = errors.New("not found in cycle state")

// StateKey names one plugin's data in a CycleState; use the plugin name
// plus a suffix.
type StateKey string

// BindingAnnotationsKey holds BindingAnnotations: annotations the
// scheduler asks the Bind plugin to put on the Binding (the API server
// copies them onto the pod).
const BindingAnnotationsKey StateKey = "keelson/binding-annotations"

// BindingAnnotations: see BindingAnnotationsKey.
type BindingAnnotations map[string]string

// Clone implements StateData.
func (b BindingAnnotations) Clone() StateData {
	out := make(BindingAnnotations, len(b))
	for k, v := range b {
		out[k] = v
	}
	return out
}

// StateData is what plugins keep between extension points of one cycle.
type StateData interface {
	// Clone returns a copy that may be changed independently; data never
	// changed after PreFilter may return itself.
	Clone() StateData
}

// CycleState carries plugin data through one pod's scheduling and binding
// cycles. Writes happen only from the sequential extension points, reads
// may happen from parallel Filter/Score calls; it has no lock.
type CycleState struct {
	storage map[StateKey]StateData
	// skipFilter and skipScore hold the plugins that returned Skip from
	// PreFilter and PreScore.
	skipFilter map[string]bool
	skipScore  map[string]bool
	// filters are the Filter plugins left after PreFilter (set by
	// HasFilters, before the parallel Filter calls, so that they do not
	// look up skipFilter per node and plugin).
	filters     []FilterPlugin
	filtersDone bool
}

// NewCycleState returns an empty state.
func NewCycleState() *CycleState {
	return &CycleState{storage: map[StateKey]StateData{}}
}

// Read returns the data under key or ErrNotFound.
func (c *CycleState) Read(key StateKey) (StateData, error) {
	if d, ok := c.storage[key]; ok {
		return d, nil
	}
	return nil, ErrNotFound
}

// Write stores data under key.
func (c *CycleState) Write(key StateKey, data StateData) { c.storage[key] = data }

// Delete removes key.
func (c *CycleState) Delete(key StateKey) { delete(c.storage, key) }

// Clone copies the state, cloning each value.
func (c *CycleState) Clone() *CycleState {
	out := NewCycleState()
	for k, v := range c.storage {
		out.storage[k] = v.Clone()
	}
	return out
}

// ReadState reads key and asserts its type, for plugins.
func ReadState[T StateData](c *CycleState, key StateKey) (T, error) {
	var zero T
	d, err := c.Read(key)
	if err != nil {
		return zero, err
	}
	t, ok := d.(T)
	if !ok {
		return zero, errors.New("cycle state " + string(key) + " has an unexpected type")
	}
	return t, nil
}
