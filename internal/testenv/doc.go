// Package testenv starts a real Kubernetes control plane from binaries, for
// tests and for `keelson up`.
//
// It runs, as subprocesses, a store (keelson store or etcd), one or more
// kube-apiservers on it, and optionally kube-controller-manager,
// kube-scheduler and kwok with simulated nodes. Binaries come from a bin
// directory: Options.BinDir, else the KEELSON_BIN environment variable, else
// bin/ under the repository root found by walking up from the working
// directory (`make tools` fills it).
//
// Every port is picked free at start (never fixed), readiness is found by
// polling (/readyz, /healthz, an etcd Range, node conditions), and each
// component's stdout and stderr go to a log file under the environment's
// directory. Each component runs in its own process group, which teardown
// signals as a whole; on Linux the children also get SIGKILL if the parent
// dies.
//
// The store may be several keelson store instances on one database
// (Options.Backend, Options.StoreReplicas), with kube-apiservers on all of
// them or each on its own (Options.APIServerStores); Env.Stores[i] is killed
// and restarted one at a time. NewDatabase makes a fresh PostgreSQL schema
// or MySQL/MariaDB database per test on the shared servers, and
// StartPrivatePostgres / StartPrivateMariaDB start a database server of the
// test's own (temporary directory, free port) that it may restart or crash
// without disturbing the tests that share the machine's servers.
//
// In tests, Start registers teardown with t.Cleanup; when the test failed it
// prints the tail of every log and keeps the directory. New is the variant
// for programs: it returns an *Env whose Close stops everything.
//
//	env := testenv.Start(t, testenv.Options{
//		Store:             testenv.StoreEtcd,
//		ControllerManager: true,
//		Scheduler:         true,
//		KwokNodes:         3,
//	})
//	client := kubernetes.NewForConfigOrDie(env.Config)
//	// crash the store and bring it back on the same data and port:
//	env.Store.Kill()
//	env.Store.Start(t.Context())
package testenv
