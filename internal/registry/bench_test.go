package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/models/modeltest"
)

// BenchmarkStartup is a replica starting (registry.New: the first sync) on a disk model store
// that holds versions=N uploaded versions, two of them activated. It reports the versions the
// replica then holds in memory (loaded/op): what can be served at once, not the whole history.
func BenchmarkStartup(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			d, err := registry.OpenDisk(dir)
			if err != nil {
				b.Fatal(err)
			}
			up, _ := newRegistry(b, d, prometheus.NewRegistry())
			for i := range n {
				data := modeltest.WithVersion(b, fmt.Sprintf("v%d", i), nil)
				if _, err := up.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			for _, v := range []string{"v0", "v1"} {
				if _, err := up.Activate(ctx, v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			loaded := 0
			for b.Loop() {
				b.StopTimer()
				store := newStore(b)
				b.StartTimer()
				if _, err := registry.New(ctx, registry.Options{Backend: d, Store: store, Reconcile: time.Hour, Registerer: prometheus.NewRegistry()}); err != nil {
					b.Fatal(err)
				}
				loaded = len(store.List())
			}
			b.ReportMetric(float64(loaded), "loaded/op")
		})
	}
}
