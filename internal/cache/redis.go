package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// RedisOptions configure a Redis cache.
type RedisOptions struct {
	// Client reaches Redis: single node, Sentinel or Cluster. Required. It stays the caller's:
	// close it after the cache.
	Client redis.UniversalClient
	// TTL is how long a customer's score lives after its Put; 0 or less keeps it (not recommended).
	TTL time.Duration
	// Timeout bounds each operation (Get, ListAtRisk, and each chunk of 256 customers of a Put);
	// default 50ms.
	Timeout time.Duration
	// Prefix starts every key; default "churn".
	Prefix string
	// Registerer takes the cache's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock for the write time; default time.Now. The TTL runs on the server's clock.
	Now func() time.Time
}

// Redis is the score cache in Redis; see the package doc for the key layout. It is safe for
// concurrent use.
type Redis struct {
	client  redis.UniversalClient
	ttl     time.Duration
	timeout time.Duration
	prefix  string
	logger  *slog.Logger
	now     func() time.Time
	metrics *metrics
	// cluster: not a single-server client (a Cluster, a Ring): its pipelines go to several nodes
	// at once, in no order.
	cluster bool
	closed  atomic.Bool
	// The group-commit writer of small Puts (redisgroup.go).
	group       chan *groupPut
	groupStop   chan struct{}      // closed by Close
	groupDone   chan struct{}      // closed when the writer has returned
	groupCancel context.CancelFunc // ends the writer's round trip in flight
	closeOnce   sync.Once
}

// dropStaleScript removes expired customers from the watchlist sets, each only while its score is
// still the one ListAtRisk saw, so that a customer Put again since (with a new expected loss) stays.
// KEYS: the watchlist sets (one slot). ARGV: member, score, member, score, ...
var dropStaleScript = redis.NewScript(`
local n = 0
for _, key in ipairs(KEYS) do
  for i = 1, #ARGV, 2 do
    local s = redis.call('ZSCORE', key, ARGV[i])
    if s and tonumber(s) == tonumber(ARGV[i + 1]) then
      n = n + redis.call('ZREM', key, ARGV[i])
    end
  end
end
return n
`)

// NewRedis returns a cache on o.Client. It starts nothing and does not contact Redis: a server that
// is down at start-up only makes the operations fail with ErrUnavailable until it answers.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, errors.New("cache: RedisOptions.Client is nil")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("cache: negative timeout %v", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Prefix == "" {
		o.Prefix = "churn"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Redis{
		client:  o.Client,
		ttl:     o.TTL,
		timeout: o.Timeout,
		prefix:  o.Prefix,
		logger:  o.Logger,
		now:     o.Now,
		metrics: newMetrics(o.Registerer),
	}
	_, single := o.Client.(*redis.Client) // one server, or the master a Sentinel names
	r.cluster = !single
	r.startGroup()
	return r, nil
}

func (r *Redis) scoreKey(id string) string { return r.prefix + ":score:{" + id + "}" }

func (r *Redis) watchKey(t churnv1.RiskTier) string {
	return r.prefix + ":watch:{watch}:" + strings.TrimPrefix(t.String(), "RISK_TIER_") // e.g. HIGH
}

