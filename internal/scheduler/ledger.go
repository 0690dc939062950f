package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
)

// ErrClaimConflict is returned by Ledger.Claim when the node no longer has
// room once every instance's claims are counted.
var ErrClaimConflict = errors.New("node claimed by another placement")

// ClaimEntry is one pod placed on a node by some scheduler instance.
type ClaimEntry struct {
	UID types.UID `json:"u"`
	// Pod is namespace/name, for people reading the ledger.
	Pod string `json:"p"`
	// MilliCPU, Memory, EphemeralStorage and Scalar are the pod's requests.
	MilliCPU         int64            `json:"c,omitempty"`
	Memory           int64            `json:"m,omitempty"`
	EphemeralStorage int64            `json:"e,omitempty"`
	Scalar           map[string]int64 `json:"s,omitempty"`
	// Ports are host ports as "TCP/0.0.0.0/80".
	Ports []string `json:"h,omitempty"`
	// At is when the claim was made (Unix seconds); By is the instance.
	At int64  `json:"t"`
	By string `json:"b,omitempty"`
}

// CheckFunc decides, from a node's current entries, whether the new claim
// fits; it also returns the UIDs of entries that may be pruned.
type CheckFunc func(entries []ClaimEntry) (prune []types.UID, err error)

// Ledger is the per-node record that makes optimistic multi-instance
// scheduling safe: Claim reads the node's entries, runs check on them and
// appends the entry, atomically with respect to every other instance.
type Ledger interface {
	Claim(ctx context.Context, node string, e ClaimEntry, check CheckFunc) error
	// Release removes the entry instance by made for uid on node.
	Release(ctx context.Context, node string, uid types.UID, by string) error
}

// applyClaim replaces e's instance's own earlier entry for the same pod,
// drops pruned entries and appends e. Entries of other instances for the
// same pod stay: only one binding of a pod can succeed, and until the
// losers release theirs, counting them is merely conservative.
func applyClaim(entries []ClaimEntry, e ClaimEntry, check CheckFunc) ([]ClaimEntry, error) {
	prune, err := check(entries)
	if err != nil {
		return nil, err
	}
	drop := map[types.UID]bool{}
	for _, u := range prune {
		drop[u] = true
	}
	out := make([]ClaimEntry, 0, len(entries)+1)
	for _, x := range entries {
		if !drop[x.UID] && !(x.UID == e.UID && x.By == e.By) {
			out = append(out, x)
		}
	}
	return append(out, e), nil
}

// releaseEntries removes the entry instance by made for uid.
func releaseEntries(entries []ClaimEntry, uid types.UID, by string) []ClaimEntry {
	out := make([]ClaimEntry, 0, len(entries))
	for _, x := range entries {
		if x.UID != uid || x.By != by {
			out = append(out, x)
		}
	}
	return out
}

// MemoryLedger is a Ledger in process memory: for a single instance, for
// tests and for several schedulers in one process.
type MemoryLedger struct {
	mu    sync.Mutex
	nodes map[string][]ClaimEntry
}

// NewMemoryLedger returns an empty ledger.
func NewMemoryLedger() *MemoryLedger { return &MemoryLedger{nodes: map[string][]ClaimEntry{}} }

// Claim implements Ledger.
func (l *MemoryLedger) Claim(_ context.Context, node string, e ClaimEntry, check CheckFunc) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	out, err := applyClaim(l.nodes[node], e, check)
	if err != nil {
		return err
	}
	l.nodes[node] = out
	return nil
}

// Release implements Ledger.
func (l *MemoryLedger) Release(_ context.Context, node string, uid types.UID, by string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes[node] = releaseEntries(l.nodes[node], uid, by)
	return nil
}

// KnownEntries implements knownLedger.
func (l *MemoryLedger) KnownEntries(node string) []ClaimEntry { return l.Entries(node) }

// Entries returns a copy of a node's entries.
func (l *MemoryLedger) Entries(node string) []ClaimEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ClaimEntry(nil), l.nodes[node]...)
}

// ClaimsAnnotation holds a node ledger's entries (JSON) on its Lease.
const ClaimsAnnotation = "scheduler.keelson.dev/claims"

