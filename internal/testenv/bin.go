package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Binary names looked up in the bin directory.
const (
	BinKeelson               = "keelson"
	BinEtcd                  = "etcd"
	BinKubeAPIServer         = "kube-apiserver"
	BinKubeControllerManager = "kube-controller-manager"
	BinKubeScheduler         = "kube-scheduler"
	BinKwok                  = "kwok"
)

// EnvBinDir is the environment variable naming the bin directory.
const EnvBinDir = "KEELSON_BIN"

const modulePath = "github.com/keelson-dev/keelson"

// ErrNoBinDir is returned when no bin directory can be found.
var ErrNoBinDir = errors.New("no bin directory: set KEELSON_BIN or run from inside the keelson repository, after `make tools`")

// BinDir returns the directory holding the tool binaries: KEELSON_BIN if
// set, otherwise bin/ under the repository root found by walking up from the
// working directory.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding bin directory: %w", err)
	}
	root, err := RepoRoot(wd)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// RepoRoot walks up from dir to the directory whose go.mod declares the
// keelson module.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoBinDir
		}
		dir = parent
	}
}

// LookBinary returns the path of name in dir, or an error that says how to
// build it.
func LookBinary(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	how := "run `make tools` in the keelson repository"
	if name == BinKeelson {
		how = "run `make build` in the keelson repository"
	}
	return "", fmt.Errorf("%s not found in %s: %s (or set %s to a directory holding it)", name, dir, how, EnvBinDir)
}
