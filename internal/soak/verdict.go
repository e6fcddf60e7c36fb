package main

import (
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
)

// minSamples is the fewest samples a growth check accepts: two in each third.
const minSamples = 6

// tolerance is how much a resource may grow between the middle and the last third of a run:
// last ≤ middle × (1 + pct/100) + slack. The slack covers a small resource whose count moves
// with the calls in flight at the moment of the sample (a stream holds goroutines and, on its
// own connection, a descriptor); the percentage covers the collector's sawtooth.
type tolerance struct {
	pct   float64
	slack float64
}

// growth is one resource's check: the medians of the middle and last thirds and the limit.
type growth struct {
	name             string
	mid, last, limit float64
}

func (g growth) ok() bool { return g.last <= g.limit }

// checkGrowth compares the median of the last third of xs with the median of the middle third;
// the first third is warm-up (heaps, pools and caches filling) and is not compared. Medians, so
// that one sample taken during a burst of abandoned streams or a collection does not decide:
// a leak moves the whole third.
func checkGrowth(name string, xs []float64, tol tolerance) (growth, error) {
	n := len(xs)
	if n < minSamples {
		return growth{}, fmt.Errorf("%s: %d samples, a growth check needs at least %d: run longer or sample more often", name, n, minSamples)
	}
	mid := median(xs[n/3 : 2*n/3])
	last := median(xs[2*n/3:])
	return growth{name: name, mid: mid, last: last, limit: mid*(1+tol.pct/100) + tol.slack}, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Methods whose errors the soak tells apart.
const (
	mScore    = "Score"
	mBatch    = "ScoreBatch"
	mStream   = "ScoreStream"
	mGetScore = "GetScore"
	mUpload   = "UploadModel"
	mActivate = "ActivateModel"
)

// allowed says whether an error is one the README's error table documents for what the soak
// does: RESOURCE_EXHAUSTED for shed load, on any method; NOT_FOUND for a GetScore of a customer
// the cache does not hold (never scored yet, or lost with a Redis that came back empty);
// UNAVAILABLE or DEADLINE_EXCEEDED for GetScore while Redis is down or just back, and for a
// ModelService write then when the model store is in Redis. Score, ScoreBatch and ScoreStream
// never fail because of the cache (it fails open), so nothing else is allowed for them.
func allowed(method string, code codes.Code, redisDisturbed, redisModelStore bool) bool {
	if code == codes.ResourceExhausted {
		return true
	}
	outage := redisDisturbed && (code == codes.Unavailable || code == codes.DeadlineExceeded)
	switch method {
	case mGetScore:
		return code == codes.NotFound || outage
	case mUpload, mActivate:
		return redisModelStore && outage
	}
	return false
}
