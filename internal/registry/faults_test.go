package registry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/models/modeltest"
)

// uploadVersion uploads the default model under version through r.
func uploadVersion(t *testing.T, r *registry.Registry, version string) []byte {
	t.Helper()
	data := modeltest.WithVersion(t, version, nil)
	if _, err := r.Upload(context.Background(), registry.Upload{SHA256: modeltest.SHA256(data), Data: data}); err != nil {
		t.Fatalf("upload %s: %v", version, err)
	}
	return data
}

// stored says whether the backend holds both the record and the bundle of version.
func stored(t *testing.T, b registry.Backend, version string) bool {
	t.Helper()
	rec, bundle, err := b.Stat(context.Background(), version)
	if err != nil {
		t.Fatal(err)
	}
	return rec != nil && bundle
}

// Redis, the model store the replicas share, restarts empty (no persistence, a flush, a
// failover to an empty replica) between the steps of an operator. Before the fix, an activation
// of a version loaded on replica a returned OK and named it active in a store that held no
// bundle, so that a replica starting then served another model; and uploading the same bytes
// again returned OK and stored nothing.
func TestRedisRestartsEmptyBetweenSteps(t *testing.T) {
	t.Parallel()
	addr, _, restart := redistest.StartRedis(t)
	ctx := context.Background()
	backend := newRedisBackend(t, addr)
	a, storeA := newRegistry(t, backend, prometheus.NewRegistry())
	good3 := uploadVersion(t, a, "good-3")
	if _, err := a.Activate(ctx, "good-3"); err != nil {
		t.Fatal(err)
	}

	// Step 1: Redis restarts empty; the operator activates good-3 again (say, on a runbook's
	// advice). The activation writes good-3 back, so that a replica starting now serves it.
	restart()
	if _, err := a.Activate(ctx, "good-3"); err != nil {
		t.Fatalf("Activate after Redis restarted empty: %v", err)
	}
	if !stored(t, backend, "good-3") {
		t.Fatal("the activation succeeded but good-3's record and bundle are not in the store")
	}
	_, storeC := newRegistry(t, newRedisBackend(t, addr), prometheus.NewRegistry())
	if v := storeC.Active().Version(); v != "good-3" {
		t.Fatalf("a replica started after the activation serves %s, replica a serves %s", v, storeA.Active().Version())
	}
	if got, err := backend.Get(ctx, "good-3"); err != nil || !strings.Contains(string(got), `"good-3"`) {
		t.Fatalf("stored bundle = %.40q..., %v", got, err)
	}

	// Step 2: Redis restarts empty again; the operator uploads the same bytes again. The upload
	// stores them (the exact bytes), instead of answering from replica a's memory.
	restart()
	m, err := a.Upload(ctx, registry.Upload{SHA256: modeltest.SHA256(good3), Data: good3})
	if err != nil || m.Version() != "good-3" {
		t.Fatalf("re-upload = %v, %v", m, err)
	}
	rec, bundle, err := backend.Stat(ctx, "good-3")
	if err != nil || rec == nil || !bundle || rec.SHA256 != modeltest.SHA256(good3) {
		t.Fatalf("after the re-upload the store holds %+v (bundle %v, %v); want good-3 as uploaded", rec, bundle, err)
	}
}

// The store's active version lost its record and bundle (evicted, or a failover that kept only
// part of the keys): a replica that starts then cannot serve it, says so (Replica, the
// churn_model_active_mismatch gauge), and converges by itself once a replica that has it loaded
// writes it back at its reconcile.
func TestReplicaThatCannotServeTheActiveVersionSaysSoAndConverges(t *testing.T) {
	t.Parallel()
	addr, _, _ := redistest.StartRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := newRegistry(t, newRedisBackend(t, addr), prometheus.NewRegistry())
	uploadVersion(t, a, "good-5")
	if _, err := a.Activate(ctx, "good-5"); err != nil {
		t.Fatal(err)
	}
	probe := redis.NewClient(&redis.Options{Addr: addr})
	defer probe.Close()
	if err := probe.Del(ctx, "churn:models:{models}:bundle:good-5").Err(); err != nil {
		t.Fatal(err)
	}
	if err := probe.HDel(ctx, "churn:models:{models}:records", "good-5").Err(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	d, storeD := newRegistry(t, newRedisBackend(t, addr), reg)
	rs := d.Replica()
	if storeD.Active().Version() == "good-5" || rs.StoreActive != "good-5" || !strings.Contains(rs.Problem, `"good-5"`) || !strings.Contains(rs.Problem, "upload it again") {
		t.Fatalf("replica d serves %s and reports %+v; want it to say it cannot serve good-5", storeD.Active().Version(), rs)
	}
	if got := metricstest.Value(t, reg, "churn_model_active_mismatch", nil); got != 1 {
		t.Fatalf("churn_model_active_mismatch = %v, want 1", got)
	}
	if _, err := d.Activate(ctx, "good-5"); !errors.Is(err, registry.ErrNotStored) {
		t.Fatalf("Activate of good-5 on replica d = %v, want ErrNotStored", err)
	}

	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	poll.Until(t, 10*time.Second, func() bool { return subscribers(t, ctx, []string{addr}) == 1 }, "replica d subscribes")
	// Replica a's reconcile writes good-5 back and tells the others.
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, func() bool { return storeD.Active().Version() == "good-5" }, "replica d serves good-5 once it is back")
	if p := d.Replica().Problem; p != "" {
		t.Fatalf("replica d still reports %q", p)
	}
	if got := metricstest.Value(t, reg, "churn_model_active_mismatch", nil); got != 0 {
		t.Fatalf("churn_model_active_mismatch = %v after converging, want 0", got)
	}
	cancel()
	<-done
}

