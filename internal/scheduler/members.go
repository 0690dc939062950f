package scheduler

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
)

// Membership Leases: one per running instance, in the ledger namespace.
const (
	// MemberLabel marks an instance's membership Lease.
	MemberLabel = "scheduler.keelson.dev/member"
	// MemberProfilesAnnotation lists the schedulerNames an instance
	// serves, comma-separated: a pod is shared only between the members
	// that serve its schedulerName.
	MemberProfilesAnnotation = "scheduler.keelson.dev/profiles"
	// MemberShareAnnotation is the fraction of each node an instance may
	// fill without claims (absent: none). Fixed for an instance's life.
	MemberShareAnnotation = "scheduler.keelson.dev/share"
	// MemberReservesAnnotation lists, comma-separated, the instances whose
	// unused shares every claim of this instance leaves free, including
	// the claims still in flight: an instance places pods in its share
	// only once every live member lists it here.
	MemberReservesAnnotation = "scheduler.keelson.dev/reserves"
	memberLeasePrefix        = "keelson-member-"
)

// ShareHolder is an instance whose share of each node claims must leave
// free: Fraction of the node minus what it visibly placed there.
type ShareHolder struct {
	ID       string
	Fraction float64
}

// goneHolder is a share holder no longer live: its share stays reserved
// until this instance's pod informer has delivered every pod event up to
// rv, which is later than its last binding.
type goneHolder struct {
	share float64
	rv    uint64
}

// member is a live instance as seen through its Lease.
type member struct {
	id       string
	profiles []string
	// renewed is the Lease's renewTime as last seen.
	renewed time.Time
	// share is its MemberShareAnnotation; reserves its
	// MemberReservesAnnotation.
	share    float64
	reserves []string
	// expires is leaseDurationSeconds after the later of renewTime and
	// the moment this instance saw that renewal (first sighting: after
	// renewTime only). A renewal that reaches this instance late, through
	// a lagging watch on a loaded API server, still counts in full, so
	// instances do not drop each other while both are renewing.
	expires time.Time
}

// Members tracks the live scheduler instances through their membership
// Leases and decides which instance owns a pending pod: the member, among
// the live ones serving the pod's schedulerName, with the highest
// rendezvous hash of (pod key, member). When a member joins or leaves only
// the pods it gains or loses move. This instance always counts itself.
type Members struct {
	client kubernetes.Interface
	// lease is this instance's Lease as last written (renew goroutine
	// only).
	lease     *coordinationv1.Lease
	namespace string
	self      string
	profiles  []string
	duration  time.Duration
	clock     clock.WithTicker
	log       *slog.Logger
	// onChange is called (without locks held) when the live set changes.
	onChange func()

	mu   sync.RWMutex
	all  map[string]member // by instance ID, from the informer
	live []member          // sorted by id, refreshed on events and ticks
	// renewedOK is when this instance's own Lease was last written
	// successfully: proof that the API server took writes then; ownRV is
	// that write's resourceVersion.
	renewedOK time.Time
	ownRV     uint64

	// Shares (see ShareHolders). share is this instance's fraction.
	share float64
	// seenRV reports the newest pod resourceVersion this instance's pod
	// informer delivered (nil: never past any).
	seenRV func() uint64
	// gone are share holders that left, until seenRV passes their rv.
	gone map[string]goneHolder
	// hv counts changes of the live share holders; hsets[v] is the set
	// (other than this instance) at version v; inflight[v] counts claims
	// begun at version v that have not ended.
	hv       uint64
	hsets    map[uint64][]string
	inflight map[uint64]int
	// stopping: the context ended, no more share placements.
	stopping bool
	// kick asks the renew loop for an early renewal (new reserves to
	// publish); released is closed once bindings are done (Release).
	kick     chan struct{}
	released chan struct{}
	inf      toolscache.SharedIndexInformer
}

// MembersOptions configure Members.
type MembersOptions struct {
	Client    kubernetes.Interface
	Namespace string
	Self      string
	Profiles  []string
	// LeaseDuration: a member whose Lease was not renewed for this long is
	// gone. Renewal happens every third of it.
	LeaseDuration time.Duration
	Clock         clock.WithTicker
	Logger        *slog.Logger
	OnChange      func()
	// ShareFraction: see MultiInstanceConfig.ShareFraction.
	ShareFraction float64
	// SeenRV: the newest pod resourceVersion the pod informer delivered
	// to the scheduler (used to stop reserving a departed member's share).
	SeenRV func() uint64
}

