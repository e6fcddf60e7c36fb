package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/models"
	"github.com/churnhq/churn/models/modeltest"
)

func newStore(t testing.TB) *modelstore.Store {
	t.Helper()
	m, err := model.LoadFS(models.FS, models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	s, err := modelstore.New([]*model.Model{m}, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRedisBackend is a Redis backend on one server, or on a Redis Cluster when given its nodes.
func newRedisBackend(t testing.TB, addrs ...string) *registry.Redis {
	t.Helper()
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	t.Cleanup(func() { client.Close() })
	b, err := registry.NewRedisBackend(registry.RedisBackendOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// backends runs f against a fresh Disk and a fresh Redis backend: one contract for both.
func backends(t *testing.T, f func(t *testing.T, newBackend func() registry.Backend)) {
	t.Run("disk", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		f(t, func() registry.Backend {
			d, err := registry.OpenDisk(dir)
			if err != nil {
				t.Fatal(err)
			}
			return d
		})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		addr, _, _ := redistest.StartRedis(t)
		f(t, func() registry.Backend { return newRedisBackend(t, addr) })
	})
	t.Run("redis-cluster", func(t *testing.T) {
		t.Parallel()
		addrs := redistest.StartCluster(t, 3)
		f(t, func() registry.Backend { return newRedisBackend(t, addrs...) })
	})
}

func TestBackendContract(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBackend func() registry.Backend) {
		ctx := context.Background()
		b := newBackend()
		if st, err := b.State(ctx); err != nil || st.Active != "" || len(st.History) != 0 {
			t.Fatalf("fresh State = %+v, %v; want empty", st, err)
		}
		rec := registry.Record{Version: "v1", SHA256: "abc", Size: 3, StoredAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Description: "first"}
		if err := b.Put(ctx, rec, []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, rec, []byte("other")); !errors.Is(err, registry.ErrExists) {
			t.Fatalf("second Put = %v, want ErrExists", err)
		}
		// A second backend on the same storage sees the same things.
		b2 := newBackend()
		if got, err := b2.Get(ctx, "v1"); err != nil || string(got) != "one" {
			t.Fatalf("Get = %q, %v; want the first bytes", got, err)
		}
		if _, err := b2.Get(ctx, "nope"); err == nil {
			t.Fatal("Get of an unknown version succeeded")
		}
		recs, err := b2.List(ctx)
		if err != nil || len(recs) != 1 || recs[0] != rec {
			t.Fatalf("List = %+v, %v; want [%+v]", recs, err, rec)
		}
		// Activate sets only a version whose record and bundle are stored.
		if err := b.Activate(ctx, registry.Activation{Version: "v2", At: rec.StoredAt}); !errors.Is(err, registry.ErrNotStored) {
			t.Fatalf("Activate of a version not stored = %v, want ErrNotStored", err)
		}
		if st, err := b2.State(ctx); err != nil || st.Active != "" || len(st.History) != 0 {
			t.Fatalf("State after a refused activation = %+v, %v; want it unchanged", st, err)
		}
		rec2 := rec
		rec2.Version, rec2.Description = "v2", ""
		if err := b.Put(ctx, rec2, []byte("two")); err != nil {
			t.Fatal(err)
		}
		if got, bundle, err := b2.Stat(ctx, "v2"); err != nil || got == nil || *got != rec2 || !bundle {
			t.Fatalf("Stat(v2) = %+v, %v, %v; want its record and bundle", got, bundle, err)
		}
		if got, bundle, err := b2.Stat(ctx, "nope"); err != nil || got != nil || bundle {
			t.Fatalf("Stat(nope) = %+v, %v, %v; want nothing", got, bundle, err)
		}
		for i := range registry.MaxHistory + 3 {
			v := "v1"
			if i%2 == 1 {
				v = "v2"
			}
			if err := b.Activate(ctx, registry.Activation{Version: v, At: rec.StoredAt.Add(time.Duration(i) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := b2.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := registry.MaxHistory + 2 // the last activation, i = MaxHistory+2, is even: v1
		if st.Active != "v1" || len(st.History) != registry.MaxHistory ||
			st.History[0].Version != "v1" || !st.History[0].At.Equal(rec.StoredAt.Add(time.Duration(last)*time.Minute)) || st.History[1].Version != "v2" {
			t.Fatalf("State = active %q, %d entries, first %+v; want v1, %d, newest first", st.Active, len(st.History), st.History[0], registry.MaxHistory)
		}

		// Delete refuses the active version and the rollback target (v2, active before v1).
		if err := b2.Delete(ctx, "v1"); !errors.Is(err, registry.ErrProtected) {
			t.Fatalf("Delete(active) = %v, want ErrProtected", err)
		}
		if err := b2.Delete(ctx, "v2"); !errors.Is(err, registry.ErrProtected) {
			t.Fatalf("Delete(rollback target) = %v, want ErrProtected", err)
		}
		if err := b2.Delete(ctx, "nope"); !errors.Is(err, registry.ErrNotStored) {
			t.Fatalf("Delete(nope) = %v, want ErrNotStored", err)
		}
		rec3 := rec
		rec3.Version = "v3"
		if err := b.Put(ctx, rec3, []byte("three")); err != nil {
			t.Fatal(err)
		}
		if err := b2.Delete(ctx, "v3"); err != nil {
			t.Fatal(err)
		}
		if got, bundle, err := b.Stat(ctx, "v3"); err != nil || got != nil || bundle {
			t.Fatalf("Stat after Delete = %+v, %v, %v; want nothing", got, bundle, err)
		}
		if recs, err := b.List(ctx); err != nil || len(recs) != 2 {
			t.Fatalf("List after Delete = %+v, %v; want v1 and v2", recs, err)
		}

		// Restore leaves a state that has an active version alone.
		lost := registry.State{Active: "v2", History: []registry.Activation{{Version: "v2", At: rec.StoredAt}}}
		if ok, err := b.Restore(ctx, lost); err != nil || ok {
			t.Fatalf("Restore over an active version = %v, %v; want false", ok, err)
		}
	})
}

// The backend lost its state (a Redis that restarted empty): Restore puts back a state whose
// active version is stored, and Put replaces a version of which only the record is left.
func TestBackendRestoreAndPartialVersions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBackend func() registry.Backend) {
		ctx := context.Background()
		b := newBackend()
		at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		st := registry.State{Active: "v2", History: []registry.Activation{{Version: "v2", At: at.Add(time.Minute)}, {Version: "v1", At: at}}}
		if ok, err := b.Restore(ctx, st); ok || !errors.Is(err, registry.ErrNotStored) {
			t.Fatalf("Restore of a state whose active version is not stored = %v, %v; want ErrNotStored", ok, err)
		}
		rec := registry.Record{Version: "v2", SHA256: "abc", Size: 3, StoredAt: at}
		if err := b.Put(ctx, rec, []byte("two")); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Restore(ctx, st); err != nil || !ok {
			t.Fatalf("Restore = %v, %v; want true", ok, err)
		}
		got, err := newBackend().State(ctx)
		if err != nil || got.Active != "v2" || len(got.History) != 2 || got.History[1].Version != "v1" || !got.History[0].At.Equal(st.History[0].At) {
			t.Fatalf("State after Restore = %+v, %v; want %+v", got, err, st)
		}
		// Only the record is left of v3 (its bundle was evicted, or removed by hand).
		rec3 := registry.Record{Version: "v3", SHA256: "old", Size: 3, StoredAt: at}
		if err := b.Put(ctx, rec3, []byte("old")); err != nil {
			t.Fatal(err)
		}
		removeBundle(t, b, "v3")
		if _, bundle, err := b.Stat(ctx, "v3"); err != nil || bundle {
			t.Fatalf("Stat after removing the bundle: bundle %v, %v", bundle, err)
		}
		if _, err := b.Get(ctx, "v3"); !errors.Is(err, registry.ErrNotStored) {
			t.Fatalf("Get of a missing bundle = %v, want ErrNotStored", err)
		}
		if err := b.Activate(ctx, registry.Activation{Version: "v3", At: at}); !errors.Is(err, registry.ErrNotStored) || !strings.Contains(err.Error(), "bundle") {
			t.Fatalf("Activate of a version without its bundle = %v, want ErrNotStored naming the bundle", err)
		}
		rec3.SHA256 = "new"
		if err := b.Put(ctx, rec3, []byte("new")); err != nil {
			t.Fatalf("Put over a partial version = %v, want it replaced", err)
		}
		if got, err := b.Get(ctx, "v3"); err != nil || string(got) != "new" {
			t.Fatalf("Get = %q, %v; want the new bytes", got, err)
		}
		if got, bundle, err := b.Stat(ctx, "v3"); err != nil || got == nil || got.SHA256 != "new" || !bundle {
			t.Fatalf("Stat = %+v, %v, %v; want the new record", got, bundle, err)
		}
	})
}

// removeBundle deletes a version's bundle behind the backend's back, as an eviction or a hand
// would.
func removeBundle(t *testing.T, b registry.Backend, version string) {
	t.Helper()
	switch b := b.(type) {
	case *registry.Disk:
		dir := strings.TrimPrefix(b.Name(), "disk ")
		if err := os.Remove(filepath.Join(dir, "versions", version, "bundle.json")); err != nil {
			t.Fatal(err)
		}
	case *registry.Redis:
		if err := registry.RemoveBundle(context.Background(), b, version); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("removeBundle: unknown backend %T", b)
	}
}

// A crash mid-upload leaves a temporary directory: it is never listed and is removed on open.
func TestDiskIgnoresAndRemovesACrashedUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := registry.OpenDisk(dir); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "versions", ".tmp-123")
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "bundle.json"), []byte(`{"manif`), 0o644); err != nil {
		t.Fatal(err)
	}
	halfState := filepath.Join(dir, ".tmp-state-0123")
	if err := os.WriteFile(halfState, []byte(`{"act`), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := d.List(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("List = %+v, %v; want nothing", recs, err)
	}
	for _, p := range []string{half, halfState} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("the crash's leftover %s is still there: %v", p, err)
		}
	}
	if st, err := d.State(context.Background()); err != nil || st.Active != "" {
		t.Fatalf("State after a crashed activation = %+v, %v; want the previous (empty) state", st, err)
	}
}

