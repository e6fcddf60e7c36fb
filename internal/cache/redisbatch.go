package cache

// Group commit for Redis Puts.
//
// Every Put hands its entries (already marshalled, in the caller's goroutine) to one writer
// goroutine per Redis cache. The writer takes the first queued Put, then, without waiting, every
// other Put already queued, up to maxBatchCustomers customers, and sends them all in ONE pipeline
// (per customer the put script's EVALSHA, in queue order; then the watchlist ZADD/ZREMs of the
// whole batch; on a Cluster, whose client sends every node its commands at once, the watchlist
// follows in a second round trip, so that it never names a customer whose hash is not written). So a Put alone is still one round trip, and under concurrency the Puts that arrived while
// a round trip was in flight share the next one: one write and one read on each side instead of one
// per Put. Redis runs a pipeline's commands in order, so two Puts of one customer in one batch apply
// in queue order and the later one's script returns the earlier one's probability as previous; with
// one writer, batches never overlap, so a Put that returned before another began is applied first.
//
// Each caller waits for its own result under its own deadline (Timeout, queueing included). A caller
// whose context ends stops waiting and gets ErrUnavailable; if its Put was still queued it is marked
// abandoned and never sent, if it was in flight it may or may not be written (as a Put that timed out
// mid-round-trip always could). A batch's round trip runs until the latest deadline of its callers,
// so a Redis that is down costs the writer no more than the callers wait. Close stops the writer and
// fails the queued Puts.
//
// Hand-written: go-redis has no group commit (its pipelines are per caller), and the batching needs
// the cache's own per-customer ordering and per-caller results.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// maxBatchCustomers bounds the customers of one round trip (a bigger single Put goes alone).
	maxBatchCustomers = 256
	// putWriters is how many round trips may be in flight at once, each on its own connection.
	putWriters = 1
	// putQueueLen is how many Puts can wait for the writer before callers block (under their
	// deadline) to enqueue.
	putQueueLen = 1024
)

// errClosed is what a Put gets from a closed cache; it wraps ErrUnavailable so servers fail open.
var errClosed = fmt.Errorf("%w: cache closed", ErrUnavailable)

// States of a putRequest: the writer and the caller race to move it out of pending.
const (
	putPending int32 = iota
	putTaken
	putAbandoned
)

// putRequest is one Put waiting for the writer.
type putRequest struct {
	entries  []Entry
	args     [][]any   // the put script's ARGV per entry
	deadline time.Time // the caller's; zero for none
	state    atomic.Int32
	done     chan putResult // capacity 1: the writer never blocks on it
}

type putResult struct {
	prevs []Previous
	err   error
}

// putWriter is the group-commit writer of one Redis cache.
type putWriter struct {
	r        *Redis
	queue    chan *putRequest
	quit     chan struct{} // closed by stop
	exited   chan struct{} // closed when every run has returned
	ctx      context.Context
	cancel   context.CancelFunc // ends the round trip in flight on stop
	stopOnce sync.Once
}

func startPutWriter(r *Redis) *putWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &putWriter{
		r:      r,
		queue:  make(chan *putRequest, putQueueLen),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	var wg sync.WaitGroup
	for range putWriters {
		wg.Go(w.run)
	}
	go func() { wg.Wait(); close(w.exited) }()
	return w
}

// stop ends the writer and waits for it; Puts still queued get errClosed. Safe to call twice.
func (w *putWriter) stop() {
	w.stopOnce.Do(func() {
		close(w.quit)
		w.cancel()
	})
	<-w.exited
}

// do queues req and waits for its result, the end of ctx, or the writer's end.
func (w *putWriter) do(ctx context.Context, req *putRequest) ([]Previous, error) {
	select {
	case <-w.quit:
		return nil, errClosed
	default:
	}
	select {
	case w.queue <- req:
	case <-ctx.Done():
		return nil, unavailable("put", fmt.Errorf("queued for the writer: %w", ctx.Err()))
	case <-w.quit:
		return nil, errClosed
	}
	select {
	case res := <-req.done:
		return res.prevs, res.err
	case <-ctx.Done():
		// Not sent yet: the writer will skip it. Sent: its outcome is unknown, as for any timeout.
		req.state.CompareAndSwap(putPending, putAbandoned)
		return nil, unavailable("put", ctx.Err())
	case <-w.exited:
		select {
		case res := <-req.done:
			return res.prevs, res.err
		default:
			return nil, errClosed
		}
	}
}

func (w *putWriter) run() {
	var carry *putRequest // taken off the queue but did not fit in the last batch
	batch := make([]*putRequest, 0, 64)
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-w.queue:
			case <-w.quit:
				w.failQueued(nil)
				return
			}
		}
		select {
		case <-w.quit:
			w.failQueued(first)
			return
		default:
		}
		batch = batch[:0]
		n := 0
		if first.state.CompareAndSwap(putPending, putTaken) {
			batch = append(batch, first)
			n = len(first.entries)
		}
	drain:
		for n < maxBatchCustomers {
			select {
			case q := <-w.queue:
				if n > 0 && n+len(q.entries) > maxBatchCustomers {
					carry = q
					break drain
				}
				if q.state.CompareAndSwap(putPending, putTaken) {
					batch = append(batch, q)
					n += len(q.entries)
				}
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			w.commit(batch, n)
		}
		clear(batch) // drop the references until the next batch
	}
}

// failQueued answers pending (if any) and every queued Put with errClosed.
func (w *putWriter) failQueued(pending *putRequest) {
	if pending != nil {
		pending.done <- putResult{err: errClosed}
	}
	for {
		select {
		case q := <-w.queue:
			q.done <- putResult{err: errClosed}
		default:
			return
		}
	}
}

