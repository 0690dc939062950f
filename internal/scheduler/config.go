package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Config file identity.
const (
	APIVersion = "keelson.dev/v1alpha1"
	Kind       = "SchedulerConfiguration"
	// DefaultSchedulerName is the profile name pods opt into with
	// spec.schedulerName.
	DefaultSchedulerName = "keelson"
)

// Config is the scheduler's configuration: the versioned file, with
// command-line flags filled in by cmd/keelson.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Profiles: one per schedulerName served.
	Profiles []framework.ProfileConfig `json:"profiles"`
	// Parallelism is the number of workers filtering and scoring nodes.
	Parallelism int `json:"parallelism,omitempty"`
	// PodInitialBackoff and PodMaxBackoff bound the retry backoff.
	PodInitialBackoff metav1.Duration `json:"podInitialBackoff,omitempty"`
	PodMaxBackoff     metav1.Duration `json:"podMaxBackoff,omitempty"`
	// PodMaxInUnschedulable retries a pod even without a relevant event.
	PodMaxInUnschedulable metav1.Duration `json:"podMaxInUnschedulable,omitempty"`
	// MultiInstance configures several active schedulers on one cluster.
	MultiInstance MultiInstanceConfig `json:"multiInstance"`
	// MetricsAddress serves /metrics and /healthz ("" disables).
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// ClientQPS and ClientBurst limit requests to the API server.
	ClientQPS   float32 `json:"clientQPS,omitempty"`
	ClientBurst int     `json:"clientBurst,omitempty"`
	// ClientContentType is the encoding of requests and responses for
	// the built-in resources (custom resources are always JSON):
	// protobuf by default, as kube-scheduler's clientConnection, since
	// it costs the API server and the scheduler less than JSON.
	ClientContentType string `json:"clientContentType,omitempty"`
}

// Content types accepted for ClientContentType.
const (
	ContentTypeProtobuf = "application/vnd.kubernetes.protobuf"
	ContentTypeJSON     = "application/json"
)

// MultiInstanceConfig: see docs/scheduler.md, "Several instances".
type MultiInstanceConfig struct {
	// Enabled makes every binding claim room in the per-node ledger first.
	// Leave it on unless exactly one keelson scheduler runs.
	Enabled bool `json:"enabled"`
	// LedgerNamespace holds one Lease per node (must exist).
	LedgerNamespace string `json:"ledgerNamespace,omitempty"`
	// InstanceID names this instance in claims (default: host name + pid).
	InstanceID string `json:"instanceID,omitempty"`
	// Partition shares pending pods between the live instances (each
	// holds a membership Lease in LedgerNamespace) instead of every
	// instance trying every pod. Only with Enabled.
	Partition bool `json:"partition"`
	// MemberLeaseDuration: an instance whose membership Lease was not
	// renewed for this long is gone and its pods go to the others.
	MemberLeaseDuration metav1.Duration `json:"memberLeaseDuration,omitempty"`
	// StealAfter: an idle instance takes a pod another live instance owns
	// once it has been pending this long here (gang members excepted).
	StealAfter metav1.Duration `json:"stealAfter,omitempty"`
	// ShareFraction (0 ≤ f < 1, default 0: off) is the fraction of each
	// node's allocatable this instance may place pods in without a ledger
	// claim (its share); every instance's claims leave the unused part of
	// every live instance's share free. Only with Partition. See
	// docs/scheduler.md, "Shares".
	ShareFraction float64 `json:"shareFraction,omitempty"`
	// ReservePreemptions makes a preemptor's instance claim its room in
	// the ledger before evicting victims (docs/scheduler.md, Preemption).
	// Off by default until measured in the three-instance benchmark.
	ReservePreemptions bool `json:"reservePreemptions,omitempty"`
}

// DefaultProfile is the profile used when the config file names none.
func DefaultProfile(name string) framework.ProfileConfig {
	return framework.ProfileConfig{
		SchedulerName: name,
		Plugins: []framework.PluginConfig{
			{Name: "schedulinggates"},
			{Name: "prioritysort"},
			{Name: "nodeunschedulable"},
			{Name: "nodename"},
			{Name: "tainttoleration", Weight: 3},
			{Name: "nodeaffinity", Weight: 2},
			{Name: "nodeports"},
			{Name: "noderesourcesfit", Weight: 1},
			{Name: "podtopologyspread", Weight: 2},
			{Name: "interpodaffinity", Weight: 2},
			{Name: "balancedallocation", Weight: 1},
			{Name: "defaultpreemption"},
			{Name: "gang"},
			{Name: "defaultbinder"},
		},
	}
}

