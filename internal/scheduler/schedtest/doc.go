// Package schedtest has builders for pods and nodes and a fake framework
// handle, shared by the scheduler's tests (plugins, core, validator). It
// is imported by tests only.
package schedtest
