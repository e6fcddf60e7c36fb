package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/metricstest"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/poll"
	"github.com/churnhq/churn/internal/server"
)

// riskyRequest is the README's example with complaints and slow responses, which must raise
// COMPLAINT_SPIKE and SLOW_RESPONSE.
func riskyRequest(t testing.TB, id string) *churnv1.ScoreRequest {
	req := basicRequest(t)
	req.CustomerId = id
	req.Features.Complaints = &churnv1.Complaints{Count_30D: proto.Float64(3), Count_90D: proto.Float64(4)}
	req.Features.Service = &churnv1.ServiceResponse{AvgFirstResponseHours: proto.Float64(40), P90FirstResponseHours: proto.Float64(96)}
	req.Features.Account.MonthlyRevenue = proto.Float64(250)
	return req
}

func warningCodes(ws []*churnv1.Warning) []churnv1.WarningCode {
	var out []churnv1.WarningCode
	for _, w := range ws {
		out = append(out, w.GetCode())
	}
	return out
}

func TestScoreThenGetScoreAndListAtRisk(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx := context.Background()
	scored, err := env.client.Score(ctx, riskyRequest(t, "cust-risky"))
	if err != nil {
		t.Fatal(err)
	}
	got := warningCodes(scored.GetWarnings())
	for _, want := range []churnv1.WarningCode{churnv1.WarningCode_WARNING_CODE_COMPLAINT_SPIKE, churnv1.WarningCode_WARNING_CODE_SLOW_RESPONSE} {
		if !containsCode(got, want) {
			t.Errorf("warnings %v lack %v", got, want)
		}
	}
	for _, w := range scored.GetWarnings() {
		if w.GetMessage() == "" || (w.GetThreshold() == 0 && w.GetCode() != churnv1.WarningCode_WARNING_CODE_HIGH_RISK) {
			t.Errorf("warning %v lacks a message or threshold", w)
		}
	}
	if scored.GetAction().GetType() == churnv1.ActionType_ACTION_TYPE_UNSPECIFIED || len(scored.GetDrivers()) == 0 || scored.GetExpectedLoss() <= 0 {
		t.Errorf("Score = %v: want an action, drivers and an expected loss", scored)
	}

	cached, err := env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "cust-risky"})
	if err != nil {
		t.Fatalf("GetScore: %v", err)
	}
	want := proto.Clone(scored).(*churnv1.ScoreResponse)
	want.FromCache = true
	if diff := cmp.Diff(want, cached, protocmp.Transform()); diff != "" {
		t.Errorf("GetScore (-want +got):\n%s", diff)
	}

	list, err := env.client.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{MinTier: churnv1.RiskTier_RISK_TIER_HIGH})
	if err != nil {
		t.Fatalf("ListAtRisk: %v", err)
	}
	if len(list.GetCustomers()) != 1 || list.GetCustomers()[0].GetCustomerId() != "cust-risky" || !list.GetCustomers()[0].GetFromCache() {
		t.Errorf("ListAtRisk = %v, want cust-risky from the cache", list)
	}

	_, err = env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "never-scored"})
	assertStatus(t, err, codes.NotFound, "")
	_, err = env.client.GetScore(ctx, &churnv1.GetScoreRequest{})
	assertStatus(t, err, codes.InvalidArgument, "customer_id")
	_, err = env.client.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{Limit: 5000})
	assertStatus(t, err, codes.InvalidArgument, "limit")
	_, err = env.client.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{PageToken: "not a token"})
	assertStatus(t, err, codes.InvalidArgument, "page_token")
}

func containsCode(cs []churnv1.WarningCode, c churnv1.WarningCode) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func TestRiskRisingOnSecondWorseScore(t *testing.T) {
	t.Parallel()
	env := startServer(t, 10)
	ctx := context.Background()
	calm := basicRequest(t)
	calm.CustomerId = "cust-rising"
	calm.Features.Complaints = &churnv1.Complaints{Count_30D: proto.Float64(0), Count_90D: proto.Float64(0)}
	calm.Features.Numeric["call_failures"] = 0
	calm.Features.Numeric["calls"] = 90
	first, err := env.client.Score(ctx, calm)
	if err != nil {
		t.Fatal(err)
	}
	if containsCode(warningCodes(first.GetWarnings()), churnv1.WarningCode_WARNING_CODE_RISK_RISING) {
		t.Fatalf("first score already RISK_RISING: %v", first)
	}
	second, err := env.client.Score(ctx, riskyRequest(t, "cust-rising"))
	if err != nil {
		t.Fatal(err)
	}
	if second.GetProbability()-first.GetProbability() < 0.1 {
		t.Fatalf("test data: probability went from %v to %v, not enough to rise", first.GetProbability(), second.GetProbability())
	}
	if !containsCode(warningCodes(second.GetWarnings()), churnv1.WarningCode_WARNING_CODE_RISK_RISING) {
		t.Errorf("second score warnings %v lack RISK_RISING", warningCodes(second.GetWarnings()))
	}
	cached, err := env.client.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "cust-rising"})
	if err != nil {
		t.Fatal(err)
	}
	if !containsCode(warningCodes(cached.GetWarnings()), churnv1.WarningCode_WARNING_CODE_RISK_RISING) {
		t.Errorf("GetScore warnings %v lack RISK_RISING", warningCodes(cached.GetWarnings()))
	}
}

