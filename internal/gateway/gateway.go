// Package gateway serves churnd's HTTP/JSON API beside gRPC. The routes and the JSON mapping are
// generated from the proto's google.api.http annotations by grpc-gateway
// (api/churn/v1/*.pb.gw.go); this package only wires them up. Every HTTP call becomes a gRPC call
// over an in-process connection (grpc-go's bufconn) to a gRPC server that the app builds with the
// same interceptors as the public one, so an HTTP call gets the same validation, auth (the
// Authorization header travels as the authorization metadata), limits, metrics and logs, and its
// error comes back as the google.rpc.Status JSON with the same details, BadRequest included.
//
// Request bodies are bounded here, before any JSON is decoded: MaxUploadBodyBytes for
// ModelService.UploadModel, MaxBodyBytes for the rest; a larger body is refused with
// RESOURCE_EXHAUSTED (HTTP 413).
//
// The gRPC metrics count every call that reaches the server; churn_http_api_requests_total
// counts every HTTP request by method and status code, also those refused before a gRPC call
// (malformed JSON, an unknown route, a body over its limit).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// UploadPath is the route of ModelService.UploadModel (models.proto), whose body is bounded by
// MaxUploadBodyBytes instead of MaxBodyBytes.
const UploadPath = "/v1/models:upload"

// JSONOptions are the protojson options of every JSON response (and of churnctl's --json): field
// names in lowerCamelCase as protojson writes them, and fields at their zero value written out, so
// that a probability of 0 or a from_cache of false is visible.
var JSONOptions = protojson.MarshalOptions{EmitUnpopulated: true}

// Options configure a Gateway.
type Options struct {
	// MaxBodyBytes bounds the body of every call but uploads.
	MaxBodyBytes int64
	// MaxUploadBodyBytes bounds the body of an upload: the JSON of its messages, the bundle's bytes
	// in base64.
	MaxUploadBodyBytes int64
	// MaxRecvBytes bounds a response message the gateway reads from the gRPC server.
	MaxRecvBytes int
	// Registerer takes the gateway's metrics; nil: a registry of its own.
	Registerer prometheus.Registerer
}

// Gateway is the HTTP handler of the API and the in-process connection it calls through. Serve
// the gRPC server that backs it on Listener.
type Gateway struct {
	lis     *bufconn.Listener
	conn    *grpc.ClientConn
	handler http.Handler
	opts    Options
}

