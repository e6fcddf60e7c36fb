package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Classes of calls, each with a limit of its own, so that one kind cannot starve another: idle
// streams never take the slots of Score calls, nor uploads those of streams.
const (
	ClassUnary  = "unary"  // every unary call (Score, ScoreBatch, GetScore, ModelService's, health Check)
	ClassStream = "stream" // streaming calls other than uploads (ScoreStream, health Watch, reflection)
	ClassUpload = "upload" // ModelService.UploadModel, which holds up to --max-upload-bytes in memory
)

// LimitsOptions configure Limits. Each bound must be at least 1.
type LimitsOptions struct {
	MaxInFlight int // unary calls handled at once
	MaxStreams  int // streaming calls open at once, uploads not counted
	MaxUploads  int // uploads open at once
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Limits sheds calls over the server-wide bounds with RESOURCE_EXHAUSTED instead of queueing
// them. Its Tap runs as gRPC's tap.ServerInHandle, in the connection's reader, before gRPC makes a
// stream for the call, starts its goroutine or reads its request: a shed call costs a few hundred
// bytes of headers and nothing else. A call's slot is returned when its stream's context ends,
// which gRPC does when the call finishes for any reason (answered, cancelled, reset, its connection
// gone). Shed calls never reach the interceptors: they are counted in churn_grpc_shed_total and
// logged at most once per class and 10 s.
//
// grpc-go has no limit of its own across connections (MaxConcurrentStreams is per connection, and
// NumStreamWorkers only sizes a worker pool), so this is hand-written, over x/sync's semaphore.
type Limits struct {
	classes map[string]*limitClass
	streams atomic.Pointer[map[string]string] // full method → ClassStream or ClassUpload
	logger  *slog.Logger
	logs    throttledLog
	shed    *prometheus.CounterVec
}

type limitClass struct {
	name     string
	limit    int64
	sem      *semaphore.Weighted
	inFlight prometheus.Gauge
	shed     prometheus.Counter
	err      error
}

// NewLimits makes the limits; Classify must then be called with the server's services.
func NewLimits(o LimitsOptions) (*Limits, error) {
	if o.MaxInFlight < 1 || o.MaxStreams < 1 || o.MaxUploads < 1 {
		return nil, fmt.Errorf("server: limits must be at least 1 (in flight %d, streams %d, uploads %d)", o.MaxInFlight, o.MaxStreams, o.MaxUploads)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	f := promauto.With(o.Registerer)
	inFlight := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "churn_grpc_in_flight",
		Help: "gRPC calls being handled, by class (unary, stream, upload); each class is bounded (--max-in-flight, --max-streams, --max-uploads).",
	}, []string{"class"})
	l := &Limits{
		classes: map[string]*limitClass{},
		logger:  o.Logger,
		logs:    throttledLog{every: 10 * time.Second},
		shed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "churn_grpc_shed_total",
			Help: "gRPC calls refused with RESOURCE_EXHAUSTED because their class was at its limit, by class.",
		}, []string{"class"}),
	}
	for _, c := range []struct {
		name, flag string
		limit      int
	}{
		{ClassUnary, "--max-in-flight", o.MaxInFlight},
		{ClassStream, "--max-streams", o.MaxStreams},
		{ClassUpload, "--max-uploads", o.MaxUploads},
	} {
		l.classes[c.name] = &limitClass{
			name:     c.name,
			limit:    int64(c.limit),
			sem:      semaphore.NewWeighted(int64(c.limit)),
			inFlight: inFlight.WithLabelValues(c.name),
			shed:     l.shed.WithLabelValues(c.name),
			err: status.Errorf(codes.ResourceExhausted, "the server is at its limit of %d %s calls at once (%s); retry with backoff",
				c.limit, c.name, c.flag),
		}
	}
	return l, nil
}

// Classify tells the limits which methods stream, from the services registered on the server
// (grpc.Server.GetServiceInfo). Call it before Serve; until then every call counts as unary.
func (l *Limits) Classify(services map[string]grpc.ServiceInfo) {
	streams := map[string]string{}
	for svc, info := range services {
		for _, m := range info.Methods {
			if m.IsClientStream || m.IsServerStream {
				streams["/"+svc+"/"+m.Name] = ClassStream
			}
		}
	}
	if _, ok := streams[churnv1.ModelService_UploadModel_FullMethodName]; ok {
		streams[churnv1.ModelService_UploadModel_FullMethodName] = ClassUpload
	}
	l.streams.Store(&streams)
}

