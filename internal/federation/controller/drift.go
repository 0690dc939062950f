package controller

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/render"
)

// drifted reports whether the member's copy cur of an object keelson
// manages no longer carries what keelson applied (desired): someone
// changed it in the member by hand. Only fields desired sets are compared,
// so what the member's apiserver and controllers add (defaults, status)
// is not drift. A resourceVersion found in line is not checked again. The caller applies
// desired again, which with forced server-side apply puts keelson's values
// back.
func (c *Controller) drifted(cl string, cur, desired *unstructured.Unstructured, st *objState) bool {
	rv := cur.GetResourceVersion()
	c.mu.Lock()
	seen := rv != "" && st.checkedRV[cl] == rv
	c.mu.Unlock()
	if seen {
		return false
	}
	path, ok := render.Contains(cur.Object, desired.Object, "")
	if ok {
		// Only a copy found in line is remembered: a drifted one is
		// checked (and applied) again until a write succeeds.
		c.mu.Lock()
		if st.checkedRV == nil {
			st.checkedRV = map[string]string{}
		}
		st.checkedRV[cl] = rv
		c.mu.Unlock()
		return false
	}
	c.log.Info("member copy changed outside keelson; applying it again", "kind", desired.GetKind(),
		"namespace", desired.GetNamespace(), "name", desired.GetName(), "cluster", cl, "field", path)
	return true
}
