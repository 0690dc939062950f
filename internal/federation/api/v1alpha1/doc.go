// Package v1alpha1 holds the federation API (group federation.keelson.dev,
// version v1alpha1) as plain Go structs with JSON tags, the CRD manifests
// that the control plane installs on the host at start, and the labels,
// annotations and finalizer the controllers put on host and member objects.
//
// The controllers read these objects through the dynamic client and convert
// them with FromUnstructured; there is no generated clientset. User objects
// (Deployments, ConfigMaps, custom resources…) are never wrapped: they stay
// unstructured end to end.
package v1alpha1