func newRegistry(t testing.TB, b registry.Backend, reg prometheus.Registerer) (*registry.Registry, *modelstore.Store) {
	t.Helper()
	store := newStore(t)
	r, err := registry.New(context.Background(), registry.Options{Backend: b, Store: store, Reconcile: time.Hour, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return r, store
}

func TestUploadActivateAndRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, store := newRegistry(t, d, reg)
	initial := store.Active()
	data := modeltest.WithVersion(t, "v2", nil)
	m, err := r.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data, Description: "retrained"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "v2" || m.Origin != model.OriginStore || m.SHA256 != modeltest.SHA256(data) {
		t.Fatalf("uploaded model = %s %s %s", m.Version(), m.Origin, m.SHA256)
	}
	if active := store.Active(); active.Version() == "v2" {
		t.Fatal("an upload activated the version")
	}
	// The same bytes again: the stored version, not an error (a retried upload).
	if again, err := r.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil || again.Version() != "v2" || again.SHA256 != m.SHA256 {
		t.Fatalf("re-upload = %v, %v; want the stored model", again, err)
	}
	if _, err := r.Activate(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if active := store.Active(); active.Version() != "v2" {
		t.Fatalf("active = %s, want v2", active.Version())
	}
	if got := metricstest.Value(t, reg, "churn_model_active_info", map[string]string{"name": "churn-default", "version": "v2"}); got != 1 {
		t.Fatalf("churn_model_active_info{version=v2} = %v, want 1", got)
	}
	if _, err := r.Activate(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Activate(nope) = %v, want ErrNotFound", err)
	}

	// A restart: a new store with only the embedded model, the same directory.
	d2, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, store2 := newRegistry(t, d2, prometheus.NewRegistry())
	if active := store2.Active(); active.Version() != "v2" {
		t.Fatalf("after restart active = %s, want v2", active.Version())
	}
	versions, history := r2.List()
	if len(versions) != 2 || versions[1].Record == nil || versions[1].Record.Description != "retrained" || !versions[1].Active {
		t.Fatalf("List after restart = %+v", versions)
	}
	// The first activation also recorded the version that served before it, for a roll back.
	if len(history) != 2 || history[0].Version != "v2" || history[1].Version != initial.Version() {
		t.Fatalf("history = %+v", history)
	}
}

func TestRefusedUploadsChangeNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := registry.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, store := newRegistry(t, d, reg)
	good := modeltest.WithVersion(t, "v2", nil)
	badChecks := modeltest.WithVersion(t, "v2", modeltest.BreakCheckVector)
	defaultData, _ := models.FS.ReadFile(models.DefaultName)
	sameVersionOtherBytes := append(append([]byte(nil), defaultData...), '\n')

	for _, tc := range []struct {
		name string
		up   registry.Upload
		want error
	}{
		{"wrong sha256", registry.Upload{SHA256: modeltest.SHA256([]byte("x")), Data: good}, registry.ErrChecksum},
		{"truncated", registry.Upload{SHA256: modeltest.SHA256(good[:100]), Data: good[:100]}, bundle.ErrInvalid},
		{"check vectors fail", registry.Upload{SHA256: modeltest.SHA256(badChecks), Data: badChecks}, bundle.ErrInvalid},
		{"not json", registry.Upload{SHA256: modeltest.SHA256([]byte("PK\x03\x04")), Data: []byte("PK\x03\x04")}, bundle.ErrInvalid},
		{"existing version, other bytes", registry.Upload{SHA256: modeltest.SHA256(sameVersionOtherBytes), Data: sameVersionOtherBytes}, registry.ErrExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Upload(ctx, tc.up); !errors.Is(err, tc.want) {
				t.Fatalf("Upload = %v, want %v", err, tc.want)
			}
		})
	}
	if recs, _ := d.List(ctx); len(recs) != 0 {
		t.Fatalf("stored after refusals: %+v", recs)
	}
	if len(store.List()) != 1 {
		t.Fatalf("store holds %d models after refusals, want 1", len(store.List()))
	}
	if got := metricstest.Value(t, reg, "churn_model_uploads_total", map[string]string{"result": "refused"}); got != 5 {
		t.Fatalf("churn_model_uploads_total{result=refused} = %v, want 5", got)
	}
}

