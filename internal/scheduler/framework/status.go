package framework

import (
	"errors"
	"strings"
)

// Code is the outcome of running a plugin.
type Code int

// The codes a Status can carry. The zero value is Success.
const (
	// Success: the plugin ran and the pod may proceed.
	Success Code = iota
	// Error: an internal error; the pod is retried with backoff.
	Error
	// Unschedulable: the pod does not fit now but might after preemption
	// or a cluster change.
	Unschedulable
	// UnschedulableAndUnresolvable: the pod does not fit and preemption on
	// this node would not help (wrong node name, missing label, ...).
	UnschedulableAndUnresolvable
	// Wait: a Permit plugin asks the pod to wait before binding.
	Wait
	// Skip: the plugin has nothing to do for this pod; its later extension
	// points (Filter after PreFilter, Score after PreScore, Bind) are skipped.
	Skip
	// Pending: PreEnqueue keeps the pod out of the active queue.
	Pending
)

var codeNames = [...]string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Wait", "Skip", "Pending"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Unknown"
}

// Status is the result of a plugin call. A nil *Status means Success and
// every method works on a nil receiver.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus returns a Status with the given code and human-readable
// reasons. Reasons are what users read in the PodScheduled condition
// ("Insufficient cpu"), so keep them short and stable: identical reasons
// from several nodes are counted together.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an internal error as an Error status; nil gives nil.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code returns the status code; Success for nil.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// IsSuccess reports whether s is nil or has code Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsWait reports whether the code is Wait.
func (s *Status) IsWait() bool { return s.Code() == Wait }

// IsSkip reports whether the code is Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsRejected reports whether the pod was found not to fit
// (Unschedulable, UnschedulableAndUnresolvable or Pending).
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable || c == Pending
}

// Reasons returns the reasons given when the status was made.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Message joins the reasons with ", ".
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// Plugin names the plugin that produced the status, once the framework
// has recorded it.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// WithPlugin records the plugin that produced s and returns s.
//
// A status that already names the plugin is not written to, so a plugin
// may return one shared status (built once with WithPlugin) from calls
// running in parallel.
func (s *Status) WithPlugin(name string) *Status {
	if s != nil && s.plugin != name {
		s.plugin = name
	}
	return s
}

// Err returns the wrapped error of an Error status, or an error made of
// the message for any other non-success status, or nil.
func (s *Status) Err() error {
	if s.IsSuccess() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(strings.ToLower(s.code.String()) + ": " + s.Message())
}

// String is for logs.
func (s *Status) String() string {
	if s == nil {
		return "Success"
	}
	b := strings.Builder{}
	b.WriteString(s.code.String())
	if s.plugin != "" {
		b.WriteString(" (" + s.plugin + ")")
	}
	if m := s.Message(); m != "" {
		b.WriteString(": " + m)
	}
	return b.String()
}
