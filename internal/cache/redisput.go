package cache

// The Redis Put: plain code in the caller's goroutine, one pipeline per chunk of customers. See
// the package doc ("Redis writes") for the round trips and the order they keep.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// maxPutChunk is the most customers one pipeline of a Put carries. A bigger Put is sent in chunks,
// one after the other, each under its own Timeout: a full ScoreBatch (--max-batch 1000) gets 4×
// Timeout in all, where one pipeline of 1,000 scripts under one 50ms deadline often timed out
// half-written.
const maxPutChunk = 256

// putHashLua reads the previous probability and writes the customer's hash and TTL. KEYS[1]: the
// hash. ARGV: p, tier, loss, resp, at (unix ms), ttl (ms, 0 for none).
const putHashLua = `
local prev = redis.call('HGET', KEYS[1], 'p')
if not prev then prev = '' end
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'tier', ARGV[2], 'loss', ARGV[3], 'resp', ARGV[4], 'prev_p', prev, 'at', ARGV[5])
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
`

// putWatchLua puts the customer in the watchlist sets at or below its tier and takes it out of
// those above. KEYS[2], KEYS[3], KEYS[4]: the MEDIUM, HIGH and CRITICAL sets (tiers 2, 3 and 4).
// ARGV[7]: the customer id; ARGV[8]: its watchlist score (the negated expected loss).
const putWatchLua = `
local tier = tonumber(ARGV[2])
for i = 2, 4 do
  if tier >= i then
    redis.call('ZADD', KEYS[i], ARGV[8], ARGV[7])
  else
    redis.call('ZREM', KEYS[i], ARGV[7])
  end
end
`

// putScript writes a customer's hash atomically and returns the previous probability, "" when
// there was none: for a Cluster, whose watchlist sets are on another node than the hash (see
// putCluster). putWatchScript writes the hash and the watchlist in the same atomic step: on one
// server (or a Sentinel's master) the hash and the watchlist then never disagree, whatever becomes
// of the pipeline that carried the script.
const (
	putScriptSrc      = putHashLua + "return prev"
	putWatchScriptSrc = putHashLua + putWatchLua + "return prev"
)

// putScriptDef is a script with its source, for the replay after NOSCRIPT.
type putScriptDef struct {
	*redis.Script
	src string
}

var (
	putScript      = &putScriptDef{redis.NewScript(putScriptSrc), putScriptSrc}
	putWatchScript = &putScriptDef{redis.NewScript(putWatchScriptSrc), putWatchScriptSrc}
)

// putWrite is one customer's part of a Put.
type putWrite struct {
	id   string
	key  string // the customer's hash
	args []any  // the put script's ARGV
	tier churnv1.RiskTier
	loss float64
}

// Put remembers each response, in order, as its customer's latest score, and returns per response
// the probability cached for that customer before it, NaN when there was none. Up to 256
// customers are one pipelined round trip (see the package doc for the exceptions); a bigger Put
// is sent in chunks of 256, each under its own Timeout. A response that cannot be marshalled fails
// the Put before anything is sent; a chunk that fails ends the Put with the chunks before it
// written.
func (r *Redis) Put(ctx context.Context, resps []*churnv1.ScoreResponse) (prevs []float64, err error) {
	if len(resps) == 0 {
		return []float64{}, nil
	}
	defer r.metrics.observe(opPut, time.Now(), &err, nil)
	if r.closed.Load() {
		return nil, errClosed
	}
	writes, err := r.putWrites(resps)
	if err != nil {
		return nil, err
	}
	if len(writes) < maxPutChunk {
		return r.putGrouped(ctx, writes)
	}
	prevs = make([]float64, 0, len(resps))
	for chunk := range slices.Chunk(writes, maxPutChunk) {
		p, err := r.putChunk(ctx, chunk)
		if err != nil {
			return nil, err
		}
		prevs = append(prevs, p...)
	}
	return prevs, nil
}

// putWrites marshals the responses and makes each customer's write.
func (r *Redis) putWrites(resps []*churnv1.ScoreResponse) ([]putWrite, error) {
	at := strconv.FormatInt(r.now().UnixMilli(), 10)
	ttl := "0"
	if r.ttl > 0 {
		ttl = strconv.FormatInt(max(r.ttl.Milliseconds(), 1), 10)
	}
	writes := make([]putWrite, len(resps))
	for i, resp := range resps {
		raw, err := proto.Marshal(resp)
		if err != nil {
			return nil, fmt.Errorf("cache: marshal response of %q: %w", resp.GetCustomerId(), err)
		}
		writes[i] = putWrite{
			id:  resp.GetCustomerId(),
			key: r.scoreKey(resp.GetCustomerId()),
			args: []any{formatFloat(resp.GetProbability()), int(resp.GetTier()), formatFloat(resp.GetExpectedLoss()), raw, at, ttl,
				resp.GetCustomerId(), formatFloat(-resp.GetExpectedLoss())},
			tier: resp.GetTier(),
			loss: resp.GetExpectedLoss(),
		}
	}
	return writes, nil
}

