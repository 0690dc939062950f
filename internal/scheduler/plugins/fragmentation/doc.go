// Package fragmentation scores nodes by how much of their free room the
// pods still waiting to be scheduled could no longer use once the pod is
// placed there (fragmentation-aware packing).
//
// A node's fragment, for the distribution of pending pods' request shapes
// (CPU and memory, counted by the scheduler: framework.PendingHandle), is
// the share of pending pods that would not fit in its free room (CPU,
// memory or pod count) times the size of that room (the larger of its free
// CPU and free memory fractions): room that most pending pods cannot use is
// wasted. The plugin prefers the node where placing the pod grows this
// fragment least (or shrinks it most), so that room is left in pieces the
// pending pods can fill. Nodes where the change is the same tie; other
// plugins or the random tie-break decide between them.
//
// It is meant for saturated clusters (more pending requests than room),
// where the number of pods placed and the share of CPU and memory
// allocated depend on leaving usable room, and is not node-local (its
// score depends on the pending pods), so cycles with it do not reuse the
// last equal pod's results.
package fragmentation
