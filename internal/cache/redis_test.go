package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/poll"
)

// newTestRedis makes a Redis cache on addr with its own prefix, so caches share a server. At the
// end of the test it closes the cache and then its client (o.Client too, when given).
func newTestRedis(t testing.TB, addr string, o RedisOptions) *Redis {
	t.Helper()
	if o.Client == nil {
		o.Client = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
	}
	t.Cleanup(func() { _ = o.Client.Close() })
	if o.Prefix == "" {
		o.Prefix = "t" + strings.NewReplacer("/", ":", " ", "_").Replace(t.Name())
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second // the contract runs under -race on a busy machine
	}
	c, err := NewRedis(o)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hookedRedis starts a throwaway redis-server and returns a cache on it (TTL one hour) whose
// client runs hook, and the client.
func hookedRedis(t *testing.T, hook redis.Hook) (*Redis, *redis.Client) {
	t.Helper()
	addr, _, _ := redistest.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	client.AddHook(hook)
	return newTestRedis(t, addr, RedisOptions{Client: client, TTL: time.Hour}), client
}

func TestRedisContract(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	testContract(t, func(t *testing.T, now func() time.Time) scoreCache {
		return newTestRedis(t, addr, RedisOptions{TTL: contractTTL, Now: now})
	})
}

func TestNewRedisOptions(t *testing.T) {
	t.Parallel()
	if _, err := NewRedis(RedisOptions{}); err == nil {
		t.Error("NewRedis without a client: no error")
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	if _, err := NewRedis(RedisOptions{Client: client, Timeout: -time.Second}); err == nil {
		t.Error("NewRedis with a negative timeout: no error")
	}
	c, err := NewRedis(RedisOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != 50*time.Millisecond || c.prefix != "churn" {
		t.Errorf("defaults: timeout %v prefix %q; want 50ms churn", c.timeout, c.prefix)
	}
}

func TestRedisKeyLayout(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	clock := newFakeClock()
	c := newTestRedis(t, addr, RedisOptions{Prefix: "churn", TTL: time.Hour, Now: clock.Now})
	mustPut(t, c, entry("cust-9", 0.91, critical, 910), entry("cust-5", 0.55, medium, 50), entry("cust-1", 0.1, low, 1))
	mustPut(t, c, entry("cust-9", 0.6, high, 600))

	keys, err := c.client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"churn:score:{cust-1}", "churn:score:{cust-5}", "churn:score:{cust-9}",
		"churn:watch:{watch}:HIGH", "churn:watch:{watch}:MEDIUM",
	}
	if diff := cmp.Diff(want, keys, cmpSorted); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	h, err := c.client.HGetAll(ctx, "churn:score:{cust-9}").Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["p"] != "0.6" || h["prev_p"] != "0.91" || h["tier"] != "3" || h["loss"] != "600" ||
		h["at"] != fmt.Sprint(clock.Now().UnixMilli()) || h["resp"] == "" {
		t.Errorf("hash of cust-9 = %v", h)
	}
	if ttl := c.client.PTTL(ctx, "churn:score:{cust-9}").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL of cust-9 = %v, want about 1h", ttl)
	}
	for tier, want := range map[string][]redis.Z{
		"MEDIUM":   {{Score: -600, Member: "cust-9"}, {Score: -50, Member: "cust-5"}},
		"HIGH":     {{Score: -600, Member: "cust-9"}},
		"CRITICAL": nil,
	} {
		got := c.client.ZRangeWithScores(ctx, "churn:watch:{watch}:"+tier, 0, -1).Val()
		if diff := cmp.Diff(want, got, cmpEmpty); diff != "" {
			t.Errorf("watch %s (-want +got):\n%s", tier, diff)
		}
	}
	// Every key has a hash tag: the customer id, or "watch".
	for _, k := range keys {
		open, close := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		if open < 0 || close < open+2 {
			t.Errorf("key %q has no hash tag", k)
		}
	}
}

var (
	cmpSorted = cmp.Transformer("sort", func(s []string) []string {
		out := append([]string(nil), s...)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j] < out[i] {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	})
	cmpEmpty = cmp.Comparer(func(a, b []redis.Z) bool {
		if len(a) == 0 && len(b) == 0 {
			return true
		}
		return cmp.Equal(a, b)
	})
)

// countHook counts the round trips a client makes: one per command or pipeline, leaving out a new
// connection's set-up (HELLO, CLIENT SETINFO), which go-redis also sends through the hooks.
type countHook struct{ n atomic.Int64 }

func isConnSetup(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isConnSetup(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !isConnSetup(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func batch(n int, round int) []*churnv1.ScoreResponse {
	tiers := []churnv1.RiskTier{low, medium, high, critical}
	es := make([]*churnv1.ScoreResponse, n)
	for i := range es {
		es[i] = entry(fmt.Sprintf("cust-%03d", i), float64(i%100)/100+float64(round)/1000, tiers[(i+round)%4], float64(i*10+round))
	}
	return es
}

func TestRedisPutIsOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	hook := &countHook{}
	c, client := hookedRedis(t, hook)
	// Open the connection first: its set-up commands (HELLO, CLIENT SETINFO) go through hooks too.
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hook.n.Store(0)

	// The server does not know the script yet: EVALSHA, NOSCRIPT, then EVAL.
	mustPut(t, c, batch(50, 0)...)
	if got := hook.n.Load(); got != 2 {
		t.Errorf("first Put of 50 on a fresh server: %d round trips, want 2 (NOSCRIPT replay)", got)
	}
	for round := 1; round <= 3; round++ {
		hook.n.Store(0)
		prevs := mustPut(t, c, batch(50, round)...)
		if got := hook.n.Load(); got != 1 {
			t.Errorf("Put of 50, round %d: %d round trips, want 1", round, got)
		}
		for i, p := range prevs {
			if want := batch(50, round-1)[i].GetProbability(); p != want {
				t.Errorf("round %d entry %d previous = %v, want %v", round, i, p, want)
				break
			}
		}
	}
	// After SCRIPT FLUSH the fallback replays with EVAL, and the previous values are still right.
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hook.n.Store(0)
	prevs := mustPut(t, c, batch(50, 9)...)
	if got := hook.n.Load(); got != 2 {
		t.Errorf("Put after SCRIPT FLUSH: %d round trips, want 2", got)
	}
	if want := batch(50, 3)[7].GetProbability(); prevs[7] != want {
		t.Errorf("Put after SCRIPT FLUSH: previous = %v, want %v", prevs[7], want)
	}
}

func TestRedisStaleWatchlistMembersAreDropped(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	c := newTestRedis(t, addr, RedisOptions{TTL: time.Hour})
	var es []*churnv1.ScoreResponse
	for i := range 30 {
		es = append(es, entry(fmt.Sprintf("s%02d", i), 0.9, critical, float64(1000-i)))
	}
	mustPut(t, c, es...)
	// Expire most of them by hand, as the TTL would: the sets keep the members.
	for i := range 30 {
		if i%5 != 0 {
			c.client.Del(ctx, c.scoreKey(fmt.Sprintf("s%02d", i)))
		}
	}
	want := []string{"s00", "s05", "s10", "s15", "s20", "s25"}
	p, _, err := c.ListAtRisk(ctx, medium, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:2], pageIDs(p)); diff != "" {
		t.Errorf("first page (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, listIDs(t, c, medium)); diff != "" {
		t.Errorf("watchlist (-want +got):\n%s", diff)
	}
	for _, tier := range watchTiers {
		if n := c.client.ZCard(ctx, c.watchKey(tier)).Val(); n != 6 {
			t.Errorf("watch %v holds %d members after listing, want 6", tier, n)
		}
	}
}

func TestRedisMetrics(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c := newTestRedis(t, addr, RedisOptions{TTL: time.Hour, Registerer: reg})
	mustPut(t, c, entry("a", 0.5, high, 5))
	_, _, _ = c.Get(ctx, "a")
	_, _, _ = c.Get(ctx, "nobody")
	_, _, _ = c.ListAtRisk(ctx, high, 10, "")
	for _, tc := range []struct {
		op, result string
		want       float64
	}{
		{"put", "ok", 1}, {"put", "error", 0},
		{"get", "ok", 1}, {"get", "miss", 1}, {"get", "error", 0},
		{"list", "ok", 1}, {"list", "error", 0},
	} {
		if got := testutil.ToFloat64(c.metrics.ops.WithLabelValues(tc.op, tc.result)); got != tc.want {
			t.Errorf("churn_cache_operations_total{op=%q,result=%q} = %v, want %v", tc.op, tc.result, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "churn_cache_operation_duration_seconds"); n != 3 {
		t.Errorf("duration series = %d, want 3", n)
	}
}

func TestRedisFailsFastAndRecovers(t *testing.T) {
	addr, stop, restart := redistest.StartRedis(t)
	ctx := context.Background()
	const timeout = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	c := newTestRedis(t, addr, RedisOptions{TTL: time.Hour, Timeout: timeout, Registerer: reg})
	mustPut(t, c, entry("a", 0.5, high, 5))

	stop()
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Put", func() error { _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("a", 0.6, high, 6)}); return err }},
		{"Get", func() error { _, _, err := c.Get(ctx, "a"); return err }},
		{"ListAtRisk", func() error { _, _, err := c.ListAtRisk(ctx, high, 10, ""); return err }},
	} {
		start := time.Now()
		err := op.run()
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with redis down: error = %v, want ErrUnavailable", op.name, err)
		}
		// Bounded by the timeout, with room for a loaded machine: it must not hang.
		if took > timeout+time.Second {
			t.Errorf("%s with redis down took %v, want about %v", op.name, took, timeout)
		}
	}
	if got := testutil.ToFloat64(c.metrics.ops.WithLabelValues("put", "error")); got != 1 {
		t.Errorf("put errors = %v, want 1", got)
	}

	restart() // same port, empty: nothing persisted
	poll.Until(t, 10*time.Second, func() bool {
		_, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("a", 0.7, critical, 7)})
		return err == nil
	}, "Put works again after redis-server restarts")
	resp, _, err := c.Get(ctx, "a")
	if err != nil || resp.GetProbability() != 0.7 {
		t.Errorf("Get after restart = %v, %v; want probability 0.7", resp.GetProbability(), err)
	}
}

func BenchmarkRedisPut(b *testing.B) {
	addr, _, _ := redistest.StartRedis(b)
	ctx := context.Background()
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			c := newTestRedis(b, addr, RedisOptions{TTL: time.Hour, Registerer: prometheus.NewRegistry()})
			es := batch(n, 1)
			if _, err := c.Put(ctx, es); err != nil { // loads the script
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Put(ctx, es); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestRedisDropStaleKeepsRescoredMembers(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	c := newTestRedis(t, addr, RedisOptions{TTL: time.Hour})
	mustPut(t, c, entry("gone", 0.9, critical, 100), entry("back", 0.9, critical, 200))
	// ListAtRisk saw both expired at these scores; "back" was Put again since, with a new loss.
	if err := c.client.ZAdd(ctx, c.watchKey(medium), redis.Z{Score: -250, Member: "back"}).Err(); err != nil {
		t.Fatal(err)
	}
	keys := []string{c.watchKey(medium), c.watchKey(high), c.watchKey(critical)}
	n, err := dropStaleScript.Run(ctx, c.client, keys, "gone", "-100", "back", "-200").Int()
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // gone from 3 sets, back from HIGH and CRITICAL (still at -200 there)
		t.Errorf("removed %d members, want 5", n)
	}
	if got := c.client.ZRange(ctx, c.watchKey(medium), 0, -1).Val(); !cmp.Equal(got, []string{"back"}) {
		t.Errorf("MEDIUM = %v, want [back]", got)
	}
}

func TestRedisWithoutTTLPersists(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	c := newTestRedis(t, addr, RedisOptions{})
	mustPut(t, c, entry("a", 0.5, high, 5))
	if ttl := c.client.PTTL(ctx, c.scoreKey("a")).Val(); ttl != -1 {
		t.Errorf("PTTL without a TTL = %v, want -1 (no expiry)", ttl)
	}
}

// TestRedisClusterContract runs the cache contract against a real three-node Redis Cluster through
// the same redis.UniversalClient churnd builds from several --redis-addr: every key of one
// script or command must hash to one slot (a customer's hash, the watchlist sets), or Redis
// answers CROSSSLOT.
func TestRedisClusterContract(t *testing.T) {
	addrs := redistest.StartCluster(t, 3)
	testContract(t, func(t *testing.T, now func() time.Time) scoreCache {
		client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
		if _, ok := client.(*redis.ClusterClient); !ok {
			t.Fatalf("NewUniversalClient with %d addresses made a %T, want a cluster client", len(addrs), client)
		}
		return newTestRedis(t, addrs[0], RedisOptions{Client: client, TTL: contractTTL, Now: now})
	})
}

// TestRedisSentinelContract runs the cache contract through a Sentinel, with the client churnd
// builds from --redis-addr <sentinel> --redis-master-name: it asks the Sentinel for the master.
func TestRedisSentinelContract(t *testing.T) {
	sentinel := redistest.StartSentinel(t, "churn-master")
	testContract(t, func(t *testing.T, now func() time.Time) scoreCache {
		client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{sentinel}, MasterName: "churn-master"})
		if _, ok := client.(*redis.Client); !ok {
			t.Fatalf("NewUniversalClient with a master name made a %T, want a failover client", client)
		}
		return newTestRedis(t, sentinel, RedisOptions{Client: client, TTL: contractTTL, Now: now})
	})
}

