// Package config holds churnd's configuration: its defaults, the flags with their environment
// twins (flag --grpc-addr, variable CHURN_GRPC_ADDR), and validation that names the bad field.
// Parse takes the arguments and a getenv function, so tests set no real environment. A flag given
// on the command line wins over its environment variable, which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is everything churnd can be told.
type Config struct {
	GRPCAddr      string        // gRPC listen address
	HTTPAddr      string        // HTTP listen address for the HTTP/JSON API, /metrics, /healthz and /readyz
	ModelDir      string        // directory of model bundles; empty: the embedded default model
	ModelVersion  string        // version to activate among the loaded ones; empty: the newest
	MaxBatch      int           // most requests in one ScoreBatch call
	MaxRecvBytes  int           // largest gRPC message accepted
	ShutdownGrace time.Duration // how long in-flight calls may take to finish on shutdown
	LogFormat     string        // json or text
	LogLevel      slog.Level

	RulesFile       string        // early-warning and retention rules (YAML); empty: the defaults
	RedisAddrs      []string      // Redis addresses; empty: the in-process cache
	RedisMasterName string        // Sentinel master name; set: the addresses are Sentinels
	RedisUsername   string        // Redis ACL user
	RedisPassword   string        // Redis password
	CacheTTL        time.Duration // how long a customer's score stays cached
	CacheTimeout    time.Duration // longest a cache operation may take before Score goes on without it
	CacheMaxEntries int           // size of the in-process cache

	OutcomeRetentionDays int // UTC days of outcome aggregates kept; older outcomes are refused
	OutcomeMaxKeys       int // idempotency keys of outcomes remembered (first in, first out)

	ModelStore        string        // where uploaded versions live: disk or redis
	StoreDir          string        // the disk model store's directory
	ModelSyncInterval time.Duration // period of the reconcile with the model store
	MaxUploadBytes    int64         // largest model upload
	ModelRetention    int           // uploaded versions the model store keeps (the most recent); 0: all
	ModelOnDemand     int           // stored versions loaded on demand for requests naming them; 0: none
	AdminTokens       []string      // bearer tokens with the admin role (ModelService)
	ScoringTokens     []string      // bearer tokens for scoring; set: scoring needs a token
	TokensFile        string        // file of "<role> <token>" lines, added to the above
	TLSCertFile       string        // PEM certificate (chain) of the gRPC server; set: gRPC over TLS
	TLSKeyFile        string        // PEM private key of TLSCertFile

	// Limits: what one caller, or many, may hold of the process (see internal/server/limits.go).
	GRPCMaxConns          int           // gRPC connections accepted at once; more wait in the listen queue
	GRPCMaxStreamsPerConn int           // HTTP/2 concurrent streams per gRPC connection
	MaxInFlight           int           // unary calls handled at once, server-wide; more are shed
	MaxStreams            int           // streaming calls open at once, server-wide (not uploads); more are shed
	MaxUploads            int           // UploadModel calls open at once; more are shed
	DefaultCallTimeout    time.Duration // deadline of a unary call that came without one
	StreamIdleTimeout     time.Duration // a ScoreStream or UploadModel that sends nothing this long is closed
	GRPCWindowBytes       int           // HTTP/2 flow-control window of a stream (static): what a caller may send unread
	KeepaliveTime         time.Duration // the server pings a connection silent this long
	KeepaliveTimeout      time.Duration // and closes it when the ping is not answered within this
	KeepaliveMinTime      time.Duration // clients pinging more often than this are disconnected
	MaxConnIdle           time.Duration // a connection without calls this long is closed
	MaxConnAge            time.Duration // a connection is asked to go away after this long (±10%)
	MaxConnAgeGrace       time.Duration // and closed this long after that, calls or not
	HTTPMaxConns          int           // connections to --http-addr at once; more wait in the listen queue
	HTTPReadTimeout       time.Duration // longest an HTTP request may take to arrive
	HTTPWriteTimeout      time.Duration // longest an HTTP response may take to write
	HTTPIdleTimeout       time.Duration // an idle keep-alive HTTP connection is closed after this

	// Tracing (internal/tracing): off, that is trace ids in the logs but nothing sampled or
	// exported, unless an OTLP endpoint is set.
	OTLPEndpoint     string  // OTLP collector URL (http://host:4317); empty: no export
	OTLPProtocol     string  // grpc or http/protobuf
	TraceSampleRatio float64 // share of new traces sampled when exporting; callers' decisions are followed
}

