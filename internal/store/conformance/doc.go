// Package conformance runs the Kubernetes storage conformance suite
// (k8s.io/apiserver/pkg/storage/testing, v0.36.3) against an etcd v3 API
// endpoint through the apiserver's own etcd3 storage implementation
// (k8s.io/apiserver/pkg/storage/etcd3) and a real clientv3 client — exactly
// the code path kube-apiserver uses.
//
// The package is test-only. Its harness mirrors the one in the upstream
// etcd3 package's store_test.go and watcher_test.go: every RunTestXxx /
// RunWatchXxx those files call is listed in one table (suite_test.go), with
// the same arguments and feature gates. Upstream tests that reach into etcd3
// internals are ported through the public API and the raw etcd client where
// they check something an etcd API server is responsible for; the few pure
// unit tests of etcd3 helpers are listed as excluded, with the reason.
//
// Each test gets a fresh server from a [serverFunc]; the same table runs
// against embedded etcd (go.etcd.io/etcd/server/v3/embed), which validates
// the harness, and against keelson store started in-process on each of its
// engines: embedded (in a temp dir), PostgreSQL (a fresh schema per server)
// and MariaDB/MySQL (a fresh database per server). Schemas and databases are
// created through one admin connection pool per run and dropped when their
// test ends (about 50 ms per server); package dbtest has the helpers, and a
// database that is down fails the run (see dbtest for the servers used and
// the KEELSON_TEST_POSTGRES / KEELSON_TEST_MYSQL overrides).
//
//	go test ./internal/store/conformance/ -run 'TestConformance/etcd'
//	go test ./internal/store/conformance/ -run 'TestConformance/keelson'           # all engines
//	go test ./internal/store/conformance/ -run 'TestConformance/keelson/postgres'
package conformance