// New makes the in-process listener, the client connection to it and the HTTP handler. Nothing
// answers until a gRPC server serves Listener.
func New(o Options) (*Gateway, error) {
	if o.MaxBodyBytes < 1 || o.MaxUploadBodyBytes < 1 || o.MaxRecvBytes < 1 {
		return nil, fmt.Errorf("gateway: limits must be at least 1 (body %d, upload body %d, recv %d)", o.MaxBodyBytes, o.MaxUploadBodyBytes, o.MaxRecvBytes)
	}
	g := &Gateway{lis: bufconn.Listen(256 << 10), opts: o}
	conn, err := grpc.NewClient("passthrough:///churnd-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return g.lis.DialContext(ctx) }),
		// In memory: nothing leaves the process, so there is nothing to encrypt.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.MaxRecvBytes)),
	)
	if err != nil {
		g.lis.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.conn = conn

	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, bodyMarshaler{&runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions: JSONOptions,
			// Unknown fields are refused, as a misspelt field must not be scored as missing.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}}),
		runtime.WithErrorHandler(errorHandler),
		// W3C trace context travels on as gRPC metadata, so that a call's span continues the
		// HTTP client's trace; the Authorization header always does (grpc-gateway's rule).
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			switch k := strings.ToLower(key); k {
			case "traceparent", "tracestate", "baggage":
				return k, true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithStreamErrorHandler(func(ctx context.Context, err error) *status.Status {
			return status.Convert(bodyError(ctx, err))
		}),
	)
	ctx := context.Background()
	if err := churnv1.RegisterScoringServiceHandler(ctx, mux, conn); err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := churnv1.RegisterModelServiceHandler(ctx, mux, conn); err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := churnv1.RegisterOutcomeServiceHandler(ctx, mux, conn); err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	requests := promauto.With(o.Registerer).NewCounterVec(prometheus.CounterOpts{
		Name: "churn_http_api_requests_total",
		Help: "Requests to the HTTP/JSON API (/v1/...) by method and HTTP status code, also those refused before they became a gRPC call.",
	}, []string{"method", "code"})
	g.handler = promhttp.InstrumentHandlerCounter(requests, http.HandlerFunc(g.serve(mux)))
	return g, nil
}

// Listener is the in-process listener the gateway dials.
func (g *Gateway) Listener() net.Listener { return g.lis }

// Close closes the client connection and the listener.
func (g *Gateway) Close() error {
	return errors.Join(g.conn.Close(), g.lis.Close())
}

// ServeHTTP counts the request (churn_http_api_requests_total, also when its body is refused
// here) and serves it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// serve bounds the body and hands the request to grpc-gateway's mux.
func (g *Gateway) serve(mux http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		limit := g.opts.MaxBodyBytes
		if r.URL.Path == UploadPath {
			limit = g.opts.MaxUploadBodyBytes
		}
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		// ScoreStream answers while it reads: without full duplex, net/http may close an HTTP/1.1
		// request's body once the response has been flushed, cutting a long stream short. HTTP/2
		// is full duplex already (the call then fails, which changes nothing).
		_ = http.NewResponseController(w).EnableFullDuplex()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		lb := &limitedBody{r: http.MaxBytesReader(w, r.Body, limit), limit: limit, cancel: cancel}
		r.Body = lb
		mux.ServeHTTP(w, r.WithContext(context.WithValue(ctx, bodyKey{}, lb)))
	}
}

type bodyKey struct{}

// limitedBody is a body cut at limit that remembers having been cut or holding malformed JSON,
// so that the error handlers can tell a body over the limit (RESOURCE_EXHAUSTED) from malformed
// JSON (INVALID_ARGUMENT). On either it cancels the call: grpc-gateway reads a stream's body in a
// goroutine of its own and, on a decoding error, only half-closes the stream, which the server
// would take for the end of a good body (a cut or malformed body answered 200 with what came
// before it). The fields are atomic for that goroutine.
type limitedBody struct {
	r      io.ReadCloser
	limit  int64
	cancel context.CancelFunc
	over   atomic.Bool
	bad    atomic.Pointer[string]
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.over.Store(true)
		b.cancel()
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }

// malformed records a decoding error of the body and cancels the call.
func (b *limitedBody) malformed(err error) {
	msg := err.Error()
	b.bad.CompareAndSwap(nil, &msg)
	b.cancel()
}

// bodyError replaces err by RESOURCE_EXHAUSTED when the request's body went over its limit, and
// by INVALID_ARGUMENT when a message of it was malformed.
func bodyError(ctx context.Context, err error) error {
	b, ok := ctx.Value(bodyKey{}).(*limitedBody)
	switch {
	case !ok:
		return err
	case b.over.Load():
		return bodyTooLarge(b.limit)
	case b.bad.Load() != nil:
		return status.Errorf(codes.InvalidArgument, "request body: %s", bundle.Clip(*b.bad.Load()))
	}
	return err
}

// bodyMarshaler is grpc-gateway's marshaler whose decoders report a malformed message of the
// request's body to it (limitedBody.malformed).
type bodyMarshaler struct{ runtime.Marshaler }

func (m bodyMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	dec := m.Marshaler.NewDecoder(r)
	b, ok := r.(*limitedBody)
	if !ok {
		return dec
	}
	return runtime.DecoderFunc(func(v any) error {
		err := dec.Decode(v)
		if err != nil && !errors.Is(err, io.EOF) && !b.over.Load() {
			b.malformed(err)
		}
		return err
	})
}

func bodyTooLarge(limit int64) error {
	return status.Errorf(codes.ResourceExhausted, "request body: over the limit of %d bytes", limit)
}

// errorHandler is grpc-gateway's, with a body over its limit answered 413 instead of 400.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if e := bodyError(r.Context(), err); e != err && status.Code(e) == codes.ResourceExhausted {
		w.Header().Set("Content-Type", m.ContentType(nil))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		out, merr := m.Marshal(status.Convert(e).Proto())
		if merr == nil {
			w.Write(out)
		}
		return
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// writeTooLarge answers a request whose Content-Length is over limit without reading it.
func writeTooLarge(w http.ResponseWriter, limit int64) {
	out, err := JSONOptions.Marshal(status.Convert(bodyTooLarge(limit)).Proto())
	if err != nil {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	w.Write(out)
}