// Default returns the defaults, the one place they are written down.
func Default() Config {
	return Config{
		GRPCAddr:      ":50051",
		HTTPAddr:      ":50052",
		MaxBatch:      1000,
		MaxRecvBytes:  16 << 20,
		ShutdownGrace: 15 * time.Second,
		LogFormat:     "json",
		LogLevel:      slog.LevelInfo,

		CacheTTL:        7 * 24 * time.Hour,
		CacheTimeout:    50 * time.Millisecond,
		CacheMaxEntries: 100_000,

		OutcomeRetentionDays: 400,
		OutcomeMaxKeys:       250_000,

		ModelStore:        "disk",
		StoreDir:          "churn-store",
		ModelSyncInterval: 10 * time.Second,
		MaxUploadBytes:    64 << 20,
		ModelRetention:    0,
		ModelOnDemand:     2,

		GRPCMaxConns:          1000,
		GRPCMaxStreamsPerConn: 100,
		MaxInFlight:           500,
		MaxStreams:            500,
		MaxUploads:            2,
		DefaultCallTimeout:    30 * time.Second,
		StreamIdleTimeout:     time.Minute,
		GRPCWindowBytes:       64 << 10,
		KeepaliveTime:         time.Minute,
		KeepaliveTimeout:      20 * time.Second,
		KeepaliveMinTime:      10 * time.Second,
		MaxConnIdle:           5 * time.Minute,
		MaxConnAge:            30 * time.Minute,
		MaxConnAgeGrace:       5 * time.Minute,
		HTTPMaxConns:          100,
		HTTPReadTimeout:       10 * time.Second,
		HTTPWriteTimeout:      30 * time.Second,
		HTTPIdleTimeout:       time.Minute,

		OTLPProtocol:     "grpc",
		TraceSampleRatio: 1,
	}
}

// EnvPrefix is the prefix of every environment twin: --max-batch is CHURN_MAX_BATCH.
const EnvPrefix = "CHURN_"

// EnvName returns the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ErrHelp is returned by Parse when -h or --help was asked for; the usage has been written.
var ErrHelp = flag.ErrHelp

// ErrVersion is returned by Parse when --version was asked for; the caller prints the version.
var ErrVersion = errors.New("version requested")

