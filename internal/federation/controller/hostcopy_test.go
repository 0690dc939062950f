package controller

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestDecodeHostList checks that the list walker gives the same hostCopy
// as decoding each item into an unstructured object and compacting it.
func TestDecodeHostList(t *testing.T) {
	items := []string{
		// managedFields in the middle of metadata, escapes in strings.
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","namespace":"ns","uid":"u1","resourceVersion":"10","managedFields":[{"manager":"x\"}]","fieldsV1":{"f:spec":{}}}],"labels":{"k":"v \\ ]}"}},"spec":{"replicas":3,"big":12345678901234567890}}`,
		// managedFields first and only member after whitespace.
		"{ \"kind\":\"K\", \"apiVersion\":\"v1\", \"metadata\" : { \"managedFields\" : [ ] , \"name\" : \"b\" } , \"spec\" : [1, 2.5, true, null, \"s\"] }",
		// managedFields last.
		`{"kind":"K","apiVersion":"v1","metadata":{"name":"c","uid":"u3","managedFields":[{"a":[{"b":{}}]}]},"status":{}}`,
		// only managedFields.
		`{"metadata":{"managedFields":null},"x":"\u00e9","kind":"K","apiVersion":"v1"}`,
		// no apiVersion nor kind (built-in kinds' list items).
		`{"metadata":{"name":"e","managedFields":[]},"spec":{}}`,
		// no managedFields, escaped key.
		`{"metadata":{"name":"d","na\u006despace":"e"},"data":{"k":"}{]["},"kind":"K","apiVersion":"v1"}`,
	}
	body := fmt.Sprintf(`{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"42","continue":"tok"},"items":[%s]}`, strings.Join(items, " ,\n "))
	l, err := decodeHostList([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if l.ResourceVersion != "42" || l.Continue != "tok" {
		t.Fatalf("list metadata: got rv %q continue %q", l.ResourceVersion, l.Continue)
	}
	if len(l.Items) != len(items) {
		t.Fatalf("got %d items, want %d", len(l.Items), len(items))
	}
	ul := &unstructured.UnstructuredList{}
	if err := ul.UnmarshalJSON([]byte(body)); err != nil {
		t.Fatal(err)
	}
	for i := range items {
		want, err := compactHostObject(&ul.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		w, g := want.(*hostCopy), &l.Items[i]
		if g.Name != w.Name || g.Namespace != w.Namespace || g.UID != w.UID || g.ResourceVersion != w.ResourceVersion {
			t.Errorf("item %d: metadata %v, want %v", i, g.ObjectMeta, w.ObjectMeta)
		}
		var gv, wv any
		if err := json.Unmarshal(g.raw, &gv); err != nil {
			t.Fatalf("item %d: raw %s: %v", i, g.raw, err)
		}
		if err := json.Unmarshal(w.raw, &wv); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("item %d: raw %s, want %s", i, g.raw, w.raw)
		}
		if _, err := g.object(); err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	if _, err := decodeHostList([]byte(`{"items":[{"metadata":{}}`)); err == nil {
		t.Error("truncated list decoded without an error")
	}
	if l, err := decodeHostList([]byte(`{"metadata":{},"items":null}`)); err != nil || len(l.Items) != 0 {
		t.Errorf("null items: %v, %v", l, err)
	}
}

func BenchmarkDecodeHostList(b *testing.B) {
	item := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"obj-%d","namespace":"bench","uid":"0b0e7c5e-1d2f-4a5b-9c8d-%012d","resourceVersion":"%d","generation":1,"creationTimestamp":"2026-11-27T05:00:00Z","labels":{"app":"x"},"annotations":{"federation.keelson.dev/hash":"abc"},"finalizers":["federation.keelson.dev/cleanup"],"managedFields":[{"manager":"bench","operation":"Update","apiVersion":"apps/v1","time":"2026-11-27T05:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}]},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"registry.invalid/app:1","resources":{}}]}},"strategy":{"type":"RollingUpdate"}},"status":{}}`
	var parts []string
	for i := range 500 {
		parts = append(parts, fmt.Sprintf(item, i, i, i))
	}
	body := []byte(`{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"1"},"items":[` + strings.Join(parts, ",") + `]}`)
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeHostList(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unstructured", func(b *testing.B) {
		for b.Loop() {
			l := &unstructured.UnstructuredList{}
			if err := l.UnmarshalJSON(body); err != nil {
				b.Fatal(err)
			}
			for i := range l.Items {
				if _, err := compactHostObject(&l.Items[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
