package difftest

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/grpclog"
)

var outDir = flag.String("difftest.out", "", "directory to write both full transcripts to (for a side-by-side diff)")

func TestMain(m *testing.M) {
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
	os.Exit(m.Run())
}

// runScript runs the script on a fresh server and returns its transcript.
func runScript(t *testing.T, server serverFunc) *transcript {
	t.Helper()
	r := newRun(t, server(t))
	script(r)
	return r.tr
}

// runBoth runs the script against two servers, one after the other (the
// machine is small), each in its own subtest so that their servers are torn
// down before the comparison.
func runBoth(t *testing.T, wantName string, want serverFunc, gotName string, got serverFunc) (*transcript, *transcript) {
	var a, b *transcript
	t.Run(wantName, func(t *testing.T) { a = runScript(t, want) })
	t.Run(gotName, func(t *testing.T) { b = runScript(t, got) })
	if a == nil || b == nil {
		t.Fatal("a script run did not finish")
	}
	return a, b
}

// compareTranscripts reports every step whose output differs, with a line
// diff (- want, + got).
func compareTranscripts(t *testing.T, wantName string, want *transcript, gotName string, got *transcript) {
	t.Helper()
	if *outDir != "" {
		for name, tr := range map[string]*transcript{wantName: want, gotName: got} {
			var b strings.Builder
			for i, s := range tr.steps {
				fmt.Fprintf(&b, "%3d %s\n%s\n", i+1, s.name, indent(s.out))
			}
			path := filepath.Join(*outDir, name+".txt")
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Errorf("writing transcript: %v", err)
			} else {
				t.Logf("transcript written to %s", path)
			}
		}
	}
	n := max(len(want.steps), len(got.steps))
	mismatches := 0
	for i := range n {
		var w, g step
		if i < len(want.steps) {
			w = want.steps[i]
		}
		if i < len(got.steps) {
			g = got.steps[i]
		}
		if w == g {
			continue
		}
		mismatches++
		name := w.name
		if w.name != g.name {
			name = w.name + " | " + g.name
		}
		t.Errorf("step %d %q differs (-%s +%s):\n%s", i+1, name, wantName, gotName,
			cmp.Diff(strings.Split(w.out, "\n"), strings.Split(g.out, "\n")))
	}
	if mismatches > 0 {
		t.Logf("%d of %d steps differ; later differences may follow from earlier ones", mismatches, n)
	} else {
		t.Logf("%d steps identical", n)
	}
}

// TestScriptDeterministic checks the harness: two etcd servers must give
// identical transcripts once normalized.
func TestScriptDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers; skipped in -short")
	}
	a, b := runBoth(t, "etcd-1", startEmbeddedEtcd, "etcd-2", startEmbeddedEtcd)
	compareTranscripts(t, "etcd-1", a, "etcd-2", b)
	if testing.Verbose() {
		for i, s := range a.steps {
			t.Logf("%3d %s\n%s", i+1, s.name, indent(s.out))
		}
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// TestKeelsonMatchesEtcd is the differential test proper.
func TestKeelsonMatchesEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers; skipped in -short")
	}
	a, b := runBoth(t, "etcd", startEmbeddedEtcd, "keelson", startKeelson)
	compareTranscripts(t, "etcd", a, "keelson", b)
}