// putChunk writes one chunk under its own Timeout and returns each customer's previous probability.
func (r *Redis) putChunk(ctx context.Context, ws []putWrite) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if r.cluster {
		return r.putCluster(ctx, ws)
	}
	return r.putSingle(ctx, ws)
}

// putSingle writes a chunk to one server: per customer the script that writes its hash and its
// watchlist entries together.
func (r *Redis) putSingle(ctx context.Context, ws []putWrite) ([]float64, error) {
	watch := r.watchKeys()
	scripts, err := r.runScripts(ctx, putWatchScript, ws, func(w putWrite) []string { return append([]string{w.key}, watch...) })
	if err := failure(err, nil); err != nil {
		return nil, unavailable("put", err)
	}
	return previous(scripts)
}

// putCluster writes a chunk to a Cluster, whose client sends every node its share of a pipeline at
// once: the scripts that write the hashes first, then, in a round trip of its own, the watchlist
// of exactly the customers whose scripts succeeded. go-redis sets a node's failure on each of
// that node's commands, so a node that failed costs only its own customers their watchlist
// entries; the Put reports the failure.
func (r *Redis) putCluster(ctx context.Context, ws []putWrite) ([]float64, error) {
	scripts, _ := r.runScripts(ctx, putScript, ws, func(w putWrite) []string { return []string{w.key} })
	var written []putWrite
	for i, w := range ws {
		if scripts[i].Err() == nil {
			written = append(written, w)
		}
	}
	if len(written) > 0 {
		pipe := r.client.Pipeline()
		watch := r.queueWatch(ctx, pipe, written)
		_, err := pipe.Exec(ctx)
		if err := failure(err, watch); err != nil {
			return nil, unavailable("put", err)
		}
	}
	return previous(scripts)
}

// runScripts runs script for every customer of ws, on the keys keys gives it, in one pipeline by
// its SHA1 (EVALSHA), and the ones the server did not know (NOSCRIPT: a restart, SCRIPT FLUSH)
// again with their source (EVAL) in a second. It returns each customer's command, whose error is
// its own, and the last pipeline's error.
func (r *Redis) runScripts(ctx context.Context, script *putScriptDef, ws []putWrite, keys func(putWrite) []string) ([]*redis.Cmd, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(ws))
	for i, w := range ws {
		cmds[i] = pipe.EvalSha(ctx, script.Hash(), keys(w), w.args...)
	}
	_, err := pipe.Exec(ctx)
	var lost []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			lost = append(lost, i)
		}
	}
	if len(lost) > 0 {
		r.logger.Debug("redis lost the put script; replaying with EVAL", "customers", len(lost))
		pipe := r.client.Pipeline()
		for _, i := range lost {
			cmds[i] = pipe.Eval(ctx, script.src, keys(ws[i]), ws[i].args...)
		}
		_, err = pipe.Exec(ctx)
	}
	return cmds, err
}

// queueWatch adds to pipe the watchlist commands of the customers of ws: per tier set one ZADD of
// the customers at or above its tier and one ZREM of those below. A customer's last write in ws
// decides its sets, so that two writes of one customer cannot leave it in a set of the first.
func (r *Redis) queueWatch(ctx context.Context, pipe redis.Pipeliner, ws []putWrite) []redis.Cmder {
	last := make(map[string]int, len(ws))
	for i, w := range ws {
		last[w.id] = i
	}
	var cmds []redis.Cmder
	for _, t := range watchTiers {
		var adds []redis.Z
		var rems []any
		for i, w := range ws {
			switch {
			case last[w.id] != i:
			case w.tier >= t:
				adds = append(adds, redis.Z{Score: -w.loss, Member: w.id})
			default:
				rems = append(rems, w.id)
			}
		}
		if len(adds) > 0 {
			cmds = append(cmds, pipe.ZAdd(ctx, r.watchKey(t), adds...))
		}
		if len(rems) > 0 {
			cmds = append(cmds, pipe.ZRem(ctx, r.watchKey(t), rems...))
		}
	}
	return cmds
}

// failure is what fails a whole pipeline: an error of Exec that is not one command's reply (a
// connection or a deadline; go-redis sets those on every command too, but a Put must not read a
// command that was never answered as "no previous"), or the first error of cmds.
func failure(execErr error, cmds []redis.Cmder) error {
	var reply redis.Error
	if execErr != nil && !errors.As(execErr, &reply) {
		return execErr
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// previous reads the scripts' replies: each customer's previous probability, NaN when none; the
// first script's error fails the chunk.
func previous(cmds []*redis.Cmd) ([]float64, error) {
	prevs := make([]float64, len(cmds))
	for i, c := range cmds {
		s, err := c.Text()
		if err != nil {
			return nil, unavailable("put", err)
		}
		if s == "" {
			prevs[i] = math.NaN()
			continue
		}
		if prevs[i], err = strconv.ParseFloat(s, 64); err != nil {
			return nil, unavailable("put", fmt.Errorf("previous p %q: %w", s, err))
		}
	}
	return prevs, nil
}
