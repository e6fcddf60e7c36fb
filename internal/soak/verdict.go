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

// allowed says why the README's error table documents an error for what the soak does, or ""
// when it does not: RESOURCE_EXHAUSTED is shed load, on any method; for GetScore, NOT_FOUND is a
// customer the cache does not hold (not scored yet, or lost with a Redis that came back empty)
// and DEADLINE_EXCEEDED a Redis that did not answer within --cache-timeout (on a busy machine
// also while Redis is up), UNAVAILABLE a Redis that is down or just back; with the model store in
// Redis, UNAVAILABLE or DEADLINE_EXCEEDED of a ModelService write is that Redis down or just
// back. Score, ScoreBatch and ScoreStream never fail because of the cache (it fails open), so
// nothing else is documented for them.
func allowed(method string, code codes.Code, redisDisturbed, redisModelStore bool) string {
	if code == codes.ResourceExhausted {
		return "shed load"
	}
	outage := redisDisturbed && (code == codes.Unavailable || code == codes.DeadlineExceeded)
	switch method {
	case mGetScore:
		switch {
		case code == codes.NotFound:
			return "not cached"
		case outage:
			return "Redis outage"
		case code == codes.DeadlineExceeded:
			return "cache timeout"
		}
	case mUpload, mActivate:
		if redisModelStore && outage {
			return "Redis outage"
		}
	}
	return ""
}
