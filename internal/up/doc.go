// Package up implements `keelson up`: a local Kubernetes cluster for a
// laptop, made of keelson store, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok with simulated nodes, all started from binaries
// through internal/testenv. It writes an admin kubeconfig into the state
// directory, prints how to use it, and stops everything when its context is
// cancelled (Ctrl-C).
package up
