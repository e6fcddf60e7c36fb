// Package app builds every part of churnd from a Config, runs the gRPC and HTTP servers, and stops
// them in reverse order on shutdown: health goes NOT_SERVING, in-flight calls get the grace
// period to finish, then the listeners close. Nothing here is global, so two apps can run in one
// process (the tests do).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/drift"
	"github.com/churnhq/churn/internal/gateway"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/outcomes"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/internal/retention"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/internal/tracing"
)

// App is a built churnd, listening but not yet serving until Run.
type App struct {
	cfg      config.Config
	logger   *slog.Logger
	store    *modelstore.Store
	registry *registry.Registry
	grpc     *grpc.Server
	inproc   *grpc.Server // backs the HTTP/JSON API (internal/gateway); in memory, no listener
	gateway  *gateway.Gateway
	health   *health.Server
	http     *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	shutting atomic.Bool
	cleanups []func()
}

// New loads the models, builds the servers and opens the listeners. On error, everything made so
// far is closed again.
func New(cfg config.Config, logger *slog.Logger, reg *prometheus.Registry) (_ *App, err error) {
	// Every line logged with a call's context carries its trace id, span id and peer.
	logger = slog.New(tracing.LogHandler(logger.Handler()))
	a := &App{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			a.cleanup()
		}
	}()

	models, err := loadModels(cfg.ModelDir)
	if err != nil {
		return nil, err
	}
	// --model-version may name a bundle loaded here or a version in the model store, which the
	// registry loads below.
	a.store, err = modelstore.New(models, activeAmong(models, cfg.ModelVersion))
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	for _, m := range a.store.List() {
		logger.Info("model loaded", "name", m.Name(), "version", m.Version(), "origin", m.Origin,
			"type", m.Type(), "inputs", m.NumInputs(), "columns", m.Width())
	}
	logActive(logger, a.store.List(), a.store.Active(), cfg.ModelVersion)
	var redisClient redis.UniversalClient
	if len(cfg.RedisAddrs) > 0 {
		redisClient = redis.NewUniversalClient(redisOptions(cfg, cfg.CacheTimeout))
		a.onCleanup(func() { redisClient.Close() })
	}
	if a.registry, err = a.newRegistry(cfg, reg); err != nil {
		return nil, err
	}
	tokens, err := loadTokens(cfg)
	if err != nil {
		return nil, err
	}

	rules := retention.DefaultRules()
	if cfg.RulesFile != "" {
		if rules, err = retention.LoadRules(cfg.RulesFile); err != nil {
			return nil, fmt.Errorf("--rules-file: %w", err)
		}
	}
	scoreCache, err := a.newCache(cfg, redisClient, reg)
	if err != nil {
		return nil, err
	}

	probabilities, err := drift.New(a.store, reg)
	if err != nil {
		return nil, err
	}
	scoring, err := server.New(server.Options{
		Models:            a.store,
		Loader:            a.registry,
		Cache:             scoreCache,
		Probabilities:     probabilities,
		Rules:             &rules,
		MaxBatch:          cfg.MaxBatch,
		Logger:            logger.With("component", "server"),
		Registerer:        reg,
		StreamIdleTimeout: cfg.StreamIdleTimeout,
	})
	if err != nil {
		return nil, err
	}
	modelService, err := server.NewModelService(server.ModelServiceOptions{
		Registry:          ModelRegistry(a.registry),
		MaxUploadBytes:    cfg.MaxUploadBytes,
		StreamIdleTimeout: cfg.StreamIdleTimeout,
		Logger:            logger.With("component", "models"),
	})
	if err != nil {
		return nil, err
	}
	var outcomeRedis *outcomes.RedisOptions
	if redisClient != nil {
		// A client of its own: a report reads up to --outcome-retention-days hashes in one round
		// trip, longer than the score cache's --cache-timeout allows.
		opts := redisOptions(cfg, outcomes.RedisTimeout)
		// No command retry: a retry of the record-once script whose reply was lost would answer
		// "duplicate" to the first submission; the caller retries on UNAVAILABLE instead.
		opts.MaxRetries = -1
		outcomeClient := redis.NewUniversalClient(opts)
		a.onCleanup(func() { outcomeClient.Close() })
		outcomeRedis = &outcomes.RedisOptions{Client: outcomeClient}
	}
	outcomeStore, err := outcomes.New(outcomes.Options{
		Redis:         outcomeRedis,
		Scores:        scoreCache,
		HorizonMonths: rules.ExpectedLoss.HorizonMonths,
		RetentionDays: cfg.OutcomeRetentionDays,
		MaxKeys:       cfg.OutcomeMaxKeys,
		Registerer:    reg,
		GaugeVersions: a.servedVersion,
	})
	if err != nil {
		return nil, err
	}
	outcomeService, err := server.NewOutcomeService(server.OutcomeServiceOptions{
		Store:    outcomeStore,
		MaxBatch: cfg.MaxBatch,
		Logger:   logger.With("component", "outcomes"),
	})
	if err != nil {
		return nil, err
	}
	var serverOpts []grpc.ServerOption
	if cfg.TLSCertFile != "" {
		creds, err := credentials.NewServerTLSFromFile(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file, --tls-key-file: %w", err)
		}
		serverOpts = append(serverOpts, grpc.Creds(creds))
	} else if len(cfg.AdminTokens)+len(cfg.ScoringTokens) > 0 || cfg.TokensFile != "" {
		logger.Warn("bearer tokens are configured but gRPC is plaintext: terminate TLS in front of churnd or set --tls-cert-file")
	}
	traces, err := a.newTracing(cfg, reg)
	if err != nil {
		return nil, err
	}
	// Both gRPC servers trace, the public one and the one behind the HTTP/JSON API.
	traced := grpc.StatsHandler(traces.ServerHandler())
	a.health = health.NewServer()
	if a.grpc, a.inproc, err = newGRPCServers(cfg, logger.With("component", "grpc"), reg, tokens, scoring, modelService, outcomeService, a.health, []grpc.ServerOption{traced}, serverOpts...); err != nil {
		return nil, err
	}
	if a.gateway, err = gateway.New(gateway.Options{
		MaxBodyBytes: 2 * int64(cfg.MaxRecvBytes),
		// base64 makes 4 bytes of 3; the rest is room for the metadata and the JSON around it.
		MaxUploadBodyBytes: cfg.MaxUploadBytes/3*4 + 1<<20,
		MaxRecvBytes:       max(cfg.MaxRecvBytes, 64<<20),
		Registerer:         reg,
	}); err != nil {
		return nil, err
	}
	a.onCleanup(func() { a.gateway.Close() })
	a.health.SetServingStatus(churnv1.ScoringService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	a.health.SetServingStatus(churnv1.ModelService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	a.health.SetServingStatus(churnv1.OutcomeService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	a.http = &http.Server{
		Handler:           a.httpHandler(reg),
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}

	// Both listeners hold at most their limit of connections, so that a flood of idle ones on
	// one port cannot take the process's file descriptors from the other (or from Redis and the
	// model store). Connections over the limit wait in the kernel's listen queue, not in churnd.
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("--grpc-addr: %w", err)
	}
	a.grpcLis = netutil.LimitListener(lis, cfg.GRPCMaxConns)
	a.onCleanup(func() { a.grpcLis.Close() })
	if lis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	a.httpLis = netutil.LimitListener(lis, cfg.HTTPMaxConns)
	a.onCleanup(func() { a.httpLis.Close() })
	return a, nil
}

// servedVersion is the model version served here, the one whose live quality is exported as
// gauges (empty when none is active).
func (a *App) servedVersion() []string {
	if m := a.store.Active(); m != nil {
		return []string{m.Version()}
	}
	return nil
}

// newCache uses Redis when --redis-addr is set, else makes the in-process cache, and closes it at
// cleanup (the Redis cache before its client, which was made first). Redis being down at start-up
// is not fatal: scoring fails open and caching resumes when it is back.
func (a *App) newCache(cfg config.Config, client redis.UniversalClient, reg prometheus.Registerer) (server.ScoreCache, error) {
	if client == nil {
		a.logger.Info("score cache in process", "max_entries", cfg.CacheMaxEntries, "ttl", cfg.CacheTTL.String())
		c := cache.NewMemory(cache.MemoryOptions{MaxEntries: cfg.CacheMaxEntries, TTL: cfg.CacheTTL})
		a.onCleanup(func() { c.Close() })
		return c, nil
	}
	c, err := cache.NewRedis(cache.RedisOptions{
		Client:     client,
		TTL:        cfg.CacheTTL,
		Timeout:    cfg.CacheTimeout,
		Registerer: reg,
		Logger:     a.logger.With("component", "cache"),
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	a.onCleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		a.logger.Warn("redis unreachable at start-up; scoring goes on and caching starts when it answers", "addrs", cfg.RedisAddrs, "err", err)
	} else {
		a.logger.Info("score cache in redis", "addrs", cfg.RedisAddrs, "ttl", cfg.CacheTTL.String())
	}
	return c, nil
}

// newTracing builds the tracer provider, exporting to --otlp-endpoint when it is set, and shuts it
// down at cleanup (after the gRPC server has stopped), giving the spans still queued a few seconds
// to reach the collector.
func (a *App) newTracing(cfg config.Config, reg prometheus.Registerer) (*tracing.Provider, error) {
	p, err := tracing.New(context.Background(), tracing.Options{Endpoint: cfg.OTLPEndpoint, Protocol: cfg.OTLPProtocol, SampleRatio: cfg.TraceSampleRatio, Registerer: reg})
	if err != nil {
		return nil, err
	}
	a.onCleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracerShutdownTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			a.logger.Warn("tracing: spans still queued at shutdown were not all exported", "err", err)
		}
	})
	if p.Exporting() {
		a.logger.Info("tracing: exporting spans over OTLP", "otlp_endpoint", cfg.OTLPEndpoint, "otlp_protocol", cfg.OTLPProtocol, "sample_ratio", cfg.TraceSampleRatio)
	} else {
		a.logger.Info("tracing: trace ids in the logs, no spans exported (set --otlp-endpoint to export them)")
	}
	return p, nil
}

