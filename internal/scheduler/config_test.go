package scheduler

import (
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		wantErr string
	}{
		{"minimal", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\n", ""},
		{"profiles with args", `
apiVersion: keelson.dev/v1alpha1
kind: SchedulerConfiguration
parallelism: 4
multiInstance: {enabled: true, ledgerNamespace: keelson-system}
profiles:
- schedulerName: keelson
  plugins:
  - name: prioritysort
  - name: noderesourcesfit
    weight: 2
    args: {scoringStrategy: {type: MostAllocated}}
  - name: tainttoleration
    extensionPoints: [Filter]
  - name: defaultbinder
- schedulerName: default-scheduler
  plugins: [{name: prioritysort}, {name: defaultbinder}]
`, ""},
		{"wrong kind", "apiVersion: keelson.dev/v1alpha1\nkind: KubeSchedulerConfiguration\n", `kind is "KubeSchedulerConfiguration"`},
		{"wrong version", "apiVersion: keelson.dev/v1\nkind: SchedulerConfiguration\n", `apiVersion is "keelson.dev/v1"`},
		{"unknown field", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nparalelism: 3\n", `unknown field "paralelism"`},
		{"unknown plugin", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nprofiles: [{schedulerName: k, plugins: [{name: nosuch}]}]\n", `unknown scheduler plugin "nosuch"`},
		{"duplicate profile", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nprofiles: [{schedulerName: k, plugins: [{name: prioritysort}]}, {schedulerName: k, plugins: [{name: prioritysort}]}]\n", `schedulerName "k" used twice`},
		{"bad weight", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nprofiles: [{schedulerName: k, plugins: [{name: nodeaffinity, weight: 500}]}]\n", "weight 500 is outside"},
		{"bad extension point", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nprofiles: [{schedulerName: k, plugins: [{name: nodeaffinity, extensionPoints: [Sort]}]}]\n", `unknown extension point "Sort"`},
		{"JSON client", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nclientContentType: application/json\n", ""},
		{"bad content type", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nclientContentType: application/yaml\n", `clientContentType "application/yaml"`},
		{"bad backoff", "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\npodInitialBackoff: 10s\npodMaxBackoff: 1s\n", "backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.file))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				// Every valid config must also build.
				if _, err := New(cfg, Options{Ledger: NewMemoryLedger()}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
