package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

const (
	callTimeout   = 10 * time.Second // every unary call; far above churnd's answer, even on a busy machine
	streamTimeout = 20 * time.Second // one whole ScoreStream of 100 customers
	adminTimeout  = 30 * time.Second // an upload or activation (churnd moves a bundle within 30 s)
	customers     = 2000             // distinct customer ids: the cache stays bounded
	chunkSize     = 1 << 20          // upload chunk, as churnctl sends
)

// callContext bounds one call by its own deadline only. Calls are not cancelled when the run
// ends: the workers stop starting calls, and the calls under way finish (or time out) as they
// would, so that the end of the run is not counted as errors.
func callContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

// outage remembers when Redis was last down, so that errors the README documents for a Redis
// outage are allowed while it is down and for a grace period after it answers again (clients
// and pools reconnect on their next call).
type outage struct {
	mu    sync.Mutex
	down  bool
	upAt  time.Time
	grace time.Duration
}

func (o *outage) begin() {
	o.mu.Lock()
	o.down = true
	o.mu.Unlock()
}

func (o *outage) end() {
	o.mu.Lock()
	o.down, o.upAt = false, time.Now()
	o.mu.Unlock()
}

func (o *outage) disturbed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.down || (!o.upAt.IsZero() && time.Since(o.upAt) < o.grace)
}

// load is the clients of one run: the steady load, the abandoned streams and the model swaps.
type load struct {
	target     string
	scoring    churnv1.ScoringServiceClient
	models     churnv1.ModelServiceClient
	token      string
	features   *churnv1.CustomerFeatures
	t          *tally
	outage     *outage
	redisStore bool
	factor     float64 // multiplies every rate
}

func (l *load) allow(method string) func(codes.Code) string {
	return func(c codes.Code) string { return allowed(method, c, l.outage.disturbed(), l.redisStore) }
}

func (l *load) request(i int) *churnv1.ScoreRequest {
	return &churnv1.ScoreRequest{CustomerId: fmt.Sprintf("soak-%04d", i%customers), Features: l.features}
}