// tracerShutdownTimeout bounds the export of the spans still queued at shutdown.
const tracerShutdownTimeout = 5 * time.Second

// newRegistry opens the model store (a directory, or Redis shared by the replicas) and syncs the
// model store with it, so that a version activated before a restart, or on another replica, is
// the active one here.
func (a *App) newRegistry(cfg config.Config, reg prometheus.Registerer) (*registry.Registry, error) {
	var backend registry.Backend
	switch cfg.ModelStore {
	case "redis":
		if len(cfg.RedisAddrs) == 0 {
			return nil, errors.New("--model-store: redis needs --redis-addr")
		}
		// A client of its own: the score cache's socket timeouts (--cache-timeout, 50ms) would cut
		// a bundle of megabytes in half. Every call carries its own deadline instead.
		client := redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:                 cfg.RedisAddrs,
			MasterName:            cfg.RedisMasterName,
			Username:              cfg.RedisUsername,
			Password:              cfg.RedisPassword,
			DialTimeout:           2 * time.Second,
			ReadTimeout:           time.Minute,
			WriteTimeout:          time.Minute,
			ContextTimeoutEnabled: true,
		})
		a.onCleanup(func() { client.Close() })
		b, err := registry.NewRedisBackend(registry.RedisBackendOptions{Client: client, Logger: a.logger.With("component", "registry")})
		if err != nil {
			return nil, err
		}
		backend = b
	default:
		d, err := registry.OpenDisk(cfg.StoreDir)
		if err != nil {
			return nil, fmt.Errorf("--store-dir: %w", err)
		}
		backend = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := registry.New(ctx, registry.Options{
		Backend:      backend,
		Store:        a.store,
		Reconcile:    cfg.ModelSyncInterval,
		ModelVersion: cfg.ModelVersion,
		OnDemand:     cfg.ModelOnDemand,
		Retention:    cfg.ModelRetention,
		Logger:       a.logger.With("component", "registry"),
		Registerer:   reg,
	})
	if err != nil {
		return nil, err
	}
	if v := cfg.ModelVersion; v != "" {
		if _, ok := a.store.Get(v); !ok {
			err := fmt.Errorf("--model-version: %q is neither a bundle loaded here (--model-dir or the embedded default) nor a version in the model store (%s)", v, backend.Name())
			if serr := r.Replica().SyncErr; serr != nil {
				err = fmt.Errorf("%w, which could not be read: %v", err, serr)
			}
			return nil, err
		}
	}
	active := a.store.Active()
	a.logger.Info("model store", "backend", backend.Name(), "active", active.Version())
	if cfg.ModelVersion != "" && cfg.ModelVersion != active.Version() {
		a.logger.Warn("--model-version is overridden by the version activated through the model store; activate it there to change it",
			"model_version", cfg.ModelVersion, "active", active.Version())
	}
	return r, nil
}

