// Package schedulinggates keeps pods with spec.schedulingGates out of the
// active queue (PreEnqueue) until every gate is removed.
package schedulinggates