// Default returns the configuration used without a file.
func Default() Config {
	return Config{
		APIVersion:            APIVersion,
		Kind:                  Kind,
		Profiles:              []framework.ProfileConfig{DefaultProfile(DefaultSchedulerName)},
		Parallelism:           16,
		PodInitialBackoff:     metav1.Duration{Duration: time.Second},
		PodMaxBackoff:         metav1.Duration{Duration: 10 * time.Second},
		PodMaxInUnschedulable: metav1.Duration{Duration: 5 * time.Minute},
		MultiInstance: MultiInstanceConfig{
			Enabled: true, LedgerNamespace: "kube-system", Partition: true,
			MemberLeaseDuration: metav1.Duration{Duration: 15 * time.Second},
			StealAfter:          metav1.Duration{Duration: 2 * time.Second},
		},
		MetricsAddress:    ":10261",
		ClientQPS:         500,
		ClientBurst:       1000,
		ClientContentType: ContentTypeProtobuf,
	}
}

// Load reads a config file over Default(): fields the file leaves out keep
// their defaults; unknown fields are errors. The result is validated.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading scheduler config: %w", err)
	}
	return Parse(raw)
}

// Parse is Load on bytes (YAML or JSON).
func Parse(raw []byte) (Config, error) {
	cfg := Default()
	cfg.Profiles = nil
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return Config{}, fmt.Errorf("parsing scheduler config: %w", err)
	}
	if err := framework.DecodeArgs(json.RawMessage(js), &cfg); err != nil {
		return Config{}, fmt.Errorf("parsing scheduler config: %w", err)
	}
	if len(cfg.Profiles) == 0 {
		cfg.Profiles = []framework.ProfileConfig{DefaultProfile(DefaultSchedulerName)}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion is %q, want %q", c.APIVersion, APIVersion))
	}
	if c.Kind != Kind {
		errs = append(errs, fmt.Errorf("kind is %q, want %q", c.Kind, Kind))
	}
	if len(c.Profiles) == 0 {
		errs = append(errs, errors.New("profiles: at least one is needed"))
	}
	names := map[string]bool{}
	var queueSort string
	for i := range c.Profiles {
		p := &c.Profiles[i]
		if names[p.SchedulerName] {
			errs = append(errs, fmt.Errorf("profiles[%d]: schedulerName %q used twice", i, p.SchedulerName))
		}
		names[p.SchedulerName] = true
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("profiles[%d]: %w", i, err))
		}
		qs := ""
		for _, pc := range p.Plugins {
			if pc.Name == "prioritysort" || (len(pc.ExtensionPoints) == 1 && pc.ExtensionPoints[0] == "QueueSort") {
				qs = pc.Name
			}
		}
		if i == 0 {
			queueSort = qs
		} else if qs != queueSort {
			errs = append(errs, fmt.Errorf("profiles[%d]: queue sort %q differs from the first profile's %q; all profiles share one queue", i, qs, queueSort))
		}
	}
	if c.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("parallelism %d must be at least 1", c.Parallelism))
	}
	if c.PodInitialBackoff.Duration <= 0 || c.PodMaxBackoff.Duration < c.PodInitialBackoff.Duration {
		errs = append(errs, fmt.Errorf("backoff: need 0 < podInitialBackoff (%v) <= podMaxBackoff (%v)", c.PodInitialBackoff.Duration, c.PodMaxBackoff.Duration))
	}
	if c.PodMaxInUnschedulable.Duration < 0 {
		errs = append(errs, errors.New("podMaxInUnschedulable is negative"))
	}
	if c.MultiInstance.Enabled && c.MultiInstance.LedgerNamespace == "" {
		errs = append(errs, errors.New("multiInstance.ledgerNamespace is empty"))
	}
	if c.MultiInstance.Enabled && c.MultiInstance.Partition && c.MultiInstance.MemberLeaseDuration.Duration < 3*time.Second {
		errs = append(errs, fmt.Errorf("multiInstance.memberLeaseDuration %v must be at least 3s", c.MultiInstance.MemberLeaseDuration.Duration))
	}
	if f := c.MultiInstance.ShareFraction; f < 0 || f >= 1 {
		errs = append(errs, fmt.Errorf("multiInstance.shareFraction %v must be at least 0 and below 1", f))
	}
	if c.MultiInstance.ShareFraction > 0 && !(c.MultiInstance.Enabled && c.MultiInstance.Partition) {
		errs = append(errs, errors.New("multiInstance.shareFraction needs multiInstance.enabled and partition"))
	}
	if c.MultiInstance.StealAfter.Duration < 0 {
		errs = append(errs, errors.New("multiInstance.stealAfter is negative"))
	}
	if c.ClientQPS < 0 || c.ClientBurst < 0 {
		errs = append(errs, errors.New("clientQPS and clientBurst must not be negative"))
	}
	if c.ClientContentType != ContentTypeProtobuf && c.ClientContentType != ContentTypeJSON {
		errs = append(errs, fmt.Errorf("clientContentType %q must be %s or %s", c.ClientContentType, ContentTypeProtobuf, ContentTypeJSON))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid scheduler config: %w", err)
	}
	return nil
}
