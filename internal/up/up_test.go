package up

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"etcd", func(c *Config) { c.Store = "etcd" }, ""},
		{"bad store", func(c *Config) { c.Store = "kine" }, "unknown store"},
		{"negative nodes", func(c *Config) { c.Nodes = -1 }, "negative"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "state directory"},
		{"federation", func(c *Config) { c.Clusters = 3 }, ""},
		{"negative clusters", func(c *Config) { c.Clusters = -1 }, "clusters must not be negative"},
		{"clusters with a backend", func(c *Config) { c.Clusters = 2; c.Backend = "postgres://u@h:5432/db" }, "cannot be combined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestFindBinDirMissing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // outside the repository, whose bin/ would be found
	_, err := findBinDir("", filepath.Join(dir, "keelson"))
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("findBinDir error = %v, want one naming `make tools`", err)
	}
	_, err = findBinDir(dir, "")
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("findBinDir(explicit) error = %v, want one naming `make tools`", err)
	}
}

func TestFindBinDirNextToExecutable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := findBinDir("", filepath.Join(dir, "keelson"))
	if err != nil || got != dir {
		t.Errorf("findBinDir = %q, %v; want %q", got, err, dir)
	}
}

func TestPrepareStateDirReset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	got, err := prepareStateDir(Config{StateDir: dir, Reset: true}, log)
	if err != nil || got != dir {
		t.Fatalf("prepareStateDir = %q, %v", got, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("reset kept %s", stale)
	}
}
