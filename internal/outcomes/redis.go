package outcomes

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// ErrUnavailable wraps every error of the Redis outcome store (down, timeout).
var ErrUnavailable = errors.New("outcomes: store unavailable")

// RedisTimeout bounds every Redis operation of the outcome store (a report reads up to
// --outcome-retention-days hashes in one pipelined round trip).
const RedisTimeout = 2 * time.Second

// DefaultRedisKeyTTL is how long Redis remembers an outcome's idempotency key.
const DefaultRedisKeyTTL = 7 * 24 * time.Hour

// RedisOptions configure the Redis outcome store.
//
// # Layout
//
// With prefix P (default "churn"), every key carries the hash tag {outcomes}, so that one script
// can write them atomically on a Cluster too (they all live on one node: the figures are small):
//
//   - P:outcomes:{outcomes}:day:<d> — a hash per UTC day d (days since 1970-01-01), the day's
//     counters: "k\x1f<segment>\x1f<counter>\x1f<value>" per segment (Segment number and its
//     value) and "h\x1f<model name>\x1f<version>\x1f<counter>" per model version (codec.go names
//     the counters). Expires RetentionDays after its last write.
//   - P:outcomes:{outcomes}:versions:<d> — the model versions with a histogram that day, at most
//     MaxVersions; same expiry.
//   - P:outcomes:{outcomes}:contracts — the contracts kept as segments, at most MaxContracts.
//   - P:outcomes:{outcomes}:key:<hex> — an outcome's idempotency key (a 16-byte digest), KeyTTL.
//   - P:outcomes:{outcomes}:base:<period>:<unix start> — a base count, until its period leaves the
//     days kept.
//
// One Lua script records an outcome: it sets the key only if absent (a duplicate stops there),
// picks the contract segment and whether the version may have a histogram, and adds the
// increments to the day's hash, so a retry, a concurrent replica or a failed round trip never
// counts an outcome twice or in part.
type RedisOptions struct {
	Client redis.UniversalClient
	// Prefix of every key; "churn" when empty.
	Prefix string
	// KeyTTL is how long an idempotency key is remembered; DefaultRedisKeyTTL when 0.
	KeyTTL time.Duration
}

type redisStore struct {
	client       redis.UniversalClient
	prefix       string
	keyTTL       time.Duration
	dayTTL       time.Duration
	maxContracts int
	maxVersions  int
}

func newRedisStore(r RedisOptions, o Options) (*redisStore, error) {
	if r.Client == nil {
		return nil, errors.New("outcomes: Redis options without a client")
	}
	if r.Prefix == "" {
		r.Prefix = "churn"
	}
	if r.KeyTTL <= 0 {
		r.KeyTTL = DefaultRedisKeyTTL
	}
	return &redisStore{
		client:       r.Client,
		prefix:       r.Prefix + ":outcomes:{outcomes}:",
		keyTTL:       r.KeyTTL,
		dayTTL:       time.Duration(o.RetentionDays+1) * 24 * time.Hour,
		maxContracts: o.MaxContracts,
		maxVersions:  o.MaxVersions,
	}, nil
}

// recordScript: KEYS key, day hash, contracts set, versions set; ARGV key TTL ms, day TTL ms, max
// contracts, contract, max versions, version member ("" for no histogram), then triples (kind,
// field, increment): kind "k" a plain field, "c" a field the contract is appended to, "h" a
// histogram field, written only when the version may have one. Returns 0 for a duplicate, 1 when
// recorded with its histogram, 2 when recorded without one.
var recordScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local contract = ARGV[4]
if redis.call('SISMEMBER', KEYS[3], contract) == 0 then
  if redis.call('SCARD', KEYS[3]) < tonumber(ARGV[3]) then
    redis.call('SADD', KEYS[3], contract)
  else
    contract = '` + OtherContract + `'
  end
end
local hist = ARGV[6] ~= ''
if hist and redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 0 then
  if redis.call('SCARD', KEYS[4]) < tonumber(ARGV[5]) then
    redis.call('SADD', KEYS[4], ARGV[6])
    redis.call('PEXPIRE', KEYS[4], ARGV[2])
  else
    hist = false
  end
end
for i = 7, #ARGV, 3 do
  local kind, field = ARGV[i], ARGV[i + 1]
  if kind == 'c' then field = field .. contract end
  if kind ~= 'h' or hist then redis.call('HINCRBYFLOAT', KEYS[2], field, ARGV[i + 2]) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if hist then return 1 end
