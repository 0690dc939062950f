// Package render turns a host object into the manifest applied to one
// member cluster, and holds the pure decisions around applying it.
//
// Render copies the host object, strips what belongs to the host
// (status, uid, resourceVersion, managedFields, finalizers, owner
// references, allocated Service IPs, generated Job selectors), sets
// spec.replicas to the cluster's share, applies the override policies
// (package override) and the managed label, then hashes the result: the
// hash goes into an annotation on the member object, and an unchanged
// hash means no write. Dependencies lists the ConfigMaps, Secrets and
// ServiceAccounts a pod template references. Resolve decides what to do
// when a member already holds an object keelson did not create.
package render