// Two replicas share Redis: an upload and an activation on one reach the other through pub/sub,
// well before the (hour-long) reconcile period.
func TestReplicaFollowsActivationThroughRedis(t *testing.T) {
	t.Parallel()
	for _, topology := range []string{"single", "cluster"} {
		t.Run(topology, func(t *testing.T) {
			var addrs []string
			if topology == "cluster" {
				addrs = redistest.StartCluster(t, 3)
			} else {
				addr, _, _ := redistest.StartRedis(t)
				addrs = []string{addr}
			}
			replicaFollows(t, addrs)
		})
	}
}

// replicaFollows: an upload and activation on replica a reach replica b through pub/sub (the
// reconcile interval is an hour), on one Redis server or a Redis Cluster.
func replicaFollows(t *testing.T, addrs []string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := newRegistry(t, newRedisBackend(t, addrs...), prometheus.NewRegistry())
	b, storeB := newRegistry(t, newRedisBackend(t, addrs...), prometheus.NewRegistry())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	// Wait until b has subscribed, so that the test measures pub/sub and not a lucky reconcile.
	// A cluster node counts only its own subscribers: ask every node.
	poll.Until(t, 10*time.Second, func() bool { return subscribers(t, ctx, addrs) == 1 }, "replica b subscribes")
	data := modeltest.WithVersion(t, "v2", nil)
	if _, err := a.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Activate(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, func() bool { return storeB.Active().Version() == "v2" }, "replica b follows the activation")
	if m, ok := storeB.Get("v2"); !ok || m.Origin != model.OriginStore {
		t.Fatalf("b's v2 = %v, loaded %v", m, ok)
	}
	cancel()
	<-done
}

