// Package federation holds the integration test of keelson federation: a
// host and two member clusters, each a real kube-apiserver on its own
// keelson store (started by internal/testenv), with the control plane
// running in-process. It needs bin/ (make build tools) and is skipped
// with -short. Run it alone: three apiservers use ~900 MB.
package federation