// NewMembers returns a membership tracker; Start runs it.
func NewMembers(o MembersOptions) *Members {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Members{
		client: o.Client, namespace: o.Namespace, self: o.Self, profiles: slices.Sorted(slices.Values(o.Profiles)),
		duration: o.LeaseDuration, clock: o.Clock, log: o.Logger, onChange: o.OnChange,
		all: map[string]member{}, share: o.ShareFraction, seenRV: o.SeenRV,
		gone: map[string]goneHolder{}, hsets: map[uint64][]string{0: nil}, inflight: map[uint64]int{},
		kick: make(chan struct{}, 1), released: make(chan struct{}),
	}
	m.live = []member{{id: o.Self, profiles: m.profiles}}
	return m
}

// MemberLeaseName is the name of an instance's membership Lease: a DNS
// subdomain derived from the instance ID (the ID itself is the Lease's
// holderIdentity).
func MemberLeaseName(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	h := fnv.New32a()
	h.Write([]byte(id))
	// The hash keeps IDs that sanitize alike apart.
	name = fmt.Sprintf("%s%s-%08x", memberLeasePrefix, name, h.Sum32())
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// Start creates this instance's Lease, starts the informer on membership
// Leases and waits for its first list; renewal and expiry checks run
// until ctx ends, when the Lease is deleted (a clean exit hands this
// instance's pods to the others at once).
func (m *Members) Start(ctx context.Context) error {
	if err := m.renew(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	m.renewedOK = m.clock.Now()
	m.ownRV, _ = strconv.ParseUint(m.lease.ResourceVersion, 10, 64)
	m.mu.Unlock()
	factory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithNamespace(m.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = MemberLabel }))
	inf := factory.Coordination().V1().Leases().Informer()
	m.inf = inf
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { m.observe(o.(*coordinationv1.Lease), false) },
		UpdateFunc: func(_, n any) { m.observe(n.(*coordinationv1.Lease), false) },
		DeleteFunc: func(o any) {
			if l, ok := tombstone[*coordinationv1.Lease](o); ok {
				m.observe(l, true)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching member leases: %w", err)
	}
	factory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		factory.Shutdown()
		return fmt.Errorf("member leases did not sync: %w", context.Cause(ctx))
	}
	go func() {
		defer factory.Shutdown()
		m.run(ctx)
	}()
	return nil
}

func (m *Members) run(ctx context.Context) {
	period := m.duration / 3
	renew := m.clock.NewTimer(period)
	defer renew.Stop()
	// Expiry is checked more often than renewal so that a crashed
	// member's pods move soon after its Lease runs out.
	check := m.clock.NewTicker(min(time.Second, period))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.stopping = true
			m.mu.Unlock()
			// The Lease goes only after this instance's bindings ended
			// (Release): its deletion's resourceVersion then follows
			// every share placement, and the others stop reserving the
			// share once they have seen pods up to it.
			if m.share > 0 {
				wait := m.clock.NewTimer(30 * time.Second)
				select {
				case <-m.released:
				case <-wait.C():
				}
				wait.Stop()
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := m.client.CoordinationV1().Leases(m.namespace).Delete(dctx, MemberLeaseName(m.self), metav1.DeleteOptions{})
			cancel()
			if err != nil && !apierrors.IsNotFound(err) {
				m.log.Warn("deleting member lease", "err", err)
			}
			return
		case <-m.kick:
			if !renew.Stop() {
				select {
				case <-renew.C():
				default:
				}
			}
			renew.Reset(0)
		case <-renew.C():
			// A renewal that hangs must not hold up the next one, and one
			// that fails is retried within a second rather than a period:
			// the others drop this instance after a whole Lease duration.
			rctx, cancel := context.WithTimeout(ctx, period)
			err := m.renew(rctx)
			cancel()
			next := period
			if err != nil && ctx.Err() == nil {
				m.log.Warn("renewing member lease", "err", err)
				next = min(time.Second, period)
			}
			if err == nil {
				m.mu.Lock()
				m.renewedOK = m.clock.Now()
				if m.lease != nil {
					m.ownRV, _ = strconv.ParseUint(m.lease.ResourceVersion, 10, 64)
				}
				m.mu.Unlock()
				m.refresh()
			}
			renew.Reset(next)
		case <-check.C():
			m.refresh()
		}
	}
}

// renew creates or renews this instance's Lease.
func (m *Members) renew(ctx context.Context) error {
	leases := m.client.CoordinationV1().Leases(m.namespace)
	name := MemberLeaseName(m.self)
	now := metav1.NewMicroTime(m.clock.Now())
	secs := int32(max(1, m.duration/time.Second))
	// One write per renewal: the Lease last written is updated in place;
	// only when that fails (changed or deleted meanwhile) is it read.
	anno := m.annotations()
	if last := m.lease; last != nil {
		l := last.DeepCopy()
		l.Spec.RenewTime = &now
		maps.Copy(l.Annotations, anno)
		if got, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
			m.lease = got
			return nil
		}
		m.lease = nil
	}
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: m.namespace,
				Labels:      map[string]string{MemberLabel: "true"},
				Annotations: anno,
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &m.self, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}
		got, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating member lease: %w", err)
		}
		m.lease = got
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading member lease: %w", err)
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &m.self, &secs, &now
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	l.Labels[MemberLabel] = "true"
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	maps.Copy(l.Annotations, anno)
	got, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("renewing member lease: %w", err)
	}
	m.lease = got
	return nil
}