// class returns the class of a method.
func (l *Limits) class(method string) *limitClass {
	if m := l.streams.Load(); m != nil {
		if c, ok := (*m)[method]; ok {
			return l.classes[c]
		}
	}
	return l.classes[ClassUnary]
}

// Tap takes a slot of the call's class, or refuses the call with RESOURCE_EXHAUSTED when there
// is none. It never blocks. Install it with grpc.InTapHandle.
func (l *Limits) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	c := l.class(info.FullMethodName)
	if !c.sem.TryAcquire(1) {
		c.shed.Inc()
		if ok, suppressed := l.logs.allow(c.name); ok {
			l.logger.Warn("calls shed: the server is at its limit", "class", c.name, "limit", c.limit, "suppressed_since_last", suppressed)
		}
		return ctx, c.err
	}
	c.inFlight.Inc()
	context.AfterFunc(ctx, func() {
		c.inFlight.Dec()
		c.sem.Release(1)
	})
	return ctx, nil
}

// DefaultDeadline gives a unary call whose client sent no deadline one of d, so that no call can
// run forever. Streams have none (a ScoreStream may rightly last long); they end when idle (see
// receiver) and with their connection's maximum age.
func DefaultDeadline(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); ok {
			return handler(ctx, req)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return handler(ctx, req)
	}
}

// DefaultStreamIdleTimeout is the idle timeout of a stream when the options leave it zero.
const DefaultStreamIdleTimeout = time.Minute

// errIdle is the error of a stream whose client sent nothing for the idle timeout.
func errIdle(idle time.Duration) error {
	return status.Errorf(codes.DeadlineExceeded, "no message for %s: the stream is closed (half-close a stream when done sending)", idle)
}

// receiver receives a stream's messages in a goroutine of its own, so that the handler can give
// up on a client that sends nothing for the idle timeout: gRPC's Recv cannot be interrupted
// otherwise. It receives only when the handler asks (next), never ahead of it, so a stream holds
// no more unread input than gRPC's flow-control window. The goroutine ends when the stream does,
// which gRPC ensures once the handler has returned.
type receiver[T any] struct {
	ctx   context.Context
	idle  time.Duration
	want  chan struct{}
	msgs  chan received[T]
	timer *time.Timer
}

type received[T any] struct {
	msg *T
	err error
}

// receive starts receiving with recv, a stream's Recv, until ctx, the stream's context, ends.
func receive[T any](ctx context.Context, recv func() (*T, error), idle time.Duration) *receiver[T] {
	r := &receiver[T]{ctx: ctx, idle: idle, want: make(chan struct{}, 1), msgs: make(chan received[T])}
	go func() {
		for {
			select {
			case <-r.want:
			case <-ctx.Done():
				return
			}
			msg, err := recv()
			select {
			case r.msgs <- received[T]{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// next returns the next message, or Recv's error (io.EOF at the end), or a DEADLINE_EXCEEDED
// status once the idle timeout passes without a message, or the status of the stream's context
// once it ends (the receiving goroutine may then have left without a word). After an error the
// handler returns; next is not called again.
func (r *receiver[T]) next() (*T, error) {
	r.want <- struct{}{} // never blocks: the last request was answered before next returned
	if r.timer == nil {
		r.timer = time.NewTimer(r.idle)
	} else {
		r.timer.Reset(r.idle)
	}
	select {
	case m := <-r.msgs:
		return m.msg, m.err
	case <-r.timer.C:
		return nil, errIdle(r.idle)
	case <-r.ctx.Done():
		return nil, status.FromContextError(r.ctx.Err()).Err()
	}
}

// stop releases the timer; the receiving goroutine ends with the stream.
func (r *receiver[T]) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// appendChunk appends an upload's chunk to the bytes received so far. The buffer doubles as bytes
// arrive, so it follows what was received, never what was announced: a client announcing 64 MiB
// and sending nothing costs nothing. The announced size only caps the growth, so that a complete
// upload holds its size once rather than up to twice.
func appendChunk(data, chunk []byte, announced int64) []byte {
	if need := len(data) + len(chunk); need > cap(data) {
		c := max(2*cap(data), need)
		if announced > int64(need) && int64(c) > announced {
			c = int(announced)
		}
		grown := make([]byte, len(data), c)
		copy(grown, data)
		data = grown
	}
	return append(data, chunk...)
}
