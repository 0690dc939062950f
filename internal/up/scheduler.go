package up

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/keelson-dev/keelson/internal/scheduler"
	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// Values of Config.Scheduler.
const (
	// SchedulerKeelson runs `keelson scheduler` for the profiles
	// default-scheduler and keelson, so ordinary workloads are placed by
	// it (the default).
	SchedulerKeelson = "keelson"
	// SchedulerKube runs kube-scheduler instead.
	SchedulerKube = "kube"
)

// keelsonSchedulerName names the process, its log file and its instance in
// the node claims.
const keelsonSchedulerName = "keelson-scheduler"

func validateScheduler(s string) error {
	switch s {
	case SchedulerKeelson, SchedulerKube:
		return nil
	}
	return fmt.Errorf("unknown scheduler %q (want %q or %q)", s, SchedulerKeelson, SchedulerKube)
}

// schedulerComponent is how the banner names the scheduler.
func schedulerComponent(s string) string {
	if s == SchedulerKube {
		return "kube-scheduler"
	}
	return "keelson scheduler"
}

// keelsonSchedulerConfig is the configuration `keelson up` runs keelson
// scheduler with: the default profile under both default-scheduler (no
// kube-scheduler runs) and keelson.
func keelsonSchedulerConfig() scheduler.Config {
	cfg := scheduler.Default()
	cfg.Profiles = []framework.ProfileConfig{
		scheduler.DefaultProfile("default-scheduler"),
		scheduler.DefaultProfile(scheduler.DefaultSchedulerName),
	}
	cfg.MultiInstance.InstanceID = keelsonSchedulerName
	return cfg
}

// startKeelsonScheduler installs the PodGroup CRD (gangs), writes the
// scheduler's config into the state directory and starts `keelson
// scheduler` with the admin kubeconfig; env stops it with the rest.
func startKeelsonScheduler(ctx context.Context, env *testenv.Env, exe, binDir string, log *slog.Logger) error {
	if err := installPodGroupCRD(ctx, env); err != nil {
		return err
	}
	raw, err := yaml.Marshal(keelsonSchedulerConfig())
	if err != nil {
		return fmt.Errorf("encoding scheduler config: %w", err)
	}
	path := filepath.Join(env.Dir, keelsonSchedulerName+".yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("writing scheduler config: %w", err)
	}
	bin, err := keelsonBinary(exe, binDir)
	if err != nil {
		return err
	}
	ks, err := env.StartKeelsonSchedulerBinary(ctx, bin, keelsonSchedulerName, "--config="+path)
	if err != nil {
		return err
	}
	log.Info("keelson scheduler ready", "profiles", "default-scheduler,keelson", "metrics", ks.MetricsURL, "log", ks.LogPath)
	return nil
}

// keelsonBinary is exe when it is a keelson binary, else keelson in binDir
// (a test binary runs Run, for example).
func keelsonBinary(exe, binDir string) (string, error) {
	if strings.HasPrefix(filepath.Base(exe), testenv.BinKeelson) && !strings.HasSuffix(exe, ".test") {
		return exe, nil
	}
	return testenv.LookBinary(binDir, testenv.BinKeelson)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installPodGroupCRD creates the PodGroup CRD unless it exists.
func installPodGroupCRD(ctx context.Context, env *testenv.Env) error {
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		return fmt.Errorf("building dynamic client: %w", err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(gang.CRD, &obj); err != nil {
		return fmt.Errorf("parsing the PodGroup CRD: %w", err)
	}
	_, err = dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("installing the PodGroup CRD: %w", err)
	}
	return nil
}