// dropHook runs before, once, just before the first command that runs the watchlist's drop script,
// and afterRead (when set), once, just after the first pipeline that reads customers' tier and loss
// (restoreRescored's).
type dropHook struct {
	once, readOnce sync.Once
	before         func()
	afterRead      func()
}

func (h *dropHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *dropHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); (name == "evalsha" && cmd.Args()[1] == dropStaleScript.Hash()) || (name == "eval" && strings.Contains(fmt.Sprint(cmd.Args()[1]), "ZSCORE")) {
			h.once.Do(h.before)
		}
		return next(ctx, cmd)
	}
}
func (h *dropHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if h.afterRead != nil && len(cmds) > 0 && cmds[0].Name() == "hmget" && fmt.Sprint(cmds[0].Args()[len(cmds[0].Args())-1]) == "loss" {
			h.readOnce.Do(h.afterRead)
		}
		return err
	}
}

// expiredCustomer returns a cache whose client runs a dropHook, and customer x (CRITICAL, loss
// 90), Put and then gone from Redis as if its TTL had run out (a DEL, so that no TTL races a
// test), but still in the watchlist.
func expiredCustomer(t *testing.T) (*Redis, *redis.Client, *dropHook, *churnv1.ScoreResponse) {
	t.Helper()
	hook := &dropHook{}
	c, client := hookedRedis(t, hook)
	x := entry("x", 0.9, critical, 90)
	mustPut(t, c, x)
	if err := client.Del(context.Background(), c.scoreKey("x")).Err(); err != nil {
		t.Fatal(err)
	}
	return c, client, hook, x
}