// every calls fn, then again at each tick of period, until ctx ends; a call that takes longer
// than the period is followed by the next one at once (ticks are dropped, not queued).
func every(ctx context.Context, period time.Duration, fn func(i int)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 0; ; i++ {
		fn(i)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// period is the period of a worker that makes perSecond calls a second, times the load factor.
func (l *load) period(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / (perSecond * l.factor))
}

// scoreWorker calls Score about 100 times a second.
func (l *load) scoreWorker(ctx context.Context, w int) {
	every(ctx, l.period(100), func(i int) {
		cctx, cancel := callContext(callTimeout)
		start := time.Now()
		resp, err := l.scoring.Score(cctx, l.request(w*7919+i))
		l.t.took(time.Since(start))
		cancel()
		switch {
		case err != nil:
			l.t.failErr(mScore, err, l.allow(mScore))
		case resp.GetModel().GetVersion() == "":
			l.t.problem("Score answered without a model version")
		default:
			l.t.add(mScore, 1)
		}
	})
}

// batchWorker sends ScoreBatch of 100 customers 5 times a second.
func (l *load) batchWorker(ctx context.Context, w int) {
	const size = 100
	every(ctx, l.period(5), func(i int) {
		req := &churnv1.ScoreBatchRequest{Requests: make([]*churnv1.ScoreRequest, size)}
		for j := range req.Requests {
			req.Requests[j] = l.request(w*104729 + i*size + j)
		}
		cctx, cancel := callContext(callTimeout)
		resp, err := l.scoring.ScoreBatch(cctx, req)
		cancel()
		switch {
		case err != nil:
			l.t.failErr(mBatch, err, l.allow(mBatch))
		case len(resp.GetResults()) != size:
			l.t.problem("ScoreBatch of %d answered %d results", size, len(resp.GetResults()))
		default:
			n := 0
			for _, r := range resp.GetResults() {
				if e := r.GetError(); e != nil {
					l.t.fail(mBatch+" item", codes.Code(e.GetCode()), e.GetMessage(), "")
					continue
				}
				n++
			}
			l.t.add(mBatch, n)
		}
	})
}

// streamWorker runs a ScoreStream of 100 customers twice a second, reading every response.
func (l *load) streamWorker(ctx context.Context, w int) {
	const size = 100
	every(ctx, l.period(2), func(i int) {
		cctx, cancel := callContext(streamTimeout)
		defer cancel()
		n, err := l.oneStream(cctx, w*15485863+i*size, size)
		switch {
		case err != nil:
			l.t.failErr(mStream, err, l.allow(mStream))
		case n != size:
			l.t.problem("ScoreStream of %d customers answered %d", size, n)
		}
	})
}

// oneStream sends size requests, half-closes and reads every response; it returns the number
// of responses, counting those scored in the tally and those with an error as failures.
func (l *load) oneStream(ctx context.Context, first, size int) (int, error) {
	stream, err := l.scoring.ScoreStream(ctx)
	if err != nil {
		return 0, err
	}
	sendErr := make(chan error, 1)
	go func() {
		for j := range size {
			if err := stream.Send(l.request(first + j)); err != nil {
				sendErr <- err // io.EOF: the stream ended; Recv says why
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	n, scored := 0, 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.t.add(mStream, scored)
			<-sendErr
			return n, err
		}
		n++
		if e := resp.GetError(); e != nil {
			l.t.fail(mStream+" item", codes.Code(e.GetCode()), e.GetMessage(), "")
			continue
		}
		scored++
	}
	l.t.add(mStream, scored)
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

// getWorker reads cached scores 50 times a second.
func (l *load) getWorker(ctx context.Context, w int) {
	every(ctx, l.period(50), func(i int) {
		cctx, cancel := callContext(callTimeout)
		_, err := l.scoring.GetScore(cctx, &churnv1.GetScoreRequest{CustomerId: l.request(w*31 + i).CustomerId})
		cancel()
		switch {
		case err != nil:
			l.t.failErr(mGetScore, err, l.allow(mGetScore))
		default:
			l.t.add(mGetScore, 1)
		}
	})
}

// abandonStreams opens n streams and abandons each without reading its responses, in turn:
// cancelled after one request; its connection closed after one request; its connection closed
// after 50 requests that were never read (a client that stopped reading). It returns once every
// one is abandoned; churnd must release what each held.
func (l *load) abandonStreams(n int) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cctx, cancel := callContext(5 * time.Second) // bounds a Send blocked by flow control
			defer cancel()
			switch i % 3 {
			case 0:
				if s, err := l.scoring.ScoreStream(cctx); err == nil {
					_ = s.Send(l.request(i))
				}
			case 1, 2:
				conn, err := grpc.NewClient(l.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					l.t.problem("a connection for an abandoned stream: %v", err)
					return
				}
				defer conn.Close()
				s, err := churnv1.NewScoringServiceClient(conn).ScoreStream(cctx)
				if err != nil {
					return
				}
				sends := 1
				if i%3 == 2 {
					sends = 50
				}
				for j := range sends {
					if s.Send(l.request(i*50+j)) != nil {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	l.t.abandon(n)
}

// admin is ctx with the admin bearer token.
func (l *load) admin(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+l.token)
}

// swap alternates, at each call: upload a new version of the default model (soak-N, the same
// model under another version) and activate it; activate the default model again. After each
// activation a new Score must name the version activated: a replica that says it switched and
// serves another model is the silent divergence issue 12 is about.
func (l *load) swap(n int, defaultVersion string) {
	version := defaultVersion
	if n%2 == 0 {
		version = fmt.Sprintf("soak-%d", n/2+1)
		data, err := variant(version)
		if err != nil {
			l.t.problem("variant bundle: %v", err)
			return
		}
		if err := l.upload(version, data); err != nil {
			l.t.failErr(mUpload, err, l.allow(mUpload))
			l.t.event("upload %s failed", version)
			return
		}
	}
	cctx, cancel := context.WithTimeout(l.admin(context.Background()), adminTimeout)
	_, err := l.models.ActivateModel(cctx, &churnv1.ActivateModelRequest{Version: version})
	cancel()
	if err != nil {
		l.t.failErr(mActivate, err, l.allow(mActivate))
		l.t.event("activate %s failed", version)
		return
	}
	cctx, cancel = callContext(callTimeout)
	resp, err := l.scoring.Score(cctx, l.request(n))
	cancel()
	switch {
	case err != nil:
		l.t.failErr(mScore, err, l.allow(mScore))
	case resp.GetModel().GetVersion() != version:
		l.t.problem("ActivateModel %s returned OK, then Score was served by %s", version, resp.GetModel().GetVersion())
	default:
		l.t.add(mScore, 1)
		l.t.event("active=%s", version)
	}
}

func (l *load) upload(version string, data []byte) error {
	cctx, cancel := context.WithTimeout(l.admin(context.Background()), adminTimeout)
	defer cancel()
	stream, err := l.models.UploadModel(cctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	meta := &churnv1.UploadMetadata{Version: version, Sha256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(data))}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: meta}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for off := 0; off < len(data); off += chunkSize {
		chunk := data[off:min(off+chunkSize, len(data))]
		if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: chunk}}); err != nil {
			break // io.EOF: CloseAndRecv says why
		}
	}
	info, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if info.GetVersion() != version {
		return fmt.Errorf("upload of %s stored %s", version, info.GetVersion())
	}
	return nil
}

// variant is the default bundle under another version: the same model, a distinct bundle
// (check vectors do not depend on the version).
func variant(version string) ([]byte, error) {
	var raw map[string]any
	if err := json.Unmarshal(defaultBundle, &raw); err != nil {
		return nil, err
	}
	manifest, ok := raw["manifest"].(map[string]any)
	if !ok {
		return nil, errors.New("the default bundle has no manifest object")
	}
	manifest["version"] = version
	return json.Marshal(raw)
}