// Parse reads the configuration from args (without the program name) and the environment.
// Usage and errors are written to out. The result is validated.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("churnd", flag.ContinueOnError)
	fs.SetOutput(out)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address for the HTTP/JSON API (/v1/...), /metrics, /healthz and /readyz")
	fs.StringVar(&c.ModelDir, "model-dir", c.ModelDir, "directory of model bundles (*.json); empty: the embedded default model")
	fs.StringVar(&c.ModelVersion, "model-version", c.ModelVersion, "model version to activate; empty: the newest loaded")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most requests in one ScoreBatch call")
	fs.IntVar(&c.MaxRecvBytes, "max-recv-bytes", c.MaxRecvBytes, "largest gRPC request message in bytes")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time in-flight calls get to finish on shutdown")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.RulesFile, "rules-file", c.RulesFile, "early-warning and retention rules (YAML); empty: the documented defaults")
	fs.Func("redis-addr", "Redis address(es), comma-separated (several: Cluster, or Sentinels with --redis-master-name); empty: the in-process cache", func(v string) error {
		c.RedisAddrs = splitList(v)
		return nil
	})
	fs.StringVar(&c.RedisMasterName, "redis-master-name", c.RedisMasterName, "Sentinel master name (the addresses are then Sentinels)")
	fs.StringVar(&c.RedisUsername, "redis-username", c.RedisUsername, "Redis ACL user name")
	fs.StringVar(&c.RedisPassword, "redis-password", c.RedisPassword, "Redis password (prefer the environment variable)")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", c.CacheTTL, "how long a customer's latest score stays cached")
	fs.DurationVar(&c.CacheTimeout, "cache-timeout", c.CacheTimeout, "longest a cache operation may take; past it Score answers without the cache")
	fs.IntVar(&c.CacheMaxEntries, "cache-max-entries", c.CacheMaxEntries, "customers the in-process cache holds (without --redis-addr)")
	fs.IntVar(&c.OutcomeRetentionDays, "outcome-retention-days", c.OutcomeRetentionDays, "UTC days of outcome figures kept (churn KPIs, live model quality); older outcomes are refused")
	fs.IntVar(&c.OutcomeMaxKeys, "outcome-max-keys", c.OutcomeMaxKeys, "idempotency keys of recorded outcomes remembered (about 60 bytes each); a retry after this many newer outcomes counts again")
	fs.StringVar(&c.ModelStore, "model-store", c.ModelStore, "where uploaded model versions and the active one are kept: disk (--store-dir) or redis (--redis-addr, shared by every replica)")
	fs.StringVar(&c.StoreDir, "store-dir", c.StoreDir, "directory of the disk model store (created if missing)")
	fs.DurationVar(&c.ModelSyncInterval, "model-sync-interval", c.ModelSyncInterval, "period of the safety-net reconcile with the model store (changes from other replicas arrive at once over Redis pub/sub)")
	fs.Int64Var(&c.MaxUploadBytes, "max-upload-bytes", c.MaxUploadBytes, "largest model bundle UploadModel accepts, in bytes")
	fs.IntVar(&c.ModelRetention, "model-retention", c.ModelRetention, "uploaded model versions the model store keeps, the most recently stored; older ones are deleted after an upload, never the active version, the rollback target or --model-version; 0 keeps all")
	fs.IntVar(&c.ModelOnDemand, "model-on-demand", c.ModelOnDemand, "stored model versions a replica loads on demand for requests naming them in model_version, beyond the active version, the rollback target and --model-version (the one loaded longest ago is unloaded first); 0: such requests get FAILED_PRECONDITION")
	fs.Func("admin-tokens", "bearer tokens with the admin role, comma-separated (prefer the environment variable); none: ModelService is disabled", func(v string) error {
		c.AdminTokens = splitList(v)
		return nil
	})
	fs.Func("scoring-tokens", "bearer tokens for ScoringService, comma-separated (prefer the environment variable); none: scoring is open", func(v string) error {
		c.ScoringTokens = splitList(v)
		return nil
	})
	fs.StringVar(&c.TokensFile, "tokens-file", c.TokensFile, `file of "<role> <token>" lines (role admin or scoring), added to --admin-tokens and --scoring-tokens`)
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM certificate (chain) for gRPC over TLS; with --tls-key-file (without both: plaintext, for a mesh or proxy that terminates TLS)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM private key of --tls-cert-file")
	fs.IntVar(&c.GRPCMaxConns, "grpc-max-conns", c.GRPCMaxConns, "gRPC connections accepted at once; further ones wait in the listen queue")
	fs.IntVar(&c.GRPCMaxStreamsPerConn, "grpc-max-streams-per-conn", c.GRPCMaxStreamsPerConn, "concurrent calls (HTTP/2 streams) one gRPC connection may have open")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "unary calls handled at once, server-wide; beyond it calls are refused with RESOURCE_EXHAUSTED, not queued")
	fs.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "streaming calls (ScoreStream, health Watch, reflection) open at once, server-wide; beyond it RESOURCE_EXHAUSTED")
	fs.IntVar(&c.MaxUploads, "max-uploads", c.MaxUploads, "UploadModel calls open at once; beyond it RESOURCE_EXHAUSTED")
	fs.DurationVar(&c.DefaultCallTimeout, "default-call-timeout", c.DefaultCallTimeout, "deadline of a unary call whose client set none")
	fs.DurationVar(&c.StreamIdleTimeout, "stream-idle-timeout", c.StreamIdleTimeout, "a ScoreStream or UploadModel whose client sends nothing for this long is ended with DEADLINE_EXCEEDED")
	fs.IntVar(&c.GRPCWindowBytes, "grpc-window-bytes", c.GRPCWindowBytes, "HTTP/2 flow-control window of a gRPC stream (static): the most a client can send that the server has not read")
	fs.DurationVar(&c.KeepaliveTime, "grpc-keepalive-time", c.KeepaliveTime, "the server pings a gRPC connection that has been silent this long")
	fs.DurationVar(&c.KeepaliveTimeout, "grpc-keepalive-timeout", c.KeepaliveTimeout, "and closes it when the ping is not answered within this")
	fs.DurationVar(&c.KeepaliveMinTime, "grpc-keepalive-min-time", c.KeepaliveMinTime, "clients that send keepalive pings more often than this are disconnected")
	fs.DurationVar(&c.MaxConnIdle, "grpc-max-conn-idle", c.MaxConnIdle, "a gRPC connection without calls for this long is closed")
	fs.DurationVar(&c.MaxConnAge, "grpc-max-conn-age", c.MaxConnAge, "a gRPC connection is asked to go away after this long (±10%), so clients rebalance")
	fs.DurationVar(&c.MaxConnAgeGrace, "grpc-max-conn-age-grace", c.MaxConnAgeGrace, "calls still open that long after the go-away are cut and the connection closed")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", c.HTTPMaxConns, "connections to --http-addr accepted at once; further ones wait in the listen queue")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", c.HTTPReadTimeout, "longest an HTTP request (headers and body) may take to arrive")
	fs.DurationVar(&c.HTTPWriteTimeout, "http-write-timeout", c.HTTPWriteTimeout, "longest an HTTP response may take to write")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", c.HTTPIdleTimeout, "an idle keep-alive HTTP connection is closed after this")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", c.OTLPEndpoint, "OTLP collector to export traces to, a URL: http://host:4317 (plaintext) or https://...; empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else no export (log lines still carry trace ids)")
	fs.StringVar(&c.OTLPProtocol, "otlp-protocol", c.OTLPProtocol, "OTLP transport: grpc (port 4317) or http/protobuf (port 4318; a URL without a path gets /v1/traces); unset: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else grpc")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", c.TraceSampleRatio, "share of new traces sampled and exported (0..1) with --otlp-endpoint; a call carrying a traceparent follows its caller's decision")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: churnd [flags]\n\nEvery flag can also be set by its environment variable, e.g. --grpc-addr by %s.\n\n", EnvName("grpc-addr"))
		fs.PrintDefaults()
	}

	// Environment first, so that flags given on the command line override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return Config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if *showVersion {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.OTLPEndpoint = otlpEndpoint(c.OTLPEndpoint, getenv)
	protocolSet := false
	fs.Visit(func(f *flag.Flag) { protocolSet = protocolSet || f.Name == "otlp-protocol" })
	if !protocolSet {
		c.OTLPProtocol = otelEnv(getenv, c.OTLPProtocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports the first bad field, by its flag name.
func (c Config) Validate() error {
	if err := validAddr(c.GRPCAddr); err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	if err := validAddr(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	if c.MaxBatch < 1 || c.MaxBatch > 100_000 {
		return fmt.Errorf("--max-batch: %d outside 1..100000", c.MaxBatch)
	}
	if c.MaxRecvBytes < 1024 || c.MaxRecvBytes > 1<<30 {
		return fmt.Errorf("--max-recv-bytes: %d outside 1 KiB..1 GiB", c.MaxRecvBytes)
	}
	if c.ShutdownGrace < 0 {
		return fmt.Errorf("--shutdown-grace: %s is negative", c.ShutdownGrace)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("--log-format: %q is neither json nor text", c.LogFormat)
	}
	for _, a := range c.RedisAddrs {
		if err := validAddr(a); err != nil {
			return fmt.Errorf("--redis-addr: %w", err)
		}
	}
	if c.RedisMasterName != "" && len(c.RedisAddrs) == 0 {
		return errors.New("--redis-master-name: needs --redis-addr with the Sentinel addresses")
	}
	if c.CacheTTL < time.Second {
		return fmt.Errorf("--cache-ttl: %s is under 1s", c.CacheTTL)
	}
	if c.CacheTimeout <= 0 || c.CacheTimeout > 10*time.Second {
		return fmt.Errorf("--cache-timeout: %s outside (0, 10s]", c.CacheTimeout)
	}
	if c.OutcomeRetentionDays < 1 || c.OutcomeRetentionDays > 3660 {
		return fmt.Errorf("--outcome-retention-days: %d outside 1..3660", c.OutcomeRetentionDays)
	}
	if c.OutcomeMaxKeys < 1 || c.OutcomeMaxKeys > 100_000_000 {
		return fmt.Errorf("--outcome-max-keys: %d outside 1..100000000", c.OutcomeMaxKeys)
	}
	if c.CacheMaxEntries < 1 {
		return fmt.Errorf("--cache-max-entries: %d is below 1", c.CacheMaxEntries)
	}
	switch c.ModelStore {
	case "disk":
		if c.StoreDir == "" {
			return errors.New("--store-dir: empty; the disk model store needs a directory")
		}
	case "redis":
		if len(c.RedisAddrs) == 0 {
			return errors.New("--model-store: redis needs --redis-addr")
		}
	default:
		return fmt.Errorf("--model-store: %q is neither disk nor redis", c.ModelStore)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("--tls-cert-file: needs --tls-key-file, and the other way round")
	}
	if c.ModelSyncInterval < 100*time.Millisecond {
		return fmt.Errorf("--model-sync-interval: %s is under 100ms", c.ModelSyncInterval)
	}
	if c.MaxUploadBytes < 1024 || c.MaxUploadBytes > 64<<20 {
		return fmt.Errorf("--max-upload-bytes: %d outside 1 KiB..64 MiB", c.MaxUploadBytes)
	}
	if c.ModelRetention < 0 || c.ModelRetention > 10_000 {
		return fmt.Errorf("--model-retention: %d outside 0..10000", c.ModelRetention)
	}
	if c.ModelOnDemand < 0 || c.ModelOnDemand > 16 {
		return fmt.Errorf("--model-on-demand: %d outside 0..16 (each loaded version holds a whole model in memory)", c.ModelOnDemand)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	return c.validateTracing()
}

// otlpEndpoint is the flag's endpoint, else OpenTelemetry's standard variables', the traces-only
// one first; none when OTEL_SDK_DISABLED=true.
func otlpEndpoint(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return ""
	}
	return otelEnv(getenv, "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
}

// otelEnv is the first of OpenTelemetry's variables that is set, else def.
func otelEnv(getenv func(string) string, def string, names ...string) string {
	for _, name := range names {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
	}
	return def
}

// validateTracing checks the OTLP endpoint (a URL with scheme http or https and a host), the
// protocol and the sample ratio.
func (c Config) validateTracing() error {
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil {
			return fmt.Errorf("--otlp-endpoint: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--otlp-endpoint: %q is not a URL like http://127.0.0.1:4317 (http: plaintext, https: TLS)", c.OTLPEndpoint)
		}
	}
	if c.OTLPProtocol != "grpc" && c.OTLPProtocol != "http/protobuf" {
		return fmt.Errorf("--otlp-protocol: %q is neither grpc nor http/protobuf", c.OTLPProtocol)
	}
	if !(c.TraceSampleRatio >= 0 && c.TraceSampleRatio <= 1) {
		return fmt.Errorf("--trace-sample-ratio: %v outside 0..1", c.TraceSampleRatio)
	}
	return nil
}

// validateLimits checks the limits: each bounds a resource, so none may be zero (unlimited).
func (c Config) validateLimits() error {
	for _, n := range []struct {
		flag      string
		v, lo, hi int
	}{
		{"--grpc-max-conns", c.GRPCMaxConns, 1, 1_000_000},
		{"--grpc-max-streams-per-conn", c.GRPCMaxStreamsPerConn, 1, 100_000},
		{"--max-in-flight", c.MaxInFlight, 1, 1_000_000},
		{"--max-streams", c.MaxStreams, 1, 1_000_000},
		{"--max-uploads", c.MaxUploads, 1, 64},
		{"--grpc-window-bytes", c.GRPCWindowBytes, 64 << 10, 16 << 20},
		{"--http-max-conns", c.HTTPMaxConns, 1, 1_000_000},
	} {
		if n.v < n.lo || n.v > n.hi {
			return fmt.Errorf("%s: %d outside %d..%d", n.flag, n.v, n.lo, n.hi)
		}
	}
	for _, d := range []struct {
		flag      string
		v, lo, hi time.Duration
	}{
		{"--default-call-timeout", c.DefaultCallTimeout, time.Millisecond, time.Hour},
		{"--stream-idle-timeout", c.StreamIdleTimeout, time.Millisecond, 24 * time.Hour},
		// gRPC raises a keepalive time under 1s to 1s; refuse it rather than change it silently.
		{"--grpc-keepalive-time", c.KeepaliveTime, time.Second, 24 * time.Hour},
		{"--grpc-keepalive-timeout", c.KeepaliveTimeout, time.Millisecond, time.Hour},
		{"--grpc-keepalive-min-time", c.KeepaliveMinTime, time.Millisecond, 24 * time.Hour},
		{"--grpc-max-conn-idle", c.MaxConnIdle, time.Millisecond, 10_000 * time.Hour},
		{"--grpc-max-conn-age", c.MaxConnAge, time.Millisecond, 10_000 * time.Hour},
		{"--grpc-max-conn-age-grace", c.MaxConnAgeGrace, time.Millisecond, 10_000 * time.Hour},
		{"--http-read-timeout", c.HTTPReadTimeout, time.Millisecond, time.Hour},
		{"--http-write-timeout", c.HTTPWriteTimeout, time.Millisecond, time.Hour},
		{"--http-idle-timeout", c.HTTPIdleTimeout, time.Millisecond, 24 * time.Hour},
	} {
		if d.v < d.lo || d.v > d.hi {
			return fmt.Errorf("%s: %s outside %s..%s", d.flag, d.v, d.lo, d.hi)
		}
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func validAddr(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return fmt.Errorf("address %q has no port", addr)
	}
	return nil
}
