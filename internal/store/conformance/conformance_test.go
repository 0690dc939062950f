package conformance

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/conformance/dbtest"
)

// TestConformance runs the suite against embedded etcd (which validates the
// harness) and against keelson store on every engine: embedded, PostgreSQL
// and MariaDB/MySQL (a database that is down fails the test).
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server per test; skipped in -short")
	}
	t.Run("etcd", func(t *testing.T) { runSuite(t, startEmbeddedEtcd) })
	for _, engine := range dbtest.Engines {
		t.Run("keelson/"+engine.Name, func(t *testing.T) { runSuite(t, keelsonServer(engine)) })
	}
}

// TestSuiteCoversUpstream fails when upstream's etcd3 test files have a Test
// function that is neither in the suite nor excluded with a reason, or call a
// storagetesting.RunXxx the suite does not.
func TestSuiteCoversUpstream(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/apiserver").Output()
	if err != nil {
		t.Skipf("cannot locate k8s.io/apiserver sources: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "storage", "etcd3")
	inSuite := map[string]bool{}
	for _, tc := range suite {
		if inSuite[tc.name] {
			t.Errorf("%s is in the suite twice", tc.name)
		}
		inSuite[tc.name] = true
	}
	runCall := regexp.MustCompile(`storagetesting\.(Run\w+)\(`)
	upstreamRuns := map[string]bool{}
	for _, file := range upstreamFiles {
		path := filepath.Join(dir, file)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			if !inSuite[fn.Name.Name] && excludedUpstream[fn.Name.Name] == "" {
				t.Errorf("upstream %s %s is neither in the suite nor excluded", file, fn.Name.Name)
			}
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range runCall.FindAllStringSubmatch(string(src), -1) {
			if !strings.HasPrefix(m[1], "RunBenchmark") {
				upstreamRuns[m[1]] = true
			}
		}
	}
	src, err := os.ReadFile("suite_test.go")
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{}
	for _, m := range runCall.FindAllStringSubmatch(string(src), -1) {
		ours[m[1]] = true
	}
	var missing []string
	for name := range upstreamRuns {
		if !ours[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("upstream calls storagetesting functions the suite does not: %v", missing)
	}
	t.Logf("%d upstream storagetesting.Run* functions, %d suite tests, %d excluded", len(upstreamRuns), len(suite), len(excludedUpstream))
}
