package plugin

import (
	"strings"
	"testing"
)

func TestRegisterRejectsBadAndDuplicateNames(t *testing.T) {
	defer func() {
		mu.Lock()
		delete(registry, "test.kind.one")
		mu.Unlock()
	}()
	Register(Info{Name: "test.kind.one", Summary: "first", Factory: func() {}})
	if got, ok := Lookup("test.kind.one"); !ok || got.ConfigVersion != "v1" {
		t.Fatalf("Lookup = %+v, %v; want registered with default config version v1", got, ok)
	}
	if names := Names("test.kind."); len(names) != 1 || names[0] != "one" {
		t.Fatalf("Names = %v, want [one]", names)
	}
	for _, tc := range []struct {
		name, info, wantPanic string
	}{
		{"duplicate", "test.kind.one", "registered twice"},
		{"no namespace", "postgres", "is not <component>.<kind>.<name>"},
		{"upper case", "Store.backend.x", "is not <component>.<kind>.<name>"},
		{"empty", "", "is not <component>.<kind>.<name>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tc.wantPanic) {
					t.Fatalf("Register(%q) panic = %v, want one containing %q", tc.info, r, tc.wantPanic)
				}
			}()
			Register(Info{Name: tc.info, Factory: func() {}})
		})
	}
}
