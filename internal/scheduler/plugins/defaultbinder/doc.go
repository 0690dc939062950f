// Package defaultbinder binds a pod by creating its pods/binding
// subresource, which fails if the pod is already bound.
package defaultbinder