// LeaseLedger keeps each node's entries on a coordination.k8s.io Lease
// named after the node, in a namespace of its own, and updates it with
// the Lease's resourceVersion as precondition: two instances that read
// the same version cannot both write, so the loser re-reads (seeing the
// winner's claim) and re-checks.
//
// Claims on one node from this process are combined: while a write to a
// node's Lease is in flight, further claims for it queue up and go out
// together in the next write (each checked against the entries accepted
// before it), so an instance never races itself for a Lease and makes one
// write per batch rather than one per pod.
//
// A claim is normally one write: the ledger keeps the newest version of
// each node's Lease it has seen (its own writes and, once Start ran, every
// instance's through an informer) and updates that version, or creates the
// Lease when the informer knows of none. Only a write that fails its
// precondition reads the Lease back. (Reading before every write made each
// binding cost three requests instead of two.)
type LeaseLedger struct {
	Client    kubernetes.Interface
	Namespace string
	// MaxRetries bounds conflict retries for one claim (default 8).
	MaxRetries int

	mu      sync.Mutex
	pending map[string][]*claimRequest // by node; present while a drain runs

	knownMu sync.Mutex
	known   map[string]*coordinationv1.Lease // by node; read-only objects
	// listed: the informer's first list is in known, so a node missing
	// from it has no Lease (yet).
	listed atomic.Bool
}

// Start runs an informer on the ledger's Leases (those without the
// membership label) until ctx ends and waits for its first list. Without
// it, every claim reads the Lease before writing it.
func (l *LeaseLedger) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(l.Client, 0, informers.WithNamespace(l.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "!" + MemberLabel }))
	inf := factory.Coordination().V1().Leases().Informer()
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { l.remember(o.(*coordinationv1.Lease)) },
		UpdateFunc: func(_, n any) { l.remember(n.(*coordinationv1.Lease)) },
		DeleteFunc: func(o any) {
			if le, ok := tombstone[*coordinationv1.Lease](o); ok {
				l.forget(le.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching ledger leases: %w", err)
	}
	factory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		factory.Shutdown()
		return fmt.Errorf("ledger leases did not sync: %w", context.Cause(ctx))
	}
	l.listed.Store(true)
	context.AfterFunc(ctx, func() {
		l.listed.Store(false)
		factory.Shutdown()
	})
	return nil
}

// remember records lease as its node's newest known version unless a
// newer one is known already.
func (l *LeaseLedger) remember(lease *coordinationv1.Lease) {
	l.knownMu.Lock()
	defer l.knownMu.Unlock()
	if l.known == nil {
		l.known = map[string]*coordinationv1.Lease{}
	}
	if old, ok := l.known[lease.Name]; ok && newerVersion(old.ResourceVersion, lease.ResourceVersion) {
		return
	}
	l.known[lease.Name] = lease
}

func (l *LeaseLedger) forget(node string) {
	l.knownMu.Lock()
	delete(l.known, node)
	l.knownMu.Unlock()
}

// cached returns a copy of node's newest known Lease; none and create
// when the informer has listed and knows of no Lease for node.
func (l *LeaseLedger) cached(node string) (lease *coordinationv1.Lease, create bool) {
	l.knownMu.Lock()
	defer l.knownMu.Unlock()
	if k, ok := l.known[node]; ok {
		return k.DeepCopy(), false
	}
	return nil, l.listed.Load()
}

// KnownEntries returns node's entries in the newest version of its Lease
// this process knows of (none when it knows none). It reads nothing from
// the API server and may be behind.
func (l *LeaseLedger) KnownEntries(node string) []ClaimEntry {
	l.knownMu.Lock()
	k := l.known[node]
	l.knownMu.Unlock()
	if k == nil {
		return nil
	}
	out, err := decodeEntries(k)
	if err != nil {
		return nil
	}
	return out
}

// knownLedger is a Ledger that can tell, without a request, the entries it
// last saw for a node.
type knownLedger interface {
	KnownEntries(node string) []ClaimEntry
}

// newerVersion reports whether resourceVersion a is newer than b. They are
// compared as numbers, which the API server's storage makes them; when one
// is not a number, b (the later arrival) wins.
func newerVersion(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x > y
}

type claimRequest struct {
	ctx   context.Context
	entry ClaimEntry
	check CheckFunc
	done  chan error
}

// DecodeClaims returns the entries recorded on a ledger Lease.
func DecodeClaims(l *coordinationv1.Lease) ([]ClaimEntry, error) { return decodeEntries(l) }

func decodeEntries(l *coordinationv1.Lease) ([]ClaimEntry, error) {
	raw := l.Annotations[ClaimsAnnotation]
	if raw == "" {
		return nil, nil
	}
	var out []ClaimEntry
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("decoding ledger of %s: %w", l.Name, err)
	}
	return out, nil
}

func (l *LeaseLedger) update(ctx context.Context, node string, fn func([]ClaimEntry) ([]ClaimEntry, error)) error {
	return l.updateRetrying(ctx, node, l.MaxRetries, fn)
}

