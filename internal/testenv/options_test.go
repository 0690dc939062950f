package testenv

import (
	"slices"
	"strings"
	"testing"
)

func TestOptionsComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr string
		check   func(*testing.T, Options)
	}{
		{name: "defaults", check: func(t *testing.T, o Options) {
			if o.Store != StoreKeelson || o.StoreReplicas != 1 || o.APIServers != 1 {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "replicas on a database", opts: Options{Backend: "postgres://u@h/db", StoreReplicas: 3}},
		{name: "store only", opts: Options{Backend: "mysql://root@tcp(h:3306)/db", StoreReplicas: 2, StoreOnly: true}, check: func(t *testing.T, o Options) {
			if o.APIServers != 0 {
				t.Errorf("StoreOnly: %d apiservers", o.APIServers)
			}
		}},
		{name: "replicas without a database", opts: Options{StoreReplicas: 2}, wantErr: "need a database backend"},
		{name: "negative replicas", opts: Options{StoreReplicas: -1}, wantErr: "negative"},
		{name: "database under etcd", opts: Options{Store: StoreEtcd, Backend: "postgres://u@h/db"}, wantErr: "needs store"},
		{name: "store only with kwok", opts: Options{StoreOnly: true, KwokNodes: 1}, wantErr: "StoreOnly excludes"},
		{name: "bad wiring", opts: Options{APIServerStores: "round-robin"}, wantErr: "unknown APIServerStores"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			err := o.complete()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("complete() = %v, want error containing %q", err, tc.wantErr)
			}
			if err == nil && tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestEtcdServersWiring(t *testing.T) {
	stores := []*Store{{Endpoint: "http://a"}, {Endpoint: "http://b"}}
	all := &Env{Stores: stores}
	spread := &Env{Stores: stores, opts: Options{APIServerStores: StoresSpread}}
	for i, want := range []string{"http://a", "http://b", "http://a"} {
		if got := spread.etcdServers(i); got != want {
			t.Errorf("spread: apiserver %d gets %q, want %q", i, got, want)
		}
		if got := all.etcdServers(i); got != "http://a,http://b" {
			t.Errorf("all: apiserver %d gets %q", i, got)
		}
	}
	if got := all.StoreEndpoints(); !slices.Equal(got, []string{"http://a", "http://b"}) {
		t.Errorf("StoreEndpoints() = %v", got)
	}
}

func TestStoreArgs(t *testing.T) {
	s := &Store{Kind: StoreKeelson, Index: 1, backend: "postgres://u:hunter2@h/db", port: 1, metricsPort: 2}
	args := s.args()
	if !slices.Contains(args, "--backend=postgres://u:hunter2@h/db") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--data-dir") }) {
		t.Errorf("database store args = %v", args)
	}
	logged := strings.Join(redactArgs(args), " ")
	if strings.Contains(logged, "hunter2") || !strings.Contains(logged, "--backend=postgres://u:xxxxx@h/db") {
		t.Errorf("redacted args = %s", logged)
	}
	s = &Store{Kind: StoreKeelson, DataDir: "/d"}
	if args := s.args(); !slices.Contains(args, "--data-dir=/d") {
		t.Errorf("embedded store args = %v", args)
	}
}