// watchKeys are the watchlist sets of watchTiers, in order.
func (r *Redis) watchKeys() []string {
	keys := make([]string, len(watchTiers))
	for i, t := range watchTiers {
		keys[i] = r.watchKey(t)
	}
	return keys
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// errClosed is what an operation of a closed cache gets; it wraps ErrUnavailable so servers fail open.
var errClosed = fmt.Errorf("%w: cache closed", ErrUnavailable)

// unavailable wraps an error of Redis in ErrUnavailable. An operation that ran out of time already
// wraps context.DeadlineExceeded when go-redis stopped at the context's deadline; when a socket
// timeout of the client stopped it (churnd's client has --cache-timeout as its read and write
// timeout), it is wrapped in context.DeadlineExceeded here, so that callers see one sign of it.
func unavailable(op string, err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: redis %s: %w: %w", ErrUnavailable, op, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

// Get returns the customer's cached response with FromCache set and the probability cached before
// it (NaN when none); ErrNotFound, or ErrUnavailable.
func (r *Redis) Get(ctx context.Context, customerID string) (resp *churnv1.ScoreResponse, prev float64, err error) {
	miss := false
	defer r.metrics.observe(opGet, time.Now(), &err, &miss)
	if r.closed.Load() {
		return nil, math.NaN(), errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	vals, err := r.client.HMGet(ctx, r.scoreKey(customerID), "resp", "prev_p").Result()
	if err != nil {
		return nil, math.NaN(), unavailable("get", err)
	}
	raw, ok := vals[0].(string)
	if !ok {
		miss = true
		return nil, math.NaN(), ErrNotFound
	}
	resp, err = decodeResponse([]byte(raw))
	if err != nil {
		return nil, math.NaN(), err
	}
	s, _ := vals[1].(string)
	if s == "" {
		return resp, math.NaN(), nil
	}
	if prev, err = strconv.ParseFloat(s, 64); err != nil {
		return nil, math.NaN(), fmt.Errorf("cache: %s: bad prev_p %q: %w", r.scoreKey(customerID), s, err)
	}
	return resp, prev, nil
}

// decodeResponse unmarshals a stored response (it keeps nothing of raw) and sets FromCache.
func decodeResponse(raw []byte) (*churnv1.ScoreResponse, error) {
	resp := &churnv1.ScoreResponse{}
	if err := proto.Unmarshal(raw, resp); err != nil {
		return nil, fmt.Errorf("cache: stored response: %w", err)
	}
	resp.FromCache = true
	return resp, nil
}

// maxListRounds bounds the round trips of one ListAtRisk that meets many expired customers; the page
// then comes back short, with a token that goes on after the last member looked at.
const maxListRounds = 8

// ListAtRisk returns a page of the watchlist set of minTier and the token of the next page (""
// at the end), dropping members whose hash expired.
func (r *Redis) ListAtRisk(ctx context.Context, minTier churnv1.RiskTier, limit int, pageToken string) (page []*churnv1.ScoreResponse, next string, err error) {
	minTier, cur, err := listArgs(minTier, limit, pageToken)
	if err != nil {
		return nil, "", err
	}
	defer r.metrics.observe(opList, time.Now(), &err, nil)
	if r.closed.Load() {
		return nil, "", errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	key := r.watchKey(minTier)
	start := "-inf"
	if cur != nil {
		start = formatFloat(-cur.loss) // inclusive: ties after the cursor's id are on this page
	}
	type item struct {
		id   string
		loss float64
		resp *churnv1.ScoreResponse
	}
	var (
		items    []item
		stale    []any
		lastSeen *cursor
		offset   int64
		count    = int64(limit + 1)
		complete bool
	)
	for round := 0; round < maxListRounds && len(items) <= limit; round++ {
		zs, err := r.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: start, Stop: "+inf", ByScore: true, Offset: offset, Count: count,
		}).Result()
		if err != nil {
			return nil, "", unavailable("list", err)
		}
		offset += int64(len(zs))
		var ids []string
		var losses []float64
		for _, z := range zs {
			id, _ := z.Member.(string)
			loss := -z.Score
			if cur.after(loss, id) {
				ids = append(ids, id)
				losses = append(losses, loss)
			}
		}
		if len(ids) > 0 {
			pipe := r.client.Pipeline()
			cmds := make([]*redis.SliceCmd, len(ids))
			for i, id := range ids {
				cmds[i] = pipe.HMGet(ctx, r.scoreKey(id), "tier", "resp")
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, "", unavailable("list", err)
			}
			for i, c := range cmds {
				if len(items) > limit {
					break
				}
				lastSeen = &cursor{loss: losses[i], id: ids[i]}
				vals := c.Val()
				raw, ok := vals[1].(string)
				if !ok {
					stale = append(stale, ids[i], formatFloat(-losses[i]))
					continue
				}
				// The hash's tier wins over a set that a concurrent Put has not updated yet.
				if t, err := strconv.Atoi(fmt.Sprint(vals[0])); err != nil || churnv1.RiskTier(t) < minTier {
					continue
				}
				resp, err := decodeResponse([]byte(raw))
				if err != nil {
					return nil, "", err
				}
				items = append(items, item{id: ids[i], loss: losses[i], resp: resp})
			}
		}
		if int64(len(zs)) < count {
			complete = true
			break
		}
		count = max(count, int64(limit+1-len(items))) * 2 // many stale or skipped: read more at a time
	}

	if len(stale) > 0 {
		keys := make([]string, len(watchTiers))
		for i, t := range watchTiers {
			keys[i] = r.watchKey(t)
		}
		dropped, err := dropStaleScript.Run(ctx, r.client, keys, stale...).Int()
		if err != nil {
			return nil, "", unavailable("list", err)
		}
		r.logger.Debug("dropped expired customers from the watchlist", "count", len(stale)/2)
		if dropped > 0 {
			if err := r.restoreRescored(ctx, stale); err != nil {
				// The page stands; a customer this missed is back in the watchlist at its next Put.
				r.logger.Warn("could not check the customers dropped from the watchlist", "err", err)
			}
		}
	}

	switch {
	case len(items) > limit:
		items = items[:limit]
		next = encodeToken(items[limit-1].loss, items[limit-1].id)
	case !complete && lastSeen != nil:
		next = encodeToken(lastSeen.loss, lastSeen.id)
	}
	page = make([]*churnv1.ScoreResponse, len(items))
	for i, it := range items {
		page[i] = it.resp
	}
	return page, next, nil
}

// restoreRescored puts back in the watchlist the customers of stale (member, score, ...) that were
// Put again while ListAtRisk dropped them. The drop script keeps a member whose score changed, but a
// customer scored again with the same expected loss keeps the same score: if its Put wrote the
// hash after ListAtRisk found it missing and its ZADD came before the drop, the drop removed a live
// customer. The Put's hash is written before its ZADD, so reading the hashes after the drop finds
// every such customer, and it is added back with its hash's tier and loss, unless a newer Put has
// added it already. A customer Put after this read is added back by its own ZADD.
func (r *Redis) restoreRescored(ctx context.Context, stale []any) error {
	pipe := r.client.Pipeline()
	ids := make([]string, 0, len(stale)/2)
	cmds := make([]*redis.SliceCmd, 0, len(stale)/2)
	for i := 0; i < len(stale); i += 2 {
		id := stale[i].(string)
		ids = append(ids, id)
		cmds = append(cmds, pipe.HMGet(ctx, r.scoreKey(id), "tier", "loss"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	adds := make([][]redis.Z, len(watchTiers))
	for i, c := range cmds {
		vals := c.Val()
		ts, ok1 := vals[0].(string)
		ls, ok2 := vals[1].(string)
		if !ok1 || !ok2 {
			continue // still expired
		}
		t, err1 := strconv.Atoi(ts)
		loss, err2 := strconv.ParseFloat(ls, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		for j, wt := range watchTiers {
			if churnv1.RiskTier(t) >= wt {
				adds[j] = append(adds[j], redis.Z{Score: -loss, Member: ids[i]})
			}
		}
	}
	pipe = r.client.Pipeline()
	n := 0
	for j, wt := range watchTiers {
		if len(adds[j]) > 0 {
			pipe.ZAddNX(ctx, r.watchKey(wt), adds[j]...) // NX: never over a newer Put's score
			n++
		}
	}
	if n == 0 {
		return nil
	}
	r.logger.Debug("put customers scored again during the drop back in the watchlist")
	_, err := pipe.Exec(ctx)
	return err
}

// Close makes every later operation fail with ErrUnavailable, without touching Redis. The cache
// starts no goroutine, so there is nothing else to stop; operations in flight run to their end.
// The client stays open: it is the caller's, to close after this.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.stopGroup()
	})
	return nil
}

const (
	opPut  = "put"
	opGet  = "get"
	opList = "list"
)

type metrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	putBatch prometheus.Histogram // Redis only: Puts per round trip (group commit)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ops: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "churn_cache_operations_total",
			Help: "Score cache operations by operation (put, get, list) and result (ok, miss, error).",
		}, []string{"op", "result"}),
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "churn_cache_operation_duration_seconds",
			Help:    "Duration of score cache operations, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		putBatch: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "churn_cache_put_batch_calls",
			Help:    "Put calls written together in one Redis round trip (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
	}
	for _, op := range []string{opPut, opGet, opList} {
		m.duration.WithLabelValues(op)
		for _, res := range []string{"ok", "error"} {
			m.ops.WithLabelValues(op, res)
		}
	}
	m.ops.WithLabelValues(opGet, "miss")
	return m
}

// observe counts an operation that started at start, by its error and, for Get, whether it missed.
func (m *metrics) observe(op string, start time.Time, err *error, miss *bool) {
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	switch {
	case miss != nil && *miss:
		m.ops.WithLabelValues(op, "miss").Inc()
	case *err != nil:
		m.ops.WithLabelValues(op, "error").Inc()
	default:
		m.ops.WithLabelValues(op, "ok").Inc()
	}
}