// TestRedisRescoredDuringDropStaysListed: a customer whose hash expired is scored again, with the
// same expected loss, after ListAtRisk found its hash missing and before ListAtRisk drops it from
// the watchlist. The drop cannot tell the two scores apart; the customer must still be listed, in
// every tier set it belongs to. (Expiry is a DEL of the hash, so that no TTL races the test.)
func TestRedisRescoredDuringDropStaysListed(t *testing.T) {
	ctx := context.Background()
	c, _, hook, x := expiredCustomer(t)
	hook.before = func() {
		if _, err := c.Put(ctx, []*churnv1.ScoreResponse{x}); err != nil {
			t.Errorf("Put during the drop: %v", err)
		}
	}
	if ids := listIDs(t, c, medium); len(ids) != 0 {
		t.Fatalf("first ListAtRisk = %v, want nothing (x's hash was gone when it was read)", ids)
	}
	for _, tier := range []churnv1.RiskTier{medium, high, critical} {
		if ids := listIDs(t, c, tier); !cmp.Equal(ids, []string{"x"}) {
			t.Errorf("ListAtRisk(%v) after x was scored again = %v, want [x]", tier, ids)
		}
	}
}

// TestRedisRestoreKeepsANewerScore: when a customer that ListAtRisk dropped is Put again (with a
// new loss) between restoreRescored's read of its hash and its re-add, the newer score stays.
func TestRedisRestoreKeepsANewerScore(t *testing.T) {
	ctx := context.Background()
	c, client, hook, x := expiredCustomer(t)
	hook.before = func() { mustPut(t, c, x) }                                // same loss: the drop removes x
	hook.afterRead = func() { mustPut(t, c, entry("x", 0.9, critical, 10)) } // newer, after the restore read
	listIDs(t, c, medium)
	for _, tier := range []churnv1.RiskTier{medium, high, critical} {
		if s, err := client.ZScore(ctx, c.watchKey(tier), "x").Result(); err != nil || s != -10 {
			t.Errorf("x's score in %v = %v, %v; want -10 (the newer Put's loss)", tier, s, err)
		}
	}
}

