// Package backendtest is the contract suite every storage engine runs.
//
// An engine's tests call Run with a function that opens a new, empty
// engine; engines that persist call RunPersistent instead, which also
// closes and reopens engines on the same storage and checks that
// everything survived. The suite only uses the backend.Backend API and
// makes no assumption about the engine's first revision: it reads the
// current revision and writes at the next one.
//
// The suite writes through a miniature transaction evaluator (see Ops and
// Write) that computes CreateRevision, Version and PrevKV the way
// internal/store does, so engines are checked with realistic events.
package backendtest
