package registry_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/registry"
)

// loaded lists the versions a store holds, sorted.
func loaded(s *modelstore.Store) []string {
	var out []string
	for _, m := range s.List() {
		out = append(out, m.Version())
	}
	slices.Sort(out)
	return out
}

// replica starts a registry with its own store (the embedded default only) on the directory dir.
func replica(t *testing.T, dir string, o registry.Options) (*registry.Registry, *modelstore.Store, *prometheus.Registry) {
	t.Helper()
	d, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.Backend, o.Store, o.Registerer = d, newStore(t), reg
	if o.Reconcile == 0 {
		o.Reconcile = time.Hour
	}
	r, err := registry.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r, o.Store, reg
}

// Before the fix, a replica loaded every version ever uploaded at start and kept it: start-up
// time and memory grew with the history. Now it loads what can be served at once (the active
// version, the rollback target, --model-version), lists the others from their records, and
// loads them when a request names one, keeping at most OnDemand of those.
func TestOnlyWhatCanBeServedIsLoaded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, _, _ := replica(t, dir, registry.Options{})
	defaultVersion := newStore(t).Active().Version()
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "v6"} {
		uploadVersion(t, a, v)
	}
	for _, v := range []string{"v5", "v6"} {
		if _, err := a.Activate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}

	// A replica starting now: the embedded default (always there), v6 (active), v5 (rollback
	// target), v2 (--model-version). Not v1, v3, v4.
	b, storeB, reg := replica(t, dir, registry.Options{OnDemand: 1, ModelVersion: "v2"})
	if got, want := loaded(storeB), []string{defaultVersion, "v2", "v5", "v6"}; !slices.Equal(got, want) {
		t.Fatalf("loaded at start = %v, want %v", got, want)
	}
	if got := metricstest.Value(t, reg, "churn_model_loaded_versions", nil); got != 4 {
		t.Fatalf("churn_model_loaded_versions = %v, want 4", got)
	}
	versions, _ := b.List()
	if len(versions) != 7 {
		t.Fatalf("List has %d versions, want all 7 (the default and six uploads)", len(versions))
	}
	for _, v := range versions {
		if v.Record != nil && v.Record.Version == "v1" && (v.Model != nil || v.Err != nil || v.Record.Name != "churn-default") {
			t.Fatalf("v1 listed as %+v; want stored, not loaded, with its name", v)
		}
	}

	// A burst of requests naming v1 loads it once; then v3 replaces it (OnDemand 1).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if m, err := b.Model(ctx, "v1"); err != nil || m.Version() != "v1" {
				t.Errorf("Model(v1) = %v, %v", m, err)
			}
		})
	}
	wg.Wait()
	if got := metricstest.Value(t, reg, "churn_model_on_demand_loads_total", map[string]string{"result": "ok"}); got != 1 {
		t.Fatalf("eight concurrent requests for v1 made %v loads, want 1", got)
	}
	if _, err := b.Model(ctx, "v3"); err != nil {
		t.Fatal(err)
	}
	if got, want := loaded(storeB), []string{defaultVersion, "v2", "v3", "v5", "v6"}; !slices.Equal(got, want) {
		t.Fatalf("loaded after v1 then v3 on demand = %v, want %v", got, want)
	}
	if _, err := b.Model(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Model(nope) = %v, want ErrNotFound", err)
	}

	// An activation moves the rollback target: v5 is no longer needed and joins the on-demand
	// versions, pushing v3 out.
	if _, err := b.Activate(ctx, "v4"); err != nil {
		t.Fatal(err)
	}
	if got, want := loaded(storeB), []string{defaultVersion, "v2", "v4", "v5", "v6"}; !slices.Equal(got, want) {
		t.Fatalf("loaded after activating v4 = %v, want %v", got, want)
	}

	// Without loading on demand a request naming a stored version is told to activate it.
	c, _, _ := replica(t, dir, registry.Options{})
	if _, err := c.Model(ctx, "v1"); !errors.Is(err, registry.ErrNotLoaded) {
		t.Fatalf("Model(v1) without on-demand loading = %v, want ErrNotLoaded", err)
	}
}

// DeleteModel refuses the active version and the rollback target, removes others from the store
// and from memory, and another replica forgets them at its next sync.
func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, storeA, reg := replica(t, dir, registry.Options{OnDemand: 2})
	defaultVersion := storeA.Active().Version()
	for _, v := range []string{"d1", "d2", "d3"} {
		uploadVersion(t, a, v)
	}
	for _, v := range []string{"d2", "d3"} {
		if _, err := a.Activate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	b, _, _ := replica(t, dir, registry.Options{})
	for _, tc := range []struct {
		version string
		want    error
	}{
		{"d3", registry.ErrProtected},  // active
		{"d2", registry.ErrProtected},  // rollback target
		{"nope", registry.ErrNotFound}, // never stored
		{"d1", nil},                    // an old version
		{"d1", registry.ErrNotFound},   // gone
	} {
		if err := a.Delete(ctx, tc.version); !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
			t.Fatalf("Delete(%s) = %v, want %v", tc.version, err, tc.want)
		}
	}
	// The embedded default was stored by the first activation; it is no longer the rollback
	// target, so it can be deleted from the store, and stays loaded here as the embedded model.
	if err := a.Delete(ctx, defaultVersion); err != nil {
		t.Fatalf("Delete(%s) = %v", defaultVersion, err)
	}
	if _, ok := storeA.Get(defaultVersion); !ok {
		t.Fatal("deleting the stored copy of the embedded default unloaded the embedded model")
	}
	if err := a.Delete(ctx, defaultVersion); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("second Delete(%s) = %v, want ErrNotFound", defaultVersion, err)
	}
	if _, ok := storeA.Get("d1"); ok {
		t.Fatal("d1 is still loaded after its deletion")
	}
	if _, err := a.Get("d1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Get(d1) after deletion = %v, want ErrNotFound", err)
	}
	if got := metricstest.Value(t, reg, "churn_model_deletions_total", map[string]string{"reason": "request"}); got != 2 {
		t.Fatalf("churn_model_deletions_total{reason=request} = %v, want 2", got)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("d1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("replica b still lists d1 after its sync: %v", err)
	}
}

// Retention keeps the most recently stored versions, and always the active version and the
// rollback target however old.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Minute); return clock }
	a, _, reg := replica(t, t.TempDir(), registry.Options{Retention: 2, Now: now})
	defaultVersion := newStore(t).Active().Version()
	uploadVersion(t, a, "r1")
	if _, err := a.Activate(ctx, "r1"); err != nil { // stores the default too: the rollback target
		t.Fatal(err)
	}
	for _, v := range []string{"r2", "r3", "r4", "r5"} {
		uploadVersion(t, a, v)
	}
	versions, _ := a.List()
	var got []string
	for _, v := range versions {
		if v.Record != nil {
			got = append(got, v.Record.Version)
		}
	}
	slices.Sort(got)
	if want := []string{defaultVersion, "r1", "r4", "r5"}; !slices.Equal(got, want) {
		t.Fatalf("stored after retention = %v, want %v", got, want)
	}
	if got := metricstest.Value(t, reg, "churn_model_deletions_total", map[string]string{"reason": "retention"}); got != 2 {
		t.Fatalf("churn_model_deletions_total{reason=retention} = %v, want 2", got)
	}
}