// subscribers counts the subscribers of the registry's channel over the servers at addrs.
func subscribers(t *testing.T, ctx context.Context, addrs []string) int64 {
	t.Helper()
	var n int64
	for _, addr := range addrs {
		probe := redis.NewClient(&redis.Options{Addr: addr})
		counts, err := probe.PubSubNumSub(ctx, "churn:models:events").Result()
		probe.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += counts["churn:models:events"]
	}
	return n
}

// A stored version this replica cannot load (written by a newer replica, or damaged on disk) is
// listed from its record until it is loaded; an activation then refuses it, and it is listed as
// failed with its reason. The other versions serve on.
func TestStoredVersionThatFailsToLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := registry.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(`{"manifest": {"format_version": 99}}`)
	if err := d.Put(ctx, registry.Record{Version: "from-the-future", SHA256: modeltest.SHA256(bad), Size: int64(len(bad))}, bad); err != nil {
		t.Fatal(err)
	}
	r, store := newRegistry(t, d, prometheus.NewRegistry())
	if v, err := r.Get("from-the-future"); err != nil || v.Record == nil || v.Model != nil || v.Err != nil {
		t.Fatalf("Get before any load = %+v, %v; want the stored record, not loaded", v, err)
	}
	if _, err := r.Activate(ctx, "from-the-future"); !errors.Is(err, registry.ErrFailed) {
		t.Fatalf("Activate = %v, want ErrFailed", err)
	}
	v, err := r.Get("from-the-future")
	if err != nil || v.Err == nil || !errors.Is(v.Err, bundle.ErrInvalid) || v.Model != nil {
		t.Fatalf("Get = %+v, %v; want a failed version with its reason", v, err)
	}
	if _, err := r.Activate(ctx, "from-the-future"); !errors.Is(err, registry.ErrFailed) {
		t.Fatalf("second Activate = %v, want ErrFailed", err)
	}
	versions, _ := r.List()
	if len(versions) != 2 || versions[1].Err == nil || versions[0].Model == nil || !versions[0].Active {
		t.Fatalf("List = %+v", versions)
	}
	if active := store.Active(); active.Origin != model.OriginEmbedded {
		t.Fatalf("active = %s (%s), want the embedded model", active.Version(), active.Origin)
	}
}

