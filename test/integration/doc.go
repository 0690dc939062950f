// Package integration runs kube-apiserver v1.36.3, kube-controller-manager,
// kube-scheduler and kwok nodes on a store (keelson store, and etcd for
// comparison) and drives them with client-go: namespaces, Deployments
// rolling out through ReplicaSets to pods, ConfigMap watches, paginated
// lists and a crash of the store under load.
//
// The binaries come from bin/ (`make tools`, `make build`) or KEELSON_BIN;
// a missing one fails the test with the command that builds it. The test is
// skipped with -short. KEELSON_INTEGRATION_STORES (comma-separated, default
// "etcd,keelson") selects the stores.
package integration
