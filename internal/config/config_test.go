package config

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *Config)
	}{
		{name: "defaults", want: func(*Config) {}},
		{
			name: "flags",
			args: []string{"--grpc-addr", "127.0.0.1:6000", "--http-addr=:7000", "--max-batch", "10", "--log-level", "debug", "--shutdown-grace", "2s", "--model-dir", "m", "--model-version", "v1", "--log-format", "text"},
			want: func(c *Config) {
				c.GRPCAddr, c.HTTPAddr, c.MaxBatch, c.LogLevel, c.ShutdownGrace = "127.0.0.1:6000", ":7000", 10, slog.LevelDebug, 2*time.Second
				c.ModelDir, c.ModelVersion, c.LogFormat = "m", "v1", "text"
			},
		},
		{
			name: "environment",
			env:  map[string]string{"CHURN_GRPC_ADDR": ":6001", "CHURN_MAX_BATCH": "7", "CHURN_LOG_LEVEL": "warn"},
			want: func(c *Config) { c.GRPCAddr, c.MaxBatch, c.LogLevel = ":6001", 7, slog.LevelWarn },
		},
		{
			name: "redis",
			args: []string{"--redis-addr", "10.0.0.1:6379, 10.0.0.2:6379", "--redis-master-name", "mymaster", "--cache-ttl", "1h", "--rules-file", "r.yaml"},
			env:  map[string]string{"CHURN_REDIS_PASSWORD": "s3cret"},
			want: func(c *Config) {
				c.RedisAddrs, c.RedisMasterName, c.CacheTTL, c.RulesFile = []string{"10.0.0.1:6379", "10.0.0.2:6379"}, "mymaster", time.Hour, "r.yaml"
				c.RedisPassword = "s3cret"
			},
		},
		{
			name: "model store and tokens",
			args: []string{"--model-store", "redis", "--redis-addr", "127.0.0.1:6379", "--model-sync-interval", "2s", "--max-upload-bytes", "1048576", "--tokens-file", "t.txt", "--model-retention", "20"},
			env:  map[string]string{"CHURN_ADMIN_TOKENS": "admin-token-0123456789, admin-token-abcdefghij", "CHURN_SCORING_TOKENS": "scoring-token-0123456", "CHURN_MODEL_ON_DEMAND": "5"},
			want: func(c *Config) {
				c.ModelStore, c.RedisAddrs, c.ModelSyncInterval, c.MaxUploadBytes, c.TokensFile = "redis", []string{"127.0.0.1:6379"}, 2*time.Second, 1<<20, "t.txt"
				c.ModelRetention, c.ModelOnDemand = 20, 5
				c.AdminTokens, c.ScoringTokens = []string{"admin-token-0123456789", "admin-token-abcdefghij"}, []string{"scoring-token-0123456"}
			},
		},
		{
			name: "limits",
			args: []string{"--grpc-max-conns", "10", "--grpc-max-streams-per-conn=5", "--max-in-flight", "20", "--max-streams", "30", "--max-uploads", "1",
				"--default-call-timeout", "2s", "--stream-idle-timeout", "3s", "--grpc-window-bytes", "131072",
				"--grpc-keepalive-time", "4s", "--grpc-keepalive-timeout", "5s", "--grpc-keepalive-min-time", "6s",
				"--grpc-max-conn-idle", "7s", "--grpc-max-conn-age", "8s", "--grpc-max-conn-age-grace", "9s",
				"--http-max-conns", "11", "--http-read-timeout", "12s", "--http-write-timeout", "13s"},
			env: map[string]string{"CHURN_HTTP_IDLE_TIMEOUT": "14s", "CHURN_MAX_UPLOADS": "3"},
			want: func(c *Config) {
				c.GRPCMaxConns, c.GRPCMaxStreamsPerConn, c.MaxInFlight, c.MaxStreams, c.MaxUploads = 10, 5, 20, 30, 1
				c.DefaultCallTimeout, c.StreamIdleTimeout, c.GRPCWindowBytes = 2*time.Second, 3*time.Second, 128<<10
				c.KeepaliveTime, c.KeepaliveTimeout, c.KeepaliveMinTime = 4*time.Second, 5*time.Second, 6*time.Second
				c.MaxConnIdle, c.MaxConnAge, c.MaxConnAgeGrace = 7*time.Second, 8*time.Second, 9*time.Second
				c.HTTPMaxConns, c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout = 11, 12*time.Second, 13*time.Second, 14*time.Second
			},
		},
		{
			name: "tracing",
			args: []string{"--otlp-endpoint", "http://127.0.0.1:4318", "--trace-sample-ratio", "0.25", "--otlp-protocol", "http/protobuf"},
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: func(c *Config) {
				c.OTLPEndpoint, c.TraceSampleRatio, c.OTLPProtocol = "http://127.0.0.1:4318", 0.25, "http/protobuf"
			},
		},
		{
			name: "tracing from OpenTelemetry's variables, the traces-only one first",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces:4318",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "CHURN_TRACE_SAMPLE_RATIO": "0"},
			want: func(c *Config) {
				c.OTLPEndpoint, c.OTLPProtocol, c.TraceSampleRatio = "https://traces:4318", "http/protobuf", 0
			},
		},
		{
			name: "OTEL_SDK_DISABLED turns the variables' endpoint off",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"},
			want: func(*Config) {},
		},
		{
			name: "flag beats environment",
			args: []string{"--max-batch=3"},
			env:  map[string]string{"CHURN_MAX_BATCH": "7"},
			want: func(c *Config) { c.MaxBatch = 3 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
		{"bad env value names the variable", nil, map[string]string{"CHURN_MAX_BATCH": "many"}, "CHURN_MAX_BATCH"},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments"},
		{"invalid value names the flag", []string{"--max-batch=0"}, nil, "--max-batch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	if _, err := Parse([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, ErrHelp) {
		t.Errorf("-h: error %v, want ErrHelp", err)
	}
	if _, err := Parse([]string{"--version", "--max-batch", "0"}, env(nil), io.Discard); !errors.Is(err, ErrVersion) {
		t.Errorf("--version: error %v, want ErrVersion (before validation)", err)
	}
}

// TestValidate breaks one field of a valid config per case and expects the error to name it.
func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config)
		field  string
	}{
		{"grpc addr without port", func(c *Config) { c.GRPCAddr = "localhost" }, "--grpc-addr"},
		{"empty http addr", func(c *Config) { c.HTTPAddr = "" }, "--http-addr"},
		{"batch too large", func(c *Config) { c.MaxBatch = 1_000_000 }, "--max-batch"},
		{"tiny messages", func(c *Config) { c.MaxRecvBytes = 10 }, "--max-recv-bytes"},
		{"negative grace", func(c *Config) { c.ShutdownGrace = -time.Second }, "--shutdown-grace"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
		{"redis addr without port", func(c *Config) { c.RedisAddrs = []string{"redis"} }, "--redis-addr"},
		{"sentinel master without sentinels", func(c *Config) { c.RedisMasterName = "m" }, "--redis-master-name"},
		{"tiny ttl", func(c *Config) { c.CacheTTL = time.Millisecond }, "--cache-ttl"},
		{"no cache timeout", func(c *Config) { c.CacheTimeout = 0 }, "--cache-timeout"},
		{"empty cache", func(c *Config) { c.CacheMaxEntries = 0 }, "--cache-max-entries"},
		{"no outcome days", func(c *Config) { c.OutcomeRetentionDays = 0 }, "--outcome-retention-days"},
		{"no outcome keys", func(c *Config) { c.OutcomeMaxKeys = 0 }, "--outcome-max-keys"},
		{"unknown model store", func(c *Config) { c.ModelStore = "s3" }, "--model-store"},
		{"redis model store without redis", func(c *Config) { c.ModelStore = "redis" }, "--model-store"},
		{"disk model store without a directory", func(c *Config) { c.StoreDir = "" }, "--store-dir"},
		{"sync too often", func(c *Config) { c.ModelSyncInterval = time.Millisecond }, "--model-sync-interval"},
		{"upload limit too large", func(c *Config) { c.MaxUploadBytes = 1 << 40 }, "--max-upload-bytes"},
		{"negative retention", func(c *Config) { c.ModelRetention = -1 }, "--model-retention"},
		{"too many versions on demand", func(c *Config) { c.ModelOnDemand = 100 }, "--model-on-demand"},
		{"certificate without key", func(c *Config) { c.TLSCertFile = "cert.pem" }, "--tls-cert-file"},
		{"no grpc connections", func(c *Config) { c.GRPCMaxConns = 0 }, "--grpc-max-conns"},
		{"no streams per connection", func(c *Config) { c.GRPCMaxStreamsPerConn = 0 }, "--grpc-max-streams-per-conn"},
		{"unlimited calls in flight", func(c *Config) { c.MaxInFlight = 0 }, "--max-in-flight"},
		{"negative streams", func(c *Config) { c.MaxStreams = -1 }, "--max-streams"},
		{"too many uploads", func(c *Config) { c.MaxUploads = 65 }, "--max-uploads"},
		{"no call timeout", func(c *Config) { c.DefaultCallTimeout = 0 }, "--default-call-timeout"},
		{"no stream idle timeout", func(c *Config) { c.StreamIdleTimeout = 0 }, "--stream-idle-timeout"},
		{"window under gRPC's minimum", func(c *Config) { c.GRPCWindowBytes = 1024 }, "--grpc-window-bytes"},
		{"keepalive time under 1s", func(c *Config) { c.KeepaliveTime = 500 * time.Millisecond }, "--grpc-keepalive-time"},
		{"no keepalive timeout", func(c *Config) { c.KeepaliveTimeout = 0 }, "--grpc-keepalive-timeout"},
		{"no keepalive min time", func(c *Config) { c.KeepaliveMinTime = 0 }, "--grpc-keepalive-min-time"},
		{"connections idle forever", func(c *Config) { c.MaxConnIdle = 0 }, "--grpc-max-conn-idle"},
		{"connections live forever", func(c *Config) { c.MaxConnAge = 0 }, "--grpc-max-conn-age"},
		{"no age grace", func(c *Config) { c.MaxConnAgeGrace = 0 }, "--grpc-max-conn-age-grace"},
		{"unlimited http connections", func(c *Config) { c.HTTPMaxConns = 0 }, "--http-max-conns"},
		{"no http read timeout", func(c *Config) { c.HTTPReadTimeout = 0 }, "--http-read-timeout"},
		{"no http write timeout", func(c *Config) { c.HTTPWriteTimeout = -time.Second }, "--http-write-timeout"},
		{"no http idle timeout", func(c *Config) { c.HTTPIdleTimeout = 0 }, "--http-idle-timeout"},
		{"otlp endpoint without scheme", func(c *Config) { c.OTLPEndpoint = "collector:4317" }, "--otlp-endpoint"},
		{"otlp endpoint of another scheme", func(c *Config) { c.OTLPEndpoint = "grpc://collector:4317" }, "--otlp-endpoint"},
		{"otlp over json", func(c *Config) { c.OTLPProtocol = "http/json" }, "--otlp-protocol"},
		{"sample ratio above 1", func(c *Config) { c.TraceSampleRatio = 1.5 }, "--trace-sample-ratio"},
		{"sample ratio not a number", func(c *Config) { c.TraceSampleRatio = math.NaN() }, "--trace-sample-ratio"},
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}
