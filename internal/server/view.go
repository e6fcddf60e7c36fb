package server

import (
	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Views (AIP-157 partial responses, issue 16). Every view scores the customer in full and the
// cache gets the FULL response: a view changes what the caller is sent, not what is remembered,
// so a BASIC Score never makes a later FULL GetScore poorer. What BASIC saves is the encoding,
// the bytes on the wire and the caller's decoding of the drivers, the action and the warnings'
// texts (see ScoreView in proto/churn/v1/scoring.proto for the fields of each view).

// checkView refuses a value that ScoreView does not have, naming field.
func checkView(field string, v churnv1.ScoreView) error {
	if _, ok := churnv1.ScoreView_name[int32(v)]; !ok {
		return invalidArgument(field, "must be SCORE_VIEW_UNSPECIFIED, SCORE_VIEW_BASIC or SCORE_VIEW_FULL")
	}
	return nil
}

// applyView leaves in r only the fields of view v: every field for FULL and UNSPECIFIED; for
// BASIC the ones listed here (an allowlist, so that a field added to ScoreResponse later is not
// in BASIC unless it is added here), and of each warning its code. It works in place, without
// allocating: call it only once the cache and the metrics are done with r (ScoreCache.Put keeps
// nothing of the responses it is given).
func applyView(r *churnv1.ScoreResponse, v churnv1.ScoreView) {
	if v != churnv1.ScoreView_SCORE_VIEW_BASIC {
		return
	}
	id, p, tier, warnings, ref, at := r.CustomerId, r.Probability, r.Tier, r.Warnings, r.Model, r.ScoredAt
	fromCache, superseded, itemErr := r.FromCache, r.ModelSuperseded, r.Error
	r.Reset()
	r.CustomerId, r.Probability, r.Tier, r.Warnings, r.Model, r.ScoredAt = id, p, tier, warnings, ref, at
	r.FromCache, r.ModelSuperseded, r.Error = fromCache, superseded, itemErr
	for _, w := range warnings {
		code := w.Code
		w.Reset()
		w.Code = code
	}
}
