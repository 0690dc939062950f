//go:build tools

// Package tools pins kine, the SQL-backed etcd shim that the store
// benchmarks run beside keelson store. It has a module of its own because
// kine needs a newer etcd than the one the other tools are pinned to.
package tools

import _ "github.com/k3s-io/kine"