// pipelineLog records the command names of every pipeline a client sends, in order.
type pipelineLog struct {
	mu    sync.Mutex
	pipes [][]string
}

func (h *pipelineLog) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipelineLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipelineLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			if !isConnSetup(c) {
				names = append(names, c.Name())
			}
		}
		if len(names) > 0 {
			h.mu.Lock()
			h.pipes = append(h.pipes, names)
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// kinds says which of the put scripts (evalsha, eval) and watchlist commands (zadd, zrem) a
// pipeline holds: "script", "watch", "script+watch".
func kinds(names []string) string {
	script, watch := false, false
	for _, n := range names {
		switch n {
		case "evalsha", "eval":
			script = true
		case "zadd", "zrem":
			watch = true
		}
	}
	switch {
	case script && watch:
		return "script+watch"
	case script:
		return "script"
	case watch:
		return "watch"
	}
	return "other"
}

// TestRedisWatchlistFollowsHashes pins the order of a Put's round trips. One server: the scripts,
// each writing a customer's hash and watchlist entries in one atomic step, and after a lost script
// the replay. A Cluster (whose client sends every node its share at once, and keeps the sets on
// another node than the hashes): the scripts, then the watchlist in a round trip of its own.
func TestRedisWatchlistFollowsHashes(t *testing.T) {
	ctx := context.Background()
	t.Run("single", func(t *testing.T) {
		log := &pipelineLog{}
		c, client := hookedRedis(t, log)
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		mustPut(t, c, entry("a", 0.9, critical, 9), entry("b", 0.2, low, 1))
		if want := [][]string{{"evalsha", "evalsha"}, {"eval", "eval"}}; !cmp.Equal(log.pipes, want) {
			t.Errorf("pipelines after SCRIPT FLUSH = %v, want %v: the scripts, then their replay", log.pipes, want)
		}
		if got := listIDs(t, c, medium); !cmp.Equal(got, []string{"a"}) {
			t.Errorf("watchlist = %v, want [a]", got)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		addrs := redistest.StartCluster(t, 3)
		client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
		log := &pipelineLog{}
		client.AddHook(log)
		c := newTestRedis(t, addrs[0], RedisOptions{Client: client, TTL: time.Hour})
		es := make([]*churnv1.ScoreResponse, 20)
		for i := range es {
			es[i] = entry(fmt.Sprintf("c%d", i), 0.9, critical, float64(i))
		}
		mustPut(t, c, es...)
		var got []string
		for _, p := range log.pipes {
			if k := kinds(p); k != "other" {
				got = append(got, k)
			}
		}
		// A fresh cluster may not know the script yet: then a replay round trip comes between.
		if len(got) < 2 || got[len(got)-1] != "watch" || slices.Contains(got, "script+watch") || slices.Contains(got[:len(got)-1], "watch") {
			t.Errorf("pipelines = %v, want scripts (and a replay) first, then the watchlist alone", got)
		}
	})
}

// TestRedisWatchlistOnlyForWrittenHashes: on one server, a customer whose script fails (its key
// holds a string, so HGET answers WRONGTYPE) gets no watchlist entry, and the others do: the hash
// and the watchlist are written in one atomic step or not at all.
func TestRedisWatchlistOnlyForWrittenHashes(t *testing.T) {
	ctx := context.Background()
	addr, _, _ := redistest.StartRedis(t)
	c := newTestRedis(t, addr, RedisOptions{TTL: time.Hour})
	if err := c.client.Set(ctx, c.scoreKey("bad"), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("good1", 0.9, critical, 9), entry("bad", 0.9, critical, 8), entry("good2", 0.9, critical, 7)}); err == nil {
		t.Fatal("Put with a customer whose key is not a hash succeeded")
	}
	for _, tier := range []churnv1.RiskTier{medium, high, critical} {
		if got := c.client.ZRange(ctx, c.watchKey(tier), 0, -1).Val(); !cmp.Equal(got, []string{"good1", "good2"}) {
			t.Errorf("watchlist %v = %v, want good1 and good2 only", tier, got)
		}
	}
}

// TestRedisClusterWatchlistOnlyForWrittenHashes: on a Cluster, a customer whose script fails (here
// its key holds a string, so HGET answers WRONGTYPE) gets no watchlist entry, and the others do.
func TestRedisClusterWatchlistOnlyForWrittenHashes(t *testing.T) {
	ctx := context.Background()
	addrs := redistest.StartCluster(t, 3)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	c := newTestRedis(t, addrs[0], RedisOptions{Client: client, TTL: time.Hour})
	if err := client.Set(ctx, c.scoreKey("bad"), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("good1", 0.9, critical, 9), entry("bad", 0.9, critical, 8), entry("good2", 0.9, critical, 7)}); err == nil {
		t.Fatal("Put with a customer whose key is not a hash succeeded")
	}
	for _, tier := range []churnv1.RiskTier{medium, high, critical} {
		if got := client.ZRange(ctx, c.watchKey(tier), 0, -1).Val(); !cmp.Equal(got, []string{"good2", "good1"}) && !cmp.Equal(got, []string{"good1", "good2"}) {
			t.Errorf("watchlist %v = %v, want good1 and good2 only", tier, got)
		}
	}
}