func (l *LeaseLedger) updateRetrying(ctx context.Context, node string, retries int, fn func([]ClaimEntry) ([]ClaimEntry, error)) error {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	if retries <= 0 {
		retries = 8
	}
	for attempt := range retries {
		if attempt > 0 {
			// Instances that collided would collide again at once:
			// spread the retries (a backoff, not a synchronization).
			t := time.NewTimer(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("ledger of %s: %w", node, ctx.Err())
			case <-t.C:
			}
		}
		var lease *coordinationv1.Lease
		create := false
		if attempt == 0 {
			lease, create = l.cached(node)
		}
		fromCache := lease != nil || create
		if lease == nil && !create {
			var err error
			lease, err = leases.Get(ctx, node, metav1.GetOptions{})
			create = apierrors.IsNotFound(err)
			if err != nil && !create {
				return fmt.Errorf("reading ledger of %s: %w", node, err)
			}
			if !create {
				l.remember(lease)
				lease = lease.DeepCopy()
			}
		}
		if create {
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: l.Namespace}}
		}
		entries, err := decodeEntries(lease)
		if err != nil {
			return err
		}
		out, err := fn(entries)
		if fromCache && (errors.Is(err, errNothingToWrite) || errors.Is(err, ErrClaimConflict)) {
			// The known version may be behind: a claim is refused, or a
			// release found nothing, only on a version just read.
			continue
		}
		if errors.Is(err, errNothingToWrite) {
			return nil
		}
		if err != nil {
			return err
		}
		raw, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encoding ledger of %s: %w", node, err)
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[ClaimsAnnotation] = string(raw)
		var got *coordinationv1.Lease
		if create {
			got, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		} else {
			// The resourceVersion read is the precondition.
			got, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			l.remember(got)
			return nil
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			continue
		case apierrors.IsNotFound(err):
			// Deleted since it was read: read (and create) it again.
			l.forget(node)
			continue
		default:
			return fmt.Errorf("writing ledger of %s: %w", node, err)
		}
	}
	return fmt.Errorf("ledger of %s: %w after %d conflicting writes", node, ErrClaimConflict, retries)
}

// Claim implements Ledger. It returns once the batch holding the claim was
// written (or refused).
func (l *LeaseLedger) Claim(ctx context.Context, node string, e ClaimEntry, check CheckFunc) error {
	r := &claimRequest{ctx: ctx, entry: e, check: check, done: make(chan error, 1)}
	l.mu.Lock()
	if l.pending == nil {
		l.pending = map[string][]*claimRequest{}
	}
	q, running := l.pending[node]
	l.pending[node] = append(q, r)
	l.mu.Unlock()
	if !running {
		go l.drain(node)
	}
	// Not abandoned on ctx: the claim may already be on its way to the
	// Lease, and the caller must know whether to release it.
	return <-r.done
}

// drain writes the queued claims of node batch by batch until none is
// left.
func (l *LeaseLedger) drain(node string) {
	for {
		l.mu.Lock()
		batch := l.pending[node]
		if len(batch) == 0 {
			delete(l.pending, node)
			l.mu.Unlock()
			return
		}
		l.pending[node] = batch[:0:0]
		l.mu.Unlock()
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- fmt.Errorf("claim on %s: %w", node, err)
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		results := make([]error, len(live))
		err := l.update(live[0].ctx, node, func(entries []ClaimEntry) ([]ClaimEntry, error) {
			out, wrote := entries, false
			for i, r := range live {
				next, err := applyClaim(out, r.entry, r.check)
				results[i] = err
				if err == nil {
					out, wrote = next, true
				}
			}
			if !wrote {
				return nil, errNothingToWrite
			}
			return out, nil
		})
		for i, r := range live {
			if err != nil {
				results[i] = err
			}
			r.done <- results[i]
		}
	}
}

// Release implements Ledger. It tries harder than Claim (a claim that
// loses retries the pod; a release that loses leaves an entry behind), and
// writes nothing when the entry is not there.
func (l *LeaseLedger) Release(ctx context.Context, node string, uid types.UID, by string) error {
	return l.updateRetrying(ctx, node, 4*max(l.MaxRetries, 8), func(entries []ClaimEntry) ([]ClaimEntry, error) {
		out := releaseEntries(entries, uid, by)
		if len(out) == len(entries) {
			return nil, errNothingToWrite
		}
		return out, nil
	})
}

// errNothingToWrite ends an update that would not change the ledger.
var errNothingToWrite = errors.New("nothing to write")
