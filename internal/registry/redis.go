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
// {models}, so they live in one Cluster slot and the Lua script and MULTI below are atomic there
// too:
//
//	<prefix>:models:{models}:bundle:<version>  string: the bundle's bytes
//	<prefix>:models:{models}:records           hash: version → Record (JSON)
//	<prefix>:models:{models}:active            string: the active version
//	<prefix>:models:{models}:history           list: Activation (JSON), most recent first
//
// and notifications go over the pub/sub channel <prefix>:models:events.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	logger  *slog.Logger
}

// RedisBackendOptions configure a Redis backend.
type RedisBackendOptions struct {
	Client redis.UniversalClient
	// Prefix starts every key; default "churn".
	Prefix string
	// Timeout bounds each operation but Put and Get, which move whole bundles; default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{client: o.Client, prefix: o.Prefix + ":models:{models}:", timeout: o.Timeout, logger: o.Logger}, nil
}

// Name implements Backend.
func (r *Redis) Name() string { return "redis" }

func (r *Redis) channel() string { return r.prefix[:len(r.prefix)-len("{models}:")] + "events" }

// putScript stores the bundle and its record in one atomic step, unless the version exists.
var putScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`)

// Put implements Backend.
func (r *Redis) Put(ctx context.Context, rec Record, data []byte) error {
	meta, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	n, err := putScript.Run(ctx, r.client, []string{r.prefix + "bundle:" + rec.Version, r.prefix + "records"}, rec.Version, meta, data).Int()
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
	data, err := r.client.Get(ctx, r.prefix+"bundle:"+version).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %q", errNotStored, version)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return data, nil
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

// Activate implements Backend.
func (r *Redis) Activate(ctx context.Context, a Activation) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	entry, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.prefix+"active", a.Version, 0)
		p.LPush(ctx, r.prefix+"history", entry)
		p.LTrim(ctx, r.prefix+"history", 0, MaxHistory-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// State implements Backend.
func (r *Redis) State(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var active *redis.StringCmd
	var history *redis.StringSliceCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		active = p.Get(ctx, r.prefix+"active")
		history = p.LRange(ctx, r.prefix+"history", 0, MaxHistory-1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
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
