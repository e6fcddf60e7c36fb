package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/poll"
)

// gateHook holds the first pipeline that runs after arm until open (or its context ends), so a
// test can queue Puts behind a round trip in flight; it also counts pipelines.
type gateHook struct {
	countHook
	mu               sync.Mutex
	armed, released  bool
	entered, release chan struct{}
}

func (h *gateHook) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.released = true, false
	h.entered, h.release = make(chan struct{}), make(chan struct{})
}

func (h *gateHook) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.released {
		close(h.release)
		h.released = true
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	counted := h.countHook.ProcessPipelineHook(next)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		hold := h.armed && len(cmds) > 0 && !isConnSetup(cmds[0])
		entered, release := h.entered, h.release
		if hold {
			h.armed = false
		}
		h.mu.Unlock()
		if hold {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return counted(ctx, cmds)
	}
}

// newGatedRedis is a Redis cache whose client has a gateHook; the script is loaded and the
// connection open, and the counts are zero.
func newGatedRedis(t *testing.T, reg prometheus.Registerer) (*Redis, *gateHook) {
	t.Helper()
	addr, _, _ := redistest.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	hook := &gateHook{}
	client.AddHook(hook)
	c := newTestRedis(t, addr, RedisOptions{Client: client, TTL: time.Hour, Timeout: 10 * time.Second, Registerer: reg})
	mustPut(t, c, entry("warm-up", 0.1, low, 1)) // loads the script
	hook.n.Store(0)
	return c, hook
}

// waitQueued waits until n Puts wait for the writer.
func waitQueued(t *testing.T, c *Redis, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, func() bool { return len(c.group) == n }, "%d Puts queued", n)
}

type putOutcome struct {
	prevs []float64
	err   error
}

// goPut runs Put in a goroutine and returns where its outcome arrives.
func goPut(ctx context.Context, c *Redis, rs ...*churnv1.ScoreResponse) <-chan putOutcome {
	out := make(chan putOutcome, 1)
	go func() {
		prevs, err := c.Put(ctx, rs)
		out <- putOutcome{prevs, err}
	}()
	return out
}

// TestRedisGroupCommit: Puts queued while a round trip is in flight share the next one, in queue
// order: a customer written twice in it gets its first write as the second's previous, and its
// last write decides its hash and watchlist sets.
func TestRedisGroupCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, hook := newGatedRedis(t, reg)
	ctx := context.Background()

	hook.arm()
	inFlight := goPut(ctx, c, entry("a", 0.1, high, 10))
	<-hook.entered
	queued := []*churnv1.ScoreResponse{
		entry("b", 0.2, critical, 20),
		entry("a", 0.3, medium, 30),
		entry("b", 0.4, low, 40),
		entry("c", 0.5, high, 50),
	}
	outs := make([]<-chan putOutcome, len(queued))
	for i, e := range queued {
		outs[i] = goPut(ctx, c, e)
		waitQueued(t, c, i+1)
	}
	hook.open()

	if o := <-inFlight; o.err != nil || !math.IsNaN(o.prevs[0]) {
		t.Fatalf("Put in flight = %v, %v; want no previous", o.prevs, o.err)
	}
	want := []float64{math.NaN(), 0.1, 0.2, math.NaN()}
	for i, out := range outs {
		o := <-out
		if o.err != nil {
			t.Fatalf("queued Put %d: %v", i, o.err)
		}
		if got := o.prevs[0]; got != want[i] && !(math.IsNaN(got) && math.IsNaN(want[i])) {
			t.Errorf("queued Put %d (%s) previous = %v, want %v", i, queued[i].GetCustomerId(), got, want[i])
		}
	}
	if got := hook.n.Load(); got != 2 {
		t.Errorf("round trips = %d, want 2 (the one in flight, then the four queued together)", got)
	}
	if resp, prev, err := c.Get(ctx, "b"); err != nil || resp.GetProbability() != 0.4 || prev != 0.2 {
		t.Errorf("Get b = %v, %v, %v; want 0.4 with previous 0.2", resp.GetProbability(), prev, err)
	}
	if got := listIDs(t, c, medium); fmt.Sprint(got) != "[c a]" {
		t.Errorf("watchlist = %v, want [c a]", got)
	}
	if got := testutil.ToFloat64(c.metrics.ops.WithLabelValues("put", "ok")); got != 6 {
		t.Errorf("put ok = %v, want 6 (warm-up, in flight, four queued)", got)
	}
	if n := testutil.CollectAndCount(reg, "churn_cache_put_batch_calls"); n != 1 {
		t.Errorf("batch histogram series = %d, want 1", n)
	}
}

// TestRedisGroupCommitBoundsAChunk: queued Puts of more than maxPutChunk customers in all are
// written in two round trips, in order.
func TestRedisGroupCommitBoundsAChunk(t *testing.T) {
	c, hook := newGatedRedis(t, nil)
	ctx := context.Background()
	hook.arm()
	inFlight := goPut(ctx, c, entry("x", 0.1, high, 10))
	<-hook.entered
	first := goPut(ctx, c, batch(200, 1)...)
	waitQueued(t, c, 1)
	second := goPut(ctx, c, batch(100, 2)...)
	waitQueued(t, c, 2)
	hook.open()
	for _, out := range []<-chan putOutcome{inFlight, first} {
		if o := <-out; o.err != nil {
			t.Fatal(o.err)
		}
	}
	o := <-second
	if o.err != nil {
		t.Fatal(o.err)
	}
	if want := batch(200, 1)[7].GetProbability(); o.prevs[7] != want {
		t.Errorf("second Put's previous = %v, want %v from the first", o.prevs[7], want)
	}
	if got := hook.n.Load(); got != 3 {
		t.Errorf("round trips = %d, want 3", got)
	}
}

// TestRedisCloseStopsTheWriter: Close ends the round trip in flight and fails the queued Puts, the
// writer goroutine ends, and later Puts fail.
func TestRedisCloseStopsTheWriter(t *testing.T) {
	c, hook := newGatedRedis(t, nil)
	ctx := context.Background()
	hook.arm()
	inFlight := goPut(ctx, c, entry("a", 0.1, high, 10))
	<-hook.entered
	queued := goPut(ctx, c, entry("b", 0.2, high, 20))
	waitQueued(t, c, 1)

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]<-chan putOutcome{"in flight": inFlight, "queued": queued} {
		if o := <-out; !errors.Is(o.err, ErrUnavailable) {
			t.Errorf("%s Put at Close: error = %v, want ErrUnavailable", name, o.err)
		}
	}
	select {
	case <-c.groupDone:
	default:
		t.Error("writer goroutine still running after Close")
	}
	if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("c", 0.3, high, 30)}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put after Close: error = %v, want ErrUnavailable", err)
	}
	if err := c.Close(); err != nil { // a second Close does not block or fail
		t.Error(err)
	}
}