return 2
`)

const sep = "\x1f" // never in a segment value, contract, model name or version: they exclude control characters

func kpiField(seg churnv1.Segment, counter, value string) string {
	return "k" + sep + itoa(int(seg)) + sep + counter + sep + value
}

func histField(k modelKey, counter string) string {
	return "h" + sep + k.name + sep + k.version + sep + counter
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// add records one outcome with the script; see recordScript.
func (r *redisStore) add(ctx context.Context, o *churnv1.Outcome, score *churnv1.ScoreResponse, m *metrics) (bool, error) {
	k := key(o)
	d := dayOf(o.GetOccurredAt().AsTime())
	keys := []string{
		r.prefix + "key:" + hex.EncodeToString(k[:]),
		r.prefix + "day:" + strconv.FormatInt(d, 10),
		r.prefix + "contracts",
		r.prefix + "versions:" + strconv.FormatInt(d, 10),
	}
	tier := churnv1.RiskTier_RISK_TIER_UNSPECIFIED
	stage := churnv1.LifecycleStage_LIFECYCLE_STAGE_UNSPECIFIED
	var mk modelKey
	member := ""
	if score != nil {
		tier, stage = score.GetTier(), score.GetStage()
		if o.GetType() != churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK {
			mk = modelKey{name: score.GetModel().GetName(), version: score.GetModel().GetVersion()}
			member = mk.name + sep + mk.version
		}
	}
	args := []any{r.keyTTL.Milliseconds(), r.dayTTL.Milliseconds(), r.maxContracts, o.GetContract(), r.maxVersions, member}
	for _, in := range kpiIncrs(o, score) {
		by := fmtFloat(in.by)
		args = append(args,
			"k", kpiField(churnv1.Segment_SEGMENT_UNSPECIFIED, in.name, ""), by,
			"k", kpiField(churnv1.Segment_SEGMENT_TIER, in.name, tier.String()), by,
			"k", kpiField(churnv1.Segment_SEGMENT_STAGE, in.name, stage.String()), by,
			"c", kpiField(churnv1.Segment_SEGMENT_CONTRACT, in.name, ""), by)
	}
	if member != "" {
		for _, in := range histIncrs(score.GetProbability(), o.GetType() == churnv1.OutcomeType_OUTCOME_TYPE_CHURNED) {
			args = append(args, "h", histField(mk, in.name), fmtFloat(in.by))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()
	res, err := recordScript.Run(ctx, r.client, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("%w: recording an outcome: %w", ErrUnavailable, err)
	}
	switch {
	case res == 0:
		return true, nil
	case score != nil:
		m.joins.WithLabelValues("joined").Inc()
		if res == 2 && member != "" {
			m.joins.WithLabelValues("version_limit").Inc()
		}
	}
	return false, nil
}

func (r *redisStore) baseKey(k baseKey) string {
	return r.prefix + "base:" + itoa(int(k.period)) + ":" + strconv.FormatInt(k.start, 10)
}

// setBases writes base counts in one MULTI/EXEC: all or none.
func (r *redisStore) setBases(ctx context.Context, keys []baseKey, vals []int64) error {
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			end := periodEnd(k.period, time.Unix(k.start, 0).UTC())
			p.Set(ctx, r.baseKey(k), vals[i], time.Until(end)+r.dayTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: writing base counts: %w", ErrUnavailable, err)
	}
	return nil
}

// read reads days first..last and the base counts bk in one pipelined round trip.
func (r *redisStore) read(ctx context.Context, first, last int64, bk []baseKey) (map[int64]*day, map[baseKey]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()
	p := r.client.Pipeline()
	var hashes []*redis.MapStringStringCmd
	for d := first; d <= last; d++ {
		hashes = append(hashes, p.HGetAll(ctx, r.prefix+"day:"+strconv.FormatInt(d, 10)))
	}
	var bases []*redis.StringCmd
	for _, k := range bk {
		bases = append(bases, p.Get(ctx, r.baseKey(k)))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("%w: reading outcome figures: %w", ErrUnavailable, err)
	}
	days := map[int64]*day{}
	for i, h := range hashes {
		fields := h.Val()
		if len(fields) == 0 {
			continue
		}
		a := &day{segs: map[segKey]*kpi{}, models: map[modelKey]*histogram{}}
		for f, sv := range fields {
			v, err := strconv.ParseFloat(sv, 64)
			if err != nil {
				continue
			}
			decodeField(a, f, v)
		}
		days[first+int64(i)] = a
	}
	out := map[baseKey]int64{}
	for i, c := range bases {
		if n, err := c.Int64(); err == nil {
			out[bk[i]] = n
		}
	}
	return days, out, nil
}

// decodeField adds one hash field to a day's aggregates; malformed fields are ignored.
func decodeField(a *day, f string, v float64) {
	parts := strings.Split(f, sep)
	if len(parts) != 4 {
		return
	}
	switch parts[0] {
	case "k":
		seg, err := strconv.Atoi(parts[1])
		if err != nil {
			return
		}
		sk := segKey{seg: churnv1.Segment(seg), value: parts[3]}
		k := a.segs[sk]
		if k == nil {
			k = &kpi{}
		}
		if k.apply(parts[2], v) {
			a.segs[sk] = k
		}
	case "h":
		mk := modelKey{name: parts[1], version: parts[2]}
		h := a.models[mk]
		if h == nil {
			h = &histogram{}
		}
		if h.apply(parts[3], v) {
			a.models[mk] = h
		}
	}
}