// An upload whose earlier attempt was stored but whose reply was lost is retried with the same
// bytes: the retry returns the stored version instead of ALREADY_EXISTS.
func TestRetriedUploadAfterALostReply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := registry.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, d, prometheus.NewRegistry())
	data := modeltest.WithVersion(t, "v2", nil)
	// The first attempt reached the store; its reply never came back.
	if err := d.Put(ctx, registry.Record{Version: "v2", SHA256: modeltest.SHA256(data), Size: int64(len(data))}, data); err != nil {
		t.Fatal(err)
	}
	m, err := r.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data})
	if err != nil || m.Version() != "v2" {
		t.Fatalf("retried upload = %v, %v; want the stored version", m, err)
	}
	other := append(append([]byte(nil), data...), ' ')
	d2, err := registry.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := newRegistry(t, d2, prometheus.NewRegistry())
	if err := d2.Put(ctx, registry.Record{Version: "v2", SHA256: modeltest.SHA256(data)}, data); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(other), Data: other}); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("upload of other bytes under a stored version = %v, want ErrExists", err)
	}
}

// A version that must be loaded (the rollback target) whose bundle cannot be read (an evicted
// key) does not stop a replica from following the activation state: the sync names it and
// retries it, the active version loads.
func TestSyncSkipsAnUnreadableVersion(t *testing.T) {
	t.Parallel()
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	a, _ := newRegistry(t, newRedisBackend(t, addr), prometheus.NewRegistry())
	for _, v := range []string{"cand-1", "cand-2"} {
		data := modeltest.WithVersion(t, v, nil)
		if _, err := a.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Activate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	probe := redis.NewClient(&redis.Options{Addr: addr})
	defer probe.Close()
	if n, err := probe.Del(ctx, "churn:models:{models}:bundle:cand-1").Result(); err != nil || n != 1 {
		t.Fatalf("DEL = %d, %v", n, err)
	}
	b, storeB := newRegistry(t, newRedisBackend(t, addr), prometheus.NewRegistry())
	if m := storeB.Active(); m.Version() != "cand-2" {
		t.Fatalf("replica b serves %s, want cand-2 despite the unreadable cand-1", m.Version())
	}
	if err := b.Sync(ctx); err == nil || !strings.Contains(err.Error(), `"cand-1"`) {
		t.Fatalf("Sync = %v, want an error naming cand-1", err)
	}
	if p := b.Replica().Problem; p != "" {
		t.Fatalf("replica b reports %q; it serves the active version", p)
	}
}

// The first activation stores the version that served until then (the embedded default), so a
// build that embeds another default can still roll back to it.
func TestFirstActivationStoresTheEmbeddedDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, store := newRegistry(t, d, prometheus.NewRegistry())
	old := store.Active()
	data := modeltest.WithVersion(t, "v2", nil)
	if _, err := r.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Activate(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	// Another build: its embedded default has another version.
	next, err := model.Load(modeltest.WithVersion(t, "next-default", nil))
	if err != nil {
		t.Fatal(err)
	}
	next.Origin = model.OriginEmbedded
	store2, err := modelstore.New([]*model.Model{next}, "")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := registry.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := registry.New(ctx, registry.Options{Backend: d2, Store: store2, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Activate(ctx, old.Version()); err != nil {
		t.Fatalf("rolling back to the old build's default %s: %v", old.Version(), err)
	}
	if m := store2.Active(); m.Version() != old.Version() || m.Origin != model.OriginStore {
		t.Fatalf("active = %s (%s), want %s from the store", m.Version(), m.Origin, old.Version())
	}
}