// loadTokens gathers the bearer tokens of the flags and of --tokens-file.
func loadTokens(cfg config.Config) (*server.Tokens, error) {
	admin, scoring := cfg.AdminTokens, cfg.ScoringTokens
	if cfg.TokensFile != "" {
		f, err := os.Open(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		defer f.Close()
		fa, fsc, err := server.ParseTokens(f)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file %s: %w", cfg.TokensFile, err)
		}
		admin, scoring = append(append([]string(nil), admin...), fa...), append(append([]string(nil), scoring...), fsc...)
	}
	t, err := server.NewTokens(admin, scoring)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return t, nil
}

// newGRPCServers makes the public gRPC server and the in-process one behind the HTTP/JSON API.
// Both chain the interceptors metrics → logging → recovery → auth → default deadline, so that
// panics and refusals are logged and counted, share the limits of calls (the flags of config's
// Limits block), have both (tracing) and register the scoring and model services; the public one
// also has the connection limits, opts (TLS), health and reflection.
func newGRPCServers(cfg config.Config, logger *slog.Logger, reg prometheus.Registerer, tokens *server.Tokens, scoring *server.Server, models *server.ModelService, outcomeSrv *server.OutcomeService, healthSrv *health.Server, both []grpc.ServerOption, opts ...grpc.ServerOption) (public, inproc *grpc.Server, err error) {
	limits, err := server.NewLimits(server.LimitsOptions{
		MaxInFlight: cfg.MaxInFlight,
		MaxStreams:  cfg.MaxStreams,
		MaxUploads:  cfg.MaxUploads,
		Logger:      logger,
		Registerer:  reg,
	})
	if err != nil {
		return nil, nil, err
	}
	metrics := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace("churn")),
		grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramNamespace("churn"),
			grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
		),
	)
	reg.MustRegister(metrics)
	logU, logS := server.Logging(logger)
	recU, recS := server.Recovery(logger)
	authU, authS := server.Auth(tokens)
	shared := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.InTapHandle(limits.Tap),
		// Static windows: with gRPC's default dynamic ones (BDP estimation) a stream's window
		// grows to 16 MiB, and that much of what a client sends can sit unread in the server.
		// The connection's window is only returned on receipt, so it bounds no memory; it is
		// larger so that a connection's streams do not wait on each other.
		grpc.StaticStreamWindowSize(int32(cfg.GRPCWindowBytes)),
		grpc.StaticConnWindowSize(int32(16 * cfg.GRPCWindowBytes)),
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor(), logU, recU, authU, server.DefaultDeadline(cfg.DefaultCallTimeout)),
		grpc.ChainStreamInterceptor(metrics.StreamServerInterceptor(), logS, recS, authS),
	}, both...)
	// The in-process server has one connection, the gateway's: the per-connection limits and
	// keepalives of the public one would make it a bottleneck for every HTTP client at once.
	// The HTTP port has its own connection limit (--http-max-conns).
	inproc = grpc.NewServer(shared...)
	churnv1.RegisterScoringServiceServer(inproc, scoring)
	churnv1.RegisterModelServiceServer(inproc, models)
	churnv1.RegisterOutcomeServiceServer(inproc, outcomeSrv)
	srv := grpc.NewServer(append(append(shared,
		grpc.MaxConcurrentStreams(uint32(cfg.GRPCMaxStreamsPerConn)),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     cfg.MaxConnIdle,
			MaxConnectionAge:      cfg.MaxConnAge,
			MaxConnectionAgeGrace: cfg.MaxConnAgeGrace,
			Time:                  cfg.KeepaliveTime,
			Timeout:               cfg.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: true}),
	), opts...)...)
	churnv1.RegisterScoringServiceServer(srv, scoring)
	churnv1.RegisterModelServiceServer(srv, models)
	churnv1.RegisterOutcomeServiceServer(srv, outcomeSrv)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)
	limits.Classify(srv.GetServiceInfo())
	metrics.InitializeMetrics(srv)
	return srv, inproc, nil
}

