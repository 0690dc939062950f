package up

import (
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	_ "github.com/keelson-dev/keelson/internal/plugin/all"
	"github.com/keelson-dev/keelson/internal/scheduler"
)

// The config written for keelson scheduler parses back, with the profile
// ordinary workloads use.
func TestKeelsonSchedulerConfigRoundTrips(t *testing.T) {
	raw, err := yaml.Marshal(keelsonSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := scheduler.Parse(raw)
	if err != nil {
		t.Fatalf("parsing the written config: %v\n%s", err, raw)
	}
	var names []string
	for _, p := range cfg.Profiles {
		names = append(names, p.SchedulerName)
	}
	if strings.Join(names, ",") != "default-scheduler,keelson" {
		t.Errorf("profiles %v, want default-scheduler and keelson", names)
	}
}

func TestValidateScheduler(t *testing.T) {
	c := Default()
	if c.Scheduler != SchedulerKeelson {
		t.Errorf("default scheduler %q, want %q", c.Scheduler, SchedulerKeelson)
	}
	c.Scheduler = SchedulerKube
	if err := c.Validate(); err != nil {
		t.Errorf("kube: %v", err)
	}
	c.Scheduler = "volcano"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "unknown scheduler") {
		t.Errorf("Validate() = %v, want an unknown scheduler error", err)
	}
}

func TestKeelsonBinary(t *testing.T) {
	dir := t.TempDir()
	if got, err := keelsonBinary("/opt/keelson", dir); err != nil || got != "/opt/keelson" {
		t.Errorf("keelsonBinary(keelson) = %q, %v", got, err)
	}
	if _, err := keelsonBinary(filepath.Join(dir, "up.test"), dir); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("keelsonBinary(test binary) error = %v, want one naming `make build`", err)
	}
}
