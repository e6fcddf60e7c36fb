package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps versions in Redis so that every replica shares them. All keys carry the hash tag
// {models}, so they live in one Cluster slot and the Lua scripts below are atomic there too:
//
//	<prefix>:models:{models}:bundle:<version>  string: the bundle's bytes
//	<prefix>:models:{models}:records           hash: version → Record (JSON)
//	<prefix>:models:{models}:active            string: the active version
//	<prefix>:models:{models}:history           list: Activation (JSON), most recent first
//
// and notifications go over the pub/sub channel <prefix>:models:events. Every call has a
// deadline: Timeout, or BundleTimeout for the calls that move a whole bundle.
type Redis struct {
	client        redis.UniversalClient
	prefix        string
	timeout       time.Duration
	bundleTimeout time.Duration
	logger        *slog.Logger
}

// RedisBackendOptions configure a Redis backend.
type RedisBackendOptions struct {
	Client redis.UniversalClient
	// Prefix starts every key; default "churn".
	Prefix string
	// Timeout bounds each call but Put and Get; default 2s.
	Timeout time.Duration
	// BundleTimeout bounds Put and Get, which move whole bundles (up to 64 MiB); default 30s.
	BundleTimeout time.Duration
	Logger        *slog.Logger
}

// NewRedisBackend makes a Redis backend; the client stays the caller's to close.
func NewRedisBackend(o RedisBackendOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, errors.New("registry: RedisBackendOptions.Client is nil")
	}
	if o.Prefix == "" {
		o.Prefix = "churn"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.BundleTimeout <= 0 {
		o.BundleTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{client: o.Client, prefix: o.Prefix + ":models:{models}:", timeout: o.Timeout, bundleTimeout: o.BundleTimeout, logger: o.Logger}, nil
}

// Name implements Backend.
func (r *Redis) Name() string { return "redis" }

func (r *Redis) channel() string { return r.prefix[:len(r.prefix)-len("{models}:")] + "events" }

// keys are the keys of one version and of the activation state, in the order the scripts take
// them: KEYS[1] bundle, KEYS[2] records, KEYS[3] active, KEYS[4] history.
func (r *Redis) keys(version string) []string {
	return []string{r.prefix + "bundle:" + version, r.prefix + "records", r.prefix + "active", r.prefix + "history"}
}

// putScript stores the bundle and its record in one atomic step, unless both are there already.
var putScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`)

// Put implements Backend.
func (r *Redis) Put(ctx context.Context, rec Record, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, r.bundleTimeout)
	defer cancel()
	meta, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	n, err := putScript.Run(ctx, r.client, r.keys(rec.Version)[:2], rec.Version, meta, data).Int()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", ErrExists, rec.Version)
	}
	return nil
}

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, version string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.bundleTimeout)
	defer cancel()
	data, err := r.client.Get(ctx, r.prefix+"bundle:"+version).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: the bundle of %q", ErrNotStored, version)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return data, nil
}

// Stat implements Backend.
func (r *Redis) Stat(ctx context.Context, version string) (*Record, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var meta *redis.StringCmd
	var bundle *redis.IntCmd
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGet(ctx, r.prefix+"records", version)
		bundle = p.Exists(ctx, r.prefix+"bundle:"+version)
		return nil
	})
	// Each command's own error: the pipeline's is the first, and a missing record (redis.Nil)
	// would hide a failed EXISTS.
	if err := meta.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("redis: %w", err)
	}
	if err := bundle.Err(); err != nil {
		return nil, false, fmt.Errorf("redis: %w", err)
	}
	var rec *Record
	if meta.Err() == nil {
		rec = new(Record)
		if err := json.Unmarshal([]byte(meta.Val()), rec); err != nil {
			return nil, false, fmt.Errorf("redis: record of %q: %w", version, err)
		}
	}
	return rec, bundle.Val() == 1, nil
}

// List implements Backend.
func (r *Redis) List(ctx context.Context) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	raw, err := r.client.HGetAll(ctx, r.prefix+"records").Result()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	out := make([]Record, 0, len(raw))
	for v, s := range raw {
		var rec Record
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return nil, fmt.Errorf("redis: record of %q: %w", v, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// deleteScript removes a version unless it is the active one (-1) or the rollback target (-2),
// the most recent history entry that is not the active version; 0 when nothing was stored.
var deleteScript = redis.NewScript(`
local active = redis.call('GET', KEYS[3]) or ''
if active == ARGV[1] then return -1 end
for _, e in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  local v = cjson.decode(e).version
  if v ~= active then
    if v == ARGV[1] then return -2 end
    break
  end
end
if redis.call('HDEL', KEYS[2], ARGV[1]) + redis.call('DEL', KEYS[1]) == 0 then return 0 end
return 1`)

// Delete implements Backend.
func (r *Redis) Delete(ctx context.Context, version string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := deleteScript.Run(ctx, r.client, r.keys(version), version).Int()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	switch n {
	case -1:
		return fmt.Errorf("%w: %q is the active version", ErrProtected, version)
	case -2:
		return fmt.Errorf("%w: %q is the rollback target (the version active before the active one)", ErrProtected, version)
	case 0:
		return fmt.Errorf("%w: %q", ErrNotStored, version)
	}
	return nil
}

// activateScript sets the active version and prepends the history entry, only when the
// version's record and bundle are both there; it returns whether each is.
var activateScript = redis.NewScript(`
local rec = redis.call('HEXISTS', KEYS[2], ARGV[1])
local bundle = redis.call('EXISTS', KEYS[1])
if rec == 0 or bundle == 0 then return {rec, bundle} end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], ARGV[2])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
return {1, 1}`)

// Activate implements Backend.
func (r *Redis) Activate(ctx context.Context, a Activation) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	entry, err := json.Marshal(a)
	if err != nil {
		return err
	}
	res, err := activateScript.Run(ctx, r.client, r.keys(a.Version), a.Version, entry, MaxHistory).Int64Slice()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return notStored(a.Version, res[0] == 1, res[1] == 1)
}

// restoreScript sets the whole activation state when there is no active version, and the
// active version's record and bundle are there. It returns {-1, -1} when there is an active
// version, else whether the record and the bundle are there.
var restoreScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1, -1} end
local rec = redis.call('HEXISTS', KEYS[2], ARGV[1])
local bundle = redis.call('EXISTS', KEYS[1])
if rec == 0 or bundle == 0 then return {rec, bundle} end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
for i = 2, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
return {1, 1}`)