func (m *Members) observe(l *coordinationv1.Lease, deleted bool) {
	if l.Spec.HolderIdentity == nil {
		return
	}
	id := *l.Spec.HolderIdentity
	m.mu.Lock()
	if deleted {
		if old, ok := m.all[id]; ok && old.share > 0 && id != m.self {
			// The deletion's version (or, from a relist's tombstone, the
			// informer's, which is later).
			rv, _ := strconv.ParseUint(l.ResourceVersion, 10, 64)
			if m.inf != nil {
				if x, err := strconv.ParseUint(m.inf.LastSyncResourceVersion(), 10, 64); err == nil {
					rv = max(rv, x)
				}
			}
			m.gone[id] = goneHolder{share: old.share, rv: max(rv, m.gone[id].rv)}
		}
		delete(m.all, id)
	} else {
		mb := member{id: id}
		if p := l.Annotations[MemberProfilesAnnotation]; p != "" {
			mb.profiles = strings.Split(p, ",")
		}
		if f, err := strconv.ParseFloat(l.Annotations[MemberShareAnnotation], 64); err == nil && f > 0 && f < 1 {
			mb.share = f
		}
		if r := l.Annotations[MemberReservesAnnotation]; r != "" {
			mb.reserves = strings.Split(r, ",")
		}
		if l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil {
			d := time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
			mb.renewed = l.Spec.RenewTime.Time
			mb.expires = mb.renewed.Add(d)
			if old, seen := m.all[id]; seen && mb.renewed.After(old.renewed) {
				// A new renewal, seen now: count the Lease from here (the
				// member was alive at renewTime, and its watch event may
				// have been delayed).
				if now := m.clock.Now(); now.After(mb.renewed) {
					mb.expires = now.Add(d)
				}
			} else if seen && !old.expires.Before(mb.expires) {
				mb.expires = old.expires
			}
		}
		m.all[id] = mb
	}
	m.mu.Unlock()
	m.refresh()
}

// refresh recomputes the live set and reports a change. A member whose
// Lease ran out is dropped only once this instance has itself renewed its
// Lease after that moment: when no instance can write (an overloaded API
// server timing renewals out), none drops the others, which would only
// make every instance decide every pod and add to the overload. A crashed
// member is still dropped, one renewal after its Lease ran out.
func (m *Members) refresh() {
	now := m.clock.Now()
	m.mu.Lock()
	live := []member{{id: m.self, profiles: m.profiles, share: m.share}}
	for id, mb := range m.all {
		if id == m.self {
			continue
		}
		if mb.expires.After(now) || !m.renewedOK.After(mb.expires) {
			live = append(live, mb)
			delete(m.gone, id)
		} else if _, was := m.gone[id]; !was && mb.share > 0 {
			// Dropped as crashed: its bindings ended before its Lease ran
			// out, so before this instance's renewal that proved it.
			m.gone[id] = goneHolder{share: mb.share, rv: m.ownRV}
		}
	}
	slices.SortFunc(live, func(a, b member) int { return strings.Compare(a.id, b.id) })
	changed := !slices.EqualFunc(live, m.live, func(a, b member) bool {
		return a.id == b.id && slices.Equal(a.profiles, b.profiles)
	})
	m.live = live // reserves may have changed
	kick := m.noteHoldersLocked()
	m.mu.Unlock()
	if kick {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	if changed {
		ids := make([]string, len(live))
		for i, mb := range live {
			ids[i] = mb.id
		}
		m.log.Info("scheduler instances changed", "live", ids)
		if m.onChange != nil {
			m.onChange()
		}
	}
}

// Live returns the IDs of the live members (this one included).
func (m *Members) Live() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, len(m.live))
	for i, mb := range m.live {
		out[i] = mb.id
	}
	return out
}

// Owner returns the instance that owns pod: pods of one gang share an
// owner (the held count of a gang is per instance), pods with constraints
// that span nodes share one per namespace (see CrossNode), other pods are
// spread by UID.
func (m *Members) Owner(pod *v1.Pod) string {
	key := string(pod.UID)
	if g := gang.GroupName(pod); g != "" {
		key = pod.Namespace + "/" + g
	} else if CrossNode(pod) {
		key = "cross-node/" + pod.Namespace
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return rendezvous(key, pod.Spec.SchedulerName, m.live)
}

// CrossNode reports whether pod has a constraint the per-node claim
// ledger cannot guard across instances: required pod affinity or
// anti-affinity, or a DoNotSchedule topology spread constraint. Two
// instances placing such pods at once could each miss the other's
// placement, so they are decided by one instance per namespace (its own
// assumed pods are in its cache) and never stolen.
func CrossNode(pod *v1.Pod) bool {
	if a := pod.Spec.Affinity; a != nil {
		if a.PodAffinity != nil && len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			return true
		}
		if a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			return true
		}
	}
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable == v1.DoNotSchedule {
			return true
		}
	}
	return false
}

