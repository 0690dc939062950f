// Package benchutil holds the small helpers the benchmark programs under
// bench/ share: running work on a fixed number of goroutines and polling
// for a condition.
package benchutil
