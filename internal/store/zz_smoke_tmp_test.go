package store_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keelson-dev/keelson/internal/testenv"
)

func TestZZSmokeAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Store: testenv.StoreKeelson})
	c, err := kubernetes.NewForConfig(env.APIServers[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 20 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"}, Data: map[string]string{"i": string(rune('a' + i))}}
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	l, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 5})
	if err != nil || len(l.Items) != 5 || l.Continue == "" {
		t.Fatalf("list: %v %v", len(l.Items), err)
	}
	n := 0
	timeout := time.After(20 * time.Second)
	for n < 20 {
		select {
		case <-w.ResultChan():
			n++
		case <-timeout:
			t.Fatalf("watch got %d events", n)
		}
	}
	t.Logf("ok: %d watch events", n)
}
