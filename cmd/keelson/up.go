package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/keelson-dev/keelson/internal/up"
)

// runUp parses the flags of `keelson up` into up.Config and runs it.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := up.Default()
	cfg.BinDir = os.Getenv("KEELSON_BIN")
	fs := flag.NewFlagSet("keelson up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir,
		"`directory` for certificates, kubeconfig, store data and component logs, reused by the next run\n(the default falls back to $TMPDIR/keelson-up if it cannot be created)")
	fs.BoolVar(&cfg.Reset, "reset", cfg.Reset, "delete the state directory first (a fresh cluster)")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of simulated (kwok) nodes")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store under kube-apiserver: keelson, or etcd for debugging and comparison")
	fs.StringVar(&cfg.Backend, "backend", cfg.Backend,
		"database `url` the keelson store keeps its data in: postgres://USER@HOST:PORT/DB[?search_path=SCHEMA]\nor mysql://USER@tcp(HOST:PORT)/DB (default: the embedded engine in the state directory)")
	fs.IntVar(&cfg.StoreReplicas, "store-replicas", cfg.StoreReplicas,
		"number of keelson store instances on the --backend database; kube-apiserver uses all of them")
	fs.StringVar(&cfg.Scheduler, "scheduler", cfg.Scheduler, "scheduler: keelson (keelson scheduler, also serving schedulerName default-scheduler), or kube (kube-scheduler)")
	fs.StringVar(&cfg.BinDir, "bin", cfg.BinDir,
		"`directory` holding kube-apiserver, kube-controller-manager, kube-scheduler, kwok, etcd\n(default $KEELSON_BIN, else next to the keelson binary; 'make tools' builds them)")
	fs.IntVar(&cfg.Clusters, "clusters", cfg.Clusters,
		"start a federation instead: a host plus `N` member clusters (each its own store, kube-apiserver,\ncontroller-manager, scheduler and --nodes kwok nodes) and the federation control plane, members joined")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: keelson up [flags]

Runs a local Kubernetes cluster until Ctrl-C: keelson store, kube-apiserver,
kube-controller-manager, keelson scheduler and kwok with simulated nodes. It
writes an admin kubeconfig into the state directory and prints how to use it:

  export KUBECONFIG=<state-dir>/kubeconfig
  kubectl get nodes

With --backend the store keeps its data in PostgreSQL or MySQL/MariaDB
instead of the state directory, and --store-replicas N runs N store
instances on that database (high availability): kube-apiserver lists all of
them in --etcd-servers and fails over when one stops. For example:

  keelson up --backend 'postgres://postgres@127.0.0.1:5432/keelson' --store-replicas 2

With --clusters N it starts a federation (docs/federation.md): a host
kube-apiserver that only holds objects, N member clusters named member-1 …
member-N, each with its own store, control plane and kwok nodes, and the
federation control plane, which joins them. It prints the kubeconfig of the
host and of every member:

  keelson up --clusters 3 --nodes 3

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "keelson up: %v\n", err)
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	return up.Run(ctx, cfg, stdout, log)
}