// commit sends the batch's n entries in one pipeline (plus an EVAL replay on NOSCRIPT; on a Cluster
// the watchlist in one more round trip, after the hashes) and answers each request.
func (w *putWriter) commit(batch []*putRequest, n int) {
	r := w.r
	r.metrics.putBatch.Observe(float64(len(batch)))
	var deadline time.Time
	for _, q := range batch {
		if q.deadline.IsZero() {
			deadline = time.Now().Add(r.timeout)
			break
		}
		if q.deadline.After(deadline) {
			deadline = q.deadline
		}
	}
	ctx, cancel := context.WithDeadline(w.ctx, deadline)
	defer cancel()

	// The watchlist ops: the last entry of a customer in the batch decides its sets.
	last := make(map[string]int, n) // customer -> index of its last entry in the batch
	k := 0
	for _, q := range batch {
		for _, e := range q.entries {
			last[e.CustomerID] = k
			k++
		}
	}
	// addWatch adds to pipe the watchlist commands of the customers whose last entry k has
	// written(k), and returns them.
	addWatch := func(pipe redis.Pipeliner, written func(k int) bool) []redis.Cmder {
		adds := make([][]redis.Z, len(watchTiers))
		rems := make([][]any, len(watchTiers))
		k := 0
		for _, q := range batch {
			for _, e := range q.entries {
				k++
				if last[e.CustomerID] != k-1 || !written(k-1) {
					continue
				}
				for j, t := range watchTiers {
					if e.Tier >= t {
						adds[j] = append(adds[j], redis.Z{Score: -e.ExpectedLoss, Member: e.CustomerID})
					} else {
						rems[j] = append(rems[j], e.CustomerID)
					}
				}
			}
		}
		var watch []redis.Cmder
		for j, t := range watchTiers {
			if len(adds[j]) > 0 {
				watch = append(watch, pipe.ZAdd(ctx, r.watchKey(t), adds[j]...))
			}
			if len(rems[j]) > 0 {
				watch = append(watch, pipe.ZRem(ctx, r.watchKey(t), rems[j]...))
			}
		}
		return watch
	}
	all := func(int) bool { return true }

	// The watchlist must never name a customer whose hash is not written yet: a ListAtRisk in
	// between would take the customer for expired and drop it. One server runs a pipeline in order,
	// so the watchlist commands follow the scripts in the same round trip (and, after a replay,
	// are sent again after it). A Cluster client sends each node its share at once, so there they
	// follow in a round trip of their own, for the customers whose scripts succeeded: a node that
	// failed costs only its own customers, each of whose callers gets the error.
	cmds := make([]*redis.Cmd, 0, n)
	pipe := r.client.Pipeline()
	for _, q := range batch {
		for i, e := range q.entries {
			cmds = append(cmds, pipe.EvalSha(ctx, putScript.Hash(), []string{r.scoreKey(e.CustomerID)}, q.args[i]...))
		}
	}
	var watch []redis.Cmder
	if !r.cluster {
		watch = addWatch(pipe, all)
	}
	_, execErr := pipe.Exec(ctx)

	// Replay the scripts the server did not know with EVAL, in order, in one more round trip.
	var retry []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		r.logger.Debug("redis lost the put script; replaying with EVAL", "entries", len(retry))
		pipe := r.client.Pipeline()
		k = 0
		for _, q := range batch {
			for i, e := range q.entries {
				if len(retry) > 0 && retry[0] == k {
					cmds[k] = pipe.Eval(ctx, putScriptSrc, []string{r.scoreKey(e.CustomerID)}, q.args[i]...)
					retry = retry[1:]
				}
				k++
			}
		}
		if !r.cluster {
			watch = addWatch(pipe, all) // again, now that every hash is written
		}
		_, execErr = pipe.Exec(ctx)
	}

	// go-redis sets a connection or context error on every command of the pipeline (of the node,
	// on a Cluster); a reply error (a command's own) only on that command. Be safe about the
	// former anyway.
	var shared error
	var replyErr redis.Error
	if r.cluster {
		execErr = nil // each script's own error is its caller's; the watchlist's is everyone's
		pipe := r.client.Pipeline()
		if watch = addWatch(pipe, func(k int) bool { return cmds[k].Err() == nil }); len(watch) > 0 {
			_, execErr = pipe.Exec(ctx)
		}
	}
	if execErr != nil && !errors.As(execErr, &replyErr) {
		shared = execErr
	}
	if shared == nil {
		for _, c := range watch {
			if err := c.Err(); err != nil {
				shared = err // the watchlist commands are the whole batch's
				break
			}
		}
	}
	k = 0
	for _, q := range batch {
		mine := cmds[k : k+len(q.entries)]
		k += len(q.entries)
		prevs, err := previous(mine, shared)
		q.done <- putResult{prevs: prevs, err: err}
	}
}

// previous reads one Put's script results, or its error.
func previous(cmds []*redis.Cmd, shared error) ([]Previous, error) {
	if shared != nil {
		return nil, unavailable("put", shared)
	}
	prevs := make([]Previous, len(cmds))
	for i, c := range cmds {
		s, err := c.Text()
		if err != nil {
			return nil, unavailable("put", err)
		}
		if s == "" {
			continue
		}
		p, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, unavailable("put", fmt.Errorf("previous p %q: %w", s, err))
		}
		prevs[i] = Previous{Found: true, Probability: p}
	}
	return prevs, nil
}