// Redis restarts empty while every replica serves good-7: the replicas that remember the
// activation state put it back, so that a replica starting afterwards serves good-7 too instead
// of its embedded default.
func TestLostActivationStateIsRestored(t *testing.T) {
	t.Parallel()
	addr, _, restart := redistest.StartRedis(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	a, _ := newRegistry(t, newRedisBackend(t, addr), reg)
	uploadVersion(t, a, "good-6")
	uploadVersion(t, a, "good-7")
	for _, v := range []string{"good-6", "good-7"} {
		if _, err := a.Activate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e, storeE := newRegistry(t, newRedisBackend(t, addr), prometheus.NewRegistry())
	if v := storeE.Active().Version(); v != "good-7" {
		t.Fatalf("a replica started after the restart serves %s, want good-7", v)
	}
	// The rollback target came back too: rolling back works.
	if _, err := e.Activate(ctx, "good-6"); err != nil {
		t.Fatalf("roll back to good-6 after the restore: %v", err)
	}
	if got := metricstest.Value(t, reg, "churn_model_store_repairs_total", map[string]string{"kind": "state"}); got != 1 {
		t.Fatalf("churn_model_store_repairs_total{kind=state} = %v, want 1", got)
	}
}

// hangProxy forwards TCP to a Redis server until hang is called; from then on it holds what
// clients send, reporting on held when the first bytes arrive, until release.
type hangProxy struct {
	addr string

	mu      sync.Mutex
	hung    bool
	held    chan struct{}
	once    sync.Once
	release chan struct{}
	conns   []net.Conn
}

func startHangProxy(t *testing.T, target string) *hangProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hangProxy{addr: ln.Addr().String(), held: make(chan struct{}), release: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.unhang()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *hangProxy) serve(c net.Conn, target string) {
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(c, s); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hung, release := p.hung, p.release
			p.mu.Unlock()
			if hung {
				p.once.Do(func() { close(p.held) })
				<-release
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			s.Close()
			return
		}
	}
}

func (p *hangProxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
}

func (p *hangProxy) unhang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung {
		p.hung = false
		close(p.release)
	}
}

// An upload stuck on a hung Redis model store: ListModels' reads (List, Get, Replica) answer
// from memory meanwhile instead of waiting behind it, another write waits only as long as its
// caller allows, and the upload itself ends at its deadline with ErrUnavailable.
func TestReadsDoNotWaitBehindAWriteOnAHungStore(t *testing.T) {
	t.Parallel()
	addr, _, _ := redistest.StartRedis(t)
	proxy := startHangProxy(t, addr)
	client := redis.NewClient(&redis.Options{Addr: proxy.addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	backend, err := registry.NewRedisBackend(registry.RedisBackendOptions{Client: client, BundleTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newRegistry(t, backend, prometheus.NewRegistry())
	data := modeltest.WithVersion(t, "stuck-1", nil)

	proxy.hang()
	uploaded := make(chan error, 1)
	go func() {
		_, err := r.Upload(context.Background(), registry.Upload{SHA256: modeltest.SHA256(data), Data: data})
		uploaded <- err
	}()
	select {
	case <-proxy.held: // the upload is inside the store call, holding the write lock
	case err := <-uploaded:
		t.Fatalf("the upload ended (%v) before reaching the hung store", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the upload never reached the store")
	}
	read := make(chan struct{})
	go func() {
		r.List()
		_, _ = r.Get("nope")
		r.Replica()
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("List waited behind the upload stuck on the hung store")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Activate(ctx, "stuck-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Activate behind the stuck upload = %v, want its own deadline exceeded", err)
	}
	select {
	case err := <-uploaded:
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("upload on a hung store = %v, want ErrUnavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upload on a hung store never ended: the store call has no deadline")
	}
}
