package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/churnhq/churn/internal/cache/redistest"
)

// gateHook holds the first pipeline that runs after arm until release is closed (or its context
// ends), so a test can queue Puts behind a round trip in flight; it also counts pipelines.
type gateHook struct {
	countHook
	mu       sync.Mutex
	armed    bool
	entered  chan struct{} // closed when the held pipeline reaches the hook
	release  chan struct{}
	released bool
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
		var entered, release chan struct{}
		if hold {
			h.armed = false
			entered, release = h.entered, h.release
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
func newGatedRedis(t *testing.T, timeout time.Duration, reg prometheus.Registerer) (*Redis, *gateHook) {
	t.Helper()
	addr, _, _ := redistest.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	hook := &gateHook{}
	client.AddHook(hook)
	c := newTestRedis(t, addr, RedisOptions{Client: client, TTL: time.Hour, Timeout: timeout, Registerer: reg})
	mustPut(t, c, entry("warm-up", 0.1, low, 1)) // loads the script
	hook.n.Store(0)
	return c, hook
}

// waitQueued waits until n Puts wait in the writer's queue.
func waitQueued(t *testing.T, c *Redis, n int) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return len(c.writer.queue) == n }, fmt.Sprintf("%d Puts queued", n))
}

type putOutcome struct {
	prevs []Previous
	err   error
}

// goPut runs Put in a goroutine and returns where its outcome arrives.
func goPut(ctx context.Context, c *Redis, es ...Entry) <-chan putOutcome {
	out := make(chan putOutcome, 1)
	go func() {
		prevs, err := c.Put(ctx, es)
		out <- putOutcome{prevs, err}
	}()
	return out
}

func TestRedisGroupCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, hook := newGatedRedis(t, 10*time.Second, reg)
	ctx := context.Background()

	hook.arm()
	inFlight := goPut(ctx, c, entry("a", 0.1, high, 10))
	<-hook.entered
	// Queued in this order while "a" is in flight: "b" twice, and "a" again, within one batch.
	queued := []Entry{
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

	if o := <-inFlight; o.err != nil || o.prevs[0] != (Previous{}) {
		t.Fatalf("Put in flight = %+v, %v; want no previous", o.prevs, o.err)
	}
	want := []Previous{{}, {Found: true, Probability: 0.1}, {Found: true, Probability: 0.2}, {}}
	for i, out := range outs {
		o := <-out
		if o.err != nil {
			t.Fatalf("queued Put %d: %v", i, o.err)
		}
		if o.prevs[0] != want[i] {
			t.Errorf("queued Put %d (%s) previous = %+v, want %+v", i, queued[i].CustomerID, o.prevs[0], want[i])
		}
	}
	if got := hook.n.Load(); got != 2 {
		t.Errorf("round trips = %d, want 2 (the one in flight, then the four queued together)", got)
	}
	// The last write of each customer wins, in the hash and the watchlist.
	if resp, prev, err := c.Get(ctx, "b"); err != nil || resp.GetProbability() != 0.4 || prev.Probability != 0.2 {
		t.Errorf("Get b = %v, %+v, %v; want 0.4 with previous 0.2", resp.GetProbability(), prev, err)
	}
	if got := listIDs(t, c, medium); fmt.Sprint(got) != "[c a]" {
		t.Errorf("watchlist = %v, want [c a]", got)
	}
	if n := testutil.CollectAndCount(reg, "churn_cache_put_batch_calls"); n != 1 {
		t.Errorf("batch histogram series = %d, want 1", n)
	}
	if got := testutil.ToFloat64(c.metrics.ops.WithLabelValues("put", "ok")); got != 6 {
		t.Errorf("put ok = %v, want 6 (warm-up, in flight, four queued)", got)
	}
}

func TestRedisGroupCommitBoundsBatch(t *testing.T) {
	c, hook := newGatedRedis(t, 10*time.Second, nil)
	ctx := context.Background()
	hook.arm()
	inFlight := goPut(ctx, c, entry("x", 0.1, high, 10))
	<-hook.entered
	// 200 + 100 customers exceed maxBatchCustomers: two more round trips, in order.
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
	if want := batch(200, 1)[7].Probability; o.prevs[7] != (Previous{Found: true, Probability: want}) {
		t.Errorf("second batch previous = %+v, want %v from the first", o.prevs[7], want)
	}
	if got := hook.n.Load(); got != 3 {
		t.Errorf("round trips = %d, want 3", got)
	}
}

func TestRedisQueuedPutTimesOutAndIsNotWritten(t *testing.T) {
	c, hook := newGatedRedis(t, 10*time.Second, nil)
	ctx := context.Background()
	mustPut(t, c, entry("q", 0.1, high, 10))

	hook.arm()
	inFlight := goPut(ctx, c, entry("p", 0.2, high, 20))
	<-hook.entered
	// Queued behind the held round trip, with a deadline that ends first.
	const wait = 100 * time.Millisecond
	short, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	_, err := c.Put(short, []Entry{entry("q", 0.9, critical, 90)})
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued Put past its deadline: error = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if took > wait+time.Second {
		t.Errorf("queued Put took %v, want about %v", took, wait)
	}
	hook.open()
	if o := <-inFlight; o.err != nil {
		t.Fatalf("Put in flight: %v", o.err)
	}
	// The abandoned Put was never sent: "q" keeps its old score, and the next Put sees it.
	prevs := mustPut(t, c, entry("q", 0.5, high, 50))
	if prevs[0] != (Previous{Found: true, Probability: 0.1}) {
		t.Errorf("previous after an abandoned Put = %+v, want 0.1", prevs[0])
	}
	if got := hook.n.Load(); got != 3 {
		t.Errorf("round trips = %d, want 3 (the first and last Put of q, the one in flight; the abandoned Put is not sent)", got)
	}
}

func TestRedisCloseStopsWriter(t *testing.T) {
	c, hook := newGatedRedis(t, 10*time.Second, nil)
	ctx := context.Background()
	hook.arm()
	inFlight := goPut(ctx, c, entry("a", 0.1, high, 10))
	<-hook.entered
	queued := goPut(ctx, c, entry("b", 0.2, high, 20))
	waitQueued(t, c, 1)

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	for name, out := range map[string]<-chan putOutcome{"in flight": inFlight, "queued": queued} {
		select {
		case o := <-out:
			if !errors.Is(o.err, ErrUnavailable) {
				t.Errorf("%s Put at Close: error = %v, want ErrUnavailable", name, o.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s Put still waiting after Close", name)
		}
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-c.writer.exited:
	default:
		t.Error("writer goroutine still running after Close")
	}
	if _, err := c.Put(ctx, []Entry{entry("c", 0.3, high, 30)}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put after Close: error = %v, want ErrUnavailable", err)
	}
	c.writer.stop() // a second stop (t.Cleanup's Close) does not block or panic
}

// BenchmarkRedisPutConcurrent is Put of one customer from many goroutines: what group commit is for.
func BenchmarkRedisPutConcurrent(b *testing.B) {
	addr, _, _ := redistest.StartRedis(b)
	c := newTestRedis(b, addr, RedisOptions{TTL: time.Hour, Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	if _, err := c.Put(ctx, batch(1, 0)); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := c.Put(ctx, []Entry{entry(fmt.Sprintf("c%d", i%1000), 0.5, high, float64(i))}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