func (a *App) httpHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	// The HTTP/JSON API: every route under /v1/ (proto/churn/v1, google.api.http annotations).
	mux.Handle("/v1/", a.gateway)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	health := func(w http.ResponseWriter, _ *http.Request) {
		if a.shutting.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if a.store.Active() == nil {
			http.Error(w, "no active model", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("GET /healthz", health)
	// Ready also needs this replica to serve the model store's active version: one that cannot
	// would answer with another model than the other replicas.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if p := a.registry.Replica().Problem; p != "" && !a.shutting.Load() {
			http.Error(w, "not ready: "+p, http.StatusServiceUnavailable)
			return
		}
		health(w, r)
	})
	return mux
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() net.Addr { return a.grpcLis.Addr() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() net.Addr { return a.httpLis.Addr() }

// Run serves until ctx is cancelled or a server fails, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	defer a.cleanup()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		a.logger.Info("grpc listening", "addr", a.grpcLis.Addr().String())
		err := a.grpc.Serve(a.grpcLis)
		// A stop that came before Serve started (a context cancelled at once) makes Serve
		// return ErrServerStopped: that is the shutdown asked for, not a failure.
		if err != nil && !(errors.Is(err, grpc.ErrServerStopped) && a.shutting.Load()) {
			return fmt.Errorf("grpc server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.inproc.Serve(a.gateway.Listener()); err != nil && !(errors.Is(err, grpc.ErrServerStopped) && a.shutting.Load()) {
			return fmt.Errorf("in-process grpc server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		a.logger.Info("http listening", "addr", a.httpLis.Addr().String())
		if err := a.http.Serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		a.registry.Run(gctx)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	return g.Wait()
}

// shutdown drains: NOT_SERVING first so load balancers stop sending, then a bounded GracefulStop.
func (a *App) shutdown() {
	a.logger.Info("shutting down", "grace", a.cfg.ShutdownGrace.String())
	a.shutting.Store(true)
	a.health.Shutdown()
	done := make(chan struct{})
	go func() {
		// The in-process server drains the HTTP/JSON API's calls alongside.
		var inproc sync.WaitGroup
		inproc.Go(a.inproc.GracefulStop)
		a.grpc.GracefulStop()
		inproc.Wait()
		close(done)
	}()
	timer := time.NewTimer(a.cfg.ShutdownGrace)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		a.logger.Warn("grace period over, cancelling the calls still running")
		a.grpc.Stop()
		a.inproc.Stop()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.http.Shutdown(ctx); err != nil {
		a.logger.Warn("http shutdown", "err", err)
	}
	a.logger.Info("stopped")
}

func (a *App) onCleanup(f func()) { a.cleanups = append(a.cleanups, f) }

// cleanup runs the registered cleanups in reverse order, once.
func (a *App) cleanup() {
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		a.cleanups[i]()
	}
	a.cleanups = nil
}

// redisOptions are the options of a Redis client of churnd's whose operations may take timeout.
func redisOptions(cfg config.Config, timeout time.Duration) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:        cfg.RedisAddrs,
		MasterName:   cfg.RedisMasterName,
		Username:     cfg.RedisUsername,
		Password:     cfg.RedisPassword,
		DialTimeout:  time.Second,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,

		// One dial attempt and one immediate command retry: go-redis's defaults (5 dials 100ms
		// apart, 3 command retries 10ms and more apart) outlast a cache operation's timeout, so
		// a Redis that refuses connections looked like a slow one (DEADLINE_EXCEEDED instead of
		// UNAVAILABLE, and Score waited the whole timeout;
		// TestRedisThatRefusesConnectionsIsUnavailable). The one retry, on a new connection,
		// still heals a pooled connection that a Redis restart broke.
		DialerRetries:   1,
		MaxRetries:      1,
		MinRetryBackoff: -1,
	}
}