// chunkHook counts the pipelines that carry put scripts and records the deadline of each one's
// context.
type chunkHook struct {
	mu        sync.Mutex
	deadlines []time.Time
}

func (h *chunkHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *chunkHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *chunkHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && (cmds[0].Name() == "evalsha" || cmds[0].Name() == "eval") {
			d, _ := ctx.Deadline()
			h.mu.Lock()
			h.deadlines = append(h.deadlines, d)
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// TestRedisPutOfAThousand: a full ScoreBatch (--max-batch 1000) in one Put is four pipelines of at
// most 256 customers, each under a deadline of its own, and afterwards every customer's hash and
// watchlist entries are there.
func TestRedisPutOfAThousand(t *testing.T) {
	ctx := context.Background()
	hook := &chunkHook{}
	c, client := hookedRedis(t, hook)
	mustPut(t, c, entry("warm-up", 0.1, low, 1)) // loads the script
	hook.deadlines = nil

	resps := batch(1000, 1)
	prevs := mustPut(t, c, resps...)
	if len(hook.deadlines) != 4 {
		t.Fatalf("Put of 1000: %d pipelines of scripts, want 4 (chunks of %d)", len(hook.deadlines), maxPutChunk)
	}
	for i := 1; i < len(hook.deadlines); i++ {
		if !hook.deadlines[i].After(hook.deadlines[i-1]) {
			t.Errorf("chunk %d's deadline %v is not after chunk %d's %v: the chunks share one deadline",
				i, hook.deadlines[i], i-1, hook.deadlines[i-1])
		}
	}
	for i, p := range prevs {
		if !math.IsNaN(p) {
			t.Errorf("previous of %s = %v, want none", resps[i].GetCustomerId(), p)
		}
	}
	want := map[churnv1.RiskTier]map[string]float64{medium: {}, high: {}, critical: {}}
	for _, r := range resps {
		h, err := client.HGetAll(ctx, c.scoreKey(r.GetCustomerId())).Result()
		if err != nil {
			t.Fatal(err)
		}
		if h["p"] != formatFloat(r.GetProbability()) || h["tier"] != fmt.Sprint(int(r.GetTier())) || h["loss"] != formatFloat(r.GetExpectedLoss()) || h["resp"] == "" {
			t.Errorf("hash of %s = p %q tier %q loss %q, resp %d bytes; want %v %d %v and the response",
				r.GetCustomerId(), h["p"], h["tier"], h["loss"], len(h["resp"]), r.GetProbability(), r.GetTier(), r.GetExpectedLoss())
		}
		for tier, members := range want {
			if r.GetTier() >= tier {
				members[r.GetCustomerId()] = -r.GetExpectedLoss()
			}
		}
	}
	for tier, members := range want {
		zs, err := client.ZRangeWithScores(ctx, c.watchKey(tier), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]float64, len(zs))
		for _, z := range zs {
			got[z.Member.(string)] = z.Score
		}
		if diff := cmp.Diff(members, got); diff != "" {
			t.Errorf("watchlist %v (-want +got):\n%s", tier, diff)
		}
	}
}

// TestRedisClose: after Close every operation fails with ErrUnavailable without reaching Redis, and
// the client, which is the caller's, still works.
func TestRedisClose(t *testing.T) {
	addr, _, _ := redistest.StartRedis(t)
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: addr})
	c := newTestRedis(t, addr, RedisOptions{Client: client, TTL: time.Hour})
	mustPut(t, c, entry("a", 0.5, high, 5))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Put", func() error { _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("a", 0.9, critical, 9)}); return err }},
		{"Get", func() error { _, _, err := c.Get(ctx, "a"); return err }},
		{"ListAtRisk", func() error { _, _, err := c.ListAtRisk(ctx, high, 10, ""); return err }},
	} {
		if err := op.run(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s after Close: error = %v, want ErrUnavailable", op.name, err)
		}
	}
	if p, err := client.HGet(ctx, c.scoreKey("a"), "p").Result(); err != nil || p != "0.5" {
		t.Errorf("a's p after a Put past Close = %q, %v; want 0.5 (nothing written)", p, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRedisErrorsSayWhetherTimeRanOut: every error wraps ErrUnavailable; one of an operation that
// ran out of time (Redis paused by CLIENT PAUSE: the client's socket timeout, or the operation's
// own deadline) wraps context.DeadlineExceeded too, one of a Redis that is down does not.
func TestRedisErrorsSayWhetherTimeRanOut(t *testing.T) {
	ctx := context.Background()
	const timeout = 100 * time.Millisecond
	ops := func(c *Redis) map[string]func() error {
		return map[string]func() error{
			"Put":        func() error { _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry("a", 0.9, critical, 9)}); return err },
			"Get":        func() error { _, _, err := c.Get(ctx, "a"); return err },
			"ListAtRisk": func() error { _, _, err := c.ListAtRisk(ctx, high, 10, ""); return err },
		}
	}
	for _, tc := range []struct {
		name string
		// socket is the client's socket timeout: as churnd sets it (--cache-timeout) or far
		// longer, so that the operation's own deadline ends it.
		socket  time.Duration
		down    bool
		timeout bool
	}{
		{name: "paused, socket timeout", socket: timeout, timeout: true},
		{name: "paused, deadline", socket: time.Minute, timeout: true},
		{name: "down", socket: timeout, down: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop, _ := redistest.StartRedis(t)
			// One dial attempt, as churnd makes: with go-redis's default of five, 100ms apart, an
			// operation waits for the dials to a server that is down until its deadline.
			client := redis.NewClient(&redis.Options{
				Addr: addr, DialTimeout: timeout, DialerRetries: 1, ReadTimeout: tc.socket, WriteTimeout: tc.socket,
				ContextTimeoutEnabled: tc.socket > timeout, MaxRetries: -1,
			})
			c := newTestRedis(t, addr, RedisOptions{Client: client, TTL: time.Hour, Timeout: timeout})
			if tc.down {
				stop()
			} else {
				admin := redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { admin.Close() })
				// For longer than the test: CLIENT UNPAUSE would wait for the pause too, and the
				// server is killed at the end of the test.
				if err := admin.Do(ctx, "CLIENT", "PAUSE", 60_000, "ALL").Err(); err != nil {
					t.Fatal(err)
				}
			}
			for name, run := range ops(c) {
				err := run()
				if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) != tc.timeout {
					t.Errorf("%s: error = %v; want ErrUnavailable, and context.DeadlineExceeded: %v", name, err, tc.timeout)
				}
			}
		})
	}
}

// BenchmarkRedisPutConcurrent is Put of one customer from many goroutines, as concurrent Score
// calls make them: each Put is its own round trip, on its own connection.
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
			if _, err := c.Put(ctx, []*churnv1.ScoreResponse{entry(fmt.Sprintf("c%d", i%1000), 0.5, high, float64(i))}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
