// Package prioritysort orders the scheduling queue by pod priority, highest
// first, then by the time the pod entered the queue.
package prioritysort