// Owns reports whether this instance owns pod.
func (m *Members) Owns(pod *v1.Pod) bool { return m.Owner(pod) == m.self }

// rendezvous picks, among members serving profile, the one with the
// highest hash of (key, member id). Members that list no profiles serve
// every one.
func rendezvous(key, profile string, members []member) string {
	best, bestScore := "", uint64(0)
	for _, mb := range members {
		if len(mb.profiles) > 0 && !slices.Contains(mb.profiles, profile) {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(mb.id))
		s := mix64(h.Sum64())
		if best == "" || s > bestScore || (s == bestScore && mb.id < best) {
			best, bestScore = mb.id, s
		}
	}
	return best
}

// mix64 is a finalizer (splitmix64) that spreads FNV's output, whose high
// bits change little for keys that differ in their last bytes.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// annotations are this instance's Lease annotations: profiles, share and
// the holders its claims reserve for.
func (m *Members) annotations() map[string]string {
	a := map[string]string{MemberProfilesAnnotation: strings.Join(m.profiles, ",")}
	if m.share > 0 {
		a[MemberShareAnnotation] = strconv.FormatFloat(m.share, 'f', -1, 64)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The holders known when the oldest claim still in flight began: a
	// claim checked before a holder was seen may not leave its share
	// free, so that holder is listed only once such claims ended.
	v := m.hv
	for k := range m.inflight {
		v = min(v, k)
	}
	for k := range m.hsets {
		if k < v {
			delete(m.hsets, k)
		}
	}
	a[MemberReservesAnnotation] = strings.Join(m.hsets[v], ",")
	return a
}

// noteHoldersLocked starts a new holders version when a live share
// holder appeared that the current one lacks, and reports whether the
// new reserves should be published now.
func (m *Members) noteHoldersLocked() bool {
	var ids []string
	grew := false
	cur := m.hsets[m.hv]
	for _, mb := range m.live {
		if mb.id != m.self && mb.share > 0 {
			ids = append(ids, mb.id)
			if !slices.Contains(cur, mb.id) {
				grew = true
			}
		}
	}
	if !grew {
		return false
	}
	for _, id := range cur {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	m.hv++
	m.hsets[m.hv] = ids
	return true
}

// BeginClaim registers a claim about to be checked; EndClaim(v) with the
// returned version ends it. Until it ends, this instance does not list a
// share holder seen after it began as reserved.
func (m *Members) BeginClaim() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inflight[m.hv]++
	return m.hv
}

// EndClaim: see BeginClaim.
func (m *Members) EndClaim(v uint64) {
	m.mu.Lock()
	if m.inflight[v]--; m.inflight[v] <= 0 {
		delete(m.inflight, v)
	}
	// The last claim of an older version ended: holders seen since may
	// be published now.
	kick := m.inflight[v] == 0 && v < m.hv
	m.mu.Unlock()
	if kick {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// ShareHolders are the instances whose unused share of every node a claim
// must leave free: live members with a share (this one included), and
// members that left with a share until every pod event up to their
// departure has reached this instance.
func (m *Members) ShareHolders() []ShareHolder {
	seen := uint64(0)
	if m.seenRV != nil {
		seen = m.seenRV()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ShareHolder
	for _, mb := range m.live {
		if mb.share > 0 {
			out = append(out, ShareHolder{ID: mb.id, Fraction: mb.share})
		}
	}
	for id, g := range m.gone {
		if seen >= g.rv && g.rv > 0 {
			delete(m.gone, id)
			continue
		}
		out = append(out, ShareHolder{ID: id, Fraction: g.share})
	}
	return out
}

// ShareReady reports whether this instance may place pods in its share
// now: it has one, is not stopping, renewed its Lease within half a
// Lease duration (the others cannot have dropped it), and every other
// live member lists it as reserved.
func (m *Members) ShareReady() bool {
	if m.share <= 0 {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.stopping || m.clock.Since(m.renewedOK) > m.duration/2 {
		return false
	}
	for _, mb := range m.live {
		if mb.id != m.self && !slices.Contains(mb.reserves, m.self) {
			return false
		}
	}
	return true
}

// Release tells the renew loop that this instance's bindings have ended,
// so its Lease may be deleted once its context ends.
func (m *Members) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.released:
	default:
		close(m.released)
	}
}
