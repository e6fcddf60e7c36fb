package main

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestCheckGrowth(t *testing.T) {
	tol := tolerance{pct: 20, slack: 5}
	cases := []struct {
		name     string
		xs       []float64
		mid      float64
		last     float64
		wantPass bool
	}{
		// Warm-up growth in the first third is not compared.
		{"flat after warm-up", []float64{10, 50, 100, 100, 102, 98, 101, 99, 100}, 100, 100, true},
		// A leak: every sample higher than the one before.
		{"steady climb", []float64{100, 120, 140, 160, 180, 200, 220, 240, 260}, 180, 240, false},
		// One sample during a burst moves no median.
		{"one spike in the last third", []float64{100, 100, 100, 100, 100, 100, 100, 400, 100}, 100, 100, true},
		// Within pct + slack: 100 × 1.2 + 5 = 125.
		{"at the limit", []float64{100, 100, 100, 100, 100, 100, 125, 125, 125}, 100, 125, true},
		{"just over the limit", []float64{100, 100, 100, 100, 100, 100, 126, 126, 126}, 100, 126, false},
		// Thirds of an uneven count: 7 samples are 2 warm-up, 2 middle, 3 last.
		{"seven samples", []float64{1, 1, 10, 20, 30, 30, 30}, 15, 30, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := checkGrowth("x", c.xs, tol)
			if err != nil {
				t.Fatal(err)
			}
			if g.mid != c.mid || g.last != c.last {
				t.Errorf("medians: middle %v, last %v; want %v, %v", g.mid, g.last, c.mid, c.last)
			}
			if want := c.mid*1.2 + 5; g.limit != want {
				t.Errorf("limit %v, want %v", g.limit, want)
			}
			if g.ok() != c.wantPass {
				t.Errorf("ok() = %v, want %v (last %v, limit %v)", g.ok(), c.wantPass, g.last, g.limit)
			}
		})
	}
	if _, err := checkGrowth("rss", []float64{1, 2, 3, 4, 5}, tol); err == nil {
		t.Error("five samples: want an error asking for more, got none")
	}
}

func TestAllowed(t *testing.T) {
	cases := []struct {
		method     string
		code       codes.Code
		disturbed  bool
		redisStore bool
		want       string
	}{
		{mScore, codes.ResourceExhausted, false, false, "shed load"},
		{mStream, codes.ResourceExhausted, false, false, "shed load"},
		// The cache fails open: a Redis outage is no excuse for a scoring call.
		{mScore, codes.Unavailable, true, true, ""},
		{mBatch, codes.DeadlineExceeded, true, true, ""},
		{mStream, codes.Internal, false, false, ""},
		{mGetScore, codes.NotFound, false, false, "not cached"},
		{mGetScore, codes.Unavailable, true, false, "Redis outage"},
		{mGetScore, codes.Unavailable, false, false, ""},
		{mGetScore, codes.DeadlineExceeded, true, false, "Redis outage"},
		{mGetScore, codes.DeadlineExceeded, false, false, "cache timeout"},
		{mGetScore, codes.Internal, true, true, ""},
		{mActivate, codes.Unavailable, true, false, ""},
		{mActivate, codes.Unavailable, true, true, "Redis outage"},
		{mUpload, codes.DeadlineExceeded, false, true, ""},
		{mActivate, codes.FailedPrecondition, true, true, ""},
	}
	for _, c := range cases {
		if got := allowed(c.method, c.code, c.disturbed, c.redisStore); got != c.want {
			t.Errorf("allowed(%s, %v, disturbed=%v, redis store=%v) = %q, want %q", c.method, c.code, c.disturbed, c.redisStore, got, c.want)
		}
	}
}