// TestRedisOutageFailsOpen scores against a real Redis, kills it while Score runs (every call
// still succeeds and GetScore says UNAVAILABLE), restarts it, and sees caching resume.
func TestRedisOutageFailsOpen(t *testing.T) {
	t.Parallel()
	addr, stop, restart := redistest.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, DialerRetries: 1, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	reg := prometheus.NewRegistry()
	rc, err := cache.NewRedis(cache.RedisOptions{Client: client, TTL: time.Hour, Timeout: 100 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	store, err := modelstore.New(defaultModels(t), "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Models: store, Cache: rc, MaxBatch: 10, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	score := func(id string) {
		t.Helper()
		if _, err := srv.Score(ctx, riskyRequest(t, id)); err != nil {
			t.Fatalf("Score(%s) failed: %v", id, err)
		}
	}
	score("before")
	if _, err := srv.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "before"}); err != nil {
		t.Fatalf("GetScore with Redis up: %v", err)
	}

	// Score keeps running in the background while Redis is killed: every call must succeed.
	done := make(chan struct{})
	failures := make(chan error, 1)
	var calls int
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			if _, err := srv.Score(ctx, riskyRequest(t, fmt.Sprintf("during-%d", i))); err != nil {
				failures <- err
				return
			}
			calls = i + 1
			if i >= 40 {
				return
			}
		}
	}()
	stop()
	<-done
	select {
	case err := <-failures:
		t.Fatalf("Score failed while Redis went down: %v", err)
	default:
	}
	if calls < 41 {
		t.Fatalf("only %d Score calls ran", calls)
	}
	for i := range 5 {
		score(fmt.Sprintf("down-%d", i))
	}
	_, err = srv.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "before"})
	assertStatus(t, err, codes.Unavailable, "")
	if got := metricstest.Value(t, reg, "churn_cache_writes_total", map[string]string{"result": "error"}); got < 5 {
		t.Errorf("churn_cache_writes_total{result=error} = %v, want at least the 5 writes made while Redis was down", got)
	}

	restart()
	poll.Until(t, 10*time.Second, func() bool {
		score("after")
		_, err := srv.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "after"})
		return err == nil
	}, "caching resumes after Redis restarts")
}

// TestCacheErrorStatus: GetScore and ListAtRisk answer DEADLINE_EXCEEDED when the Redis cache ran
// out of time (the server is paused by CLIENT PAUSE) and UNAVAILABLE when it cannot be reached
// (the server is down); Score answers either way. The client is made as churnd makes it: one dial
// attempt, socket timeouts of --cache-timeout.
func TestCacheErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down bool
		want codes.Code
	}{
		{"paused", false, codes.DeadlineExceeded},
		{"down", true, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 100 * time.Millisecond
			addr, stop, _ := redistest.StartRedis(t)
			client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: timeout, DialerRetries: 1, ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: -1})
			t.Cleanup(func() { client.Close() })
			rc, err := cache.NewRedis(cache.RedisOptions{Client: client, TTL: time.Hour, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rc.Close() })
			store, err := modelstore.New(defaultModels(t), "")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := server.New(server.Options{Models: store, Cache: rc, MaxBatch: 10})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := srv.Score(ctx, riskyRequest(t, "cust-1")); err != nil {
				t.Fatal(err)
			}
			if tc.down {
				stop()
			} else {
				// For longer than the test; the server is killed at its end.
				admin := redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { admin.Close() })
				if err := admin.Do(ctx, "CLIENT", "PAUSE", 60_000, "ALL").Err(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := srv.Score(ctx, riskyRequest(t, "cust-1")); err != nil {
				t.Errorf("Score with the cache %s: %v, want an answer", tc.name, err)
			}
			_, err = srv.GetScore(ctx, &churnv1.GetScoreRequest{CustomerId: "cust-1"})
			assertStatus(t, err, tc.want, "")
			_, err = srv.ListAtRisk(ctx, &churnv1.ListAtRiskRequest{})
			assertStatus(t, err, tc.want, "")
		})
	}
}