// Restore implements Backend.
func (r *Redis) Restore(ctx context.Context, st State) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	args := []any{st.Active}
	for i, a := range st.History {
		if i == MaxHistory {
			break
		}
		entry, err := json.Marshal(a)
		if err != nil {
			return false, err
		}
		args = append(args, entry)
	}
	res, err := restoreScript.Run(ctx, r.client, r.keys(st.Active), args...).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	if res[0] == -1 {
		return false, nil
	}
	if err := notStored(st.Active, res[0] == 1, res[1] == 1); err != nil {
		return false, err
	}
	return true, nil
}

// State implements Backend.
func (r *Redis) State(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var active *redis.StringCmd
	var history *redis.StringSliceCmd
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		active = p.Get(ctx, r.prefix+"active")
		history = p.LRange(ctx, r.prefix+"history", 0, MaxHistory-1)
		return nil
	})
	// Each command's own error: no active version (redis.Nil) would hide a failed LRANGE.
	if err := active.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return State{}, fmt.Errorf("redis: %w", err)
	}
	if err := history.Err(); err != nil {
		return State{}, fmt.Errorf("redis: %w", err)
	}
	st := State{Active: active.Val()}
	for _, s := range history.Val() {
		var a Activation
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return State{}, fmt.Errorf("redis: history entry %q: %w", s, err)
		}
		st.History = append(st.History, a)
	}
	return st, nil
}

// Notify implements Backend.
func (r *Redis) Notify(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Publish(ctx, r.channel(), "changed").Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Changes implements Backend. go-redis resubscribes by itself after a lost connection; the
// periodic reconcile covers what was published meanwhile.
func (r *Redis) Changes(ctx context.Context) <-chan struct{} {
	sub := r.client.Subscribe(ctx, r.channel())
	out := make(chan struct{}, 1)
	go func() {
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default: // a reconcile is already due
				}
			}
		}
	}()
	return out
}
