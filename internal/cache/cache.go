// Package cache remembers each customer's latest score and keeps the at-risk watchlist, in Redis
// ([NewRedis]) or, without Redis, in process ([NewMemory]). Both have the same methods (Put, Get,
// ListAtRisk, Close), pass one contract test suite, and take and give the server's own
// churn.v1.ScoreResponse: the cache reads the customer id, probability, tier and expected loss
// from the response itself. A previous probability is NaN when there was none. The interface is
// the consumer's (internal/server.ScoreCache); this package declares none.
//
// # Redis layout
//
// With prefix P (default "churn"):
//
//   - P:score:{<customer_id>} — a hash per customer; the hash tag is the customer id, so a Cluster
//     spreads customers over its slots. Fields: p (probability), tier (RiskTier number), loss
//     (expected loss), resp (the ScoreResponse as proto bytes), prev_p (the probability that was
//     cached before this write, "" when there was none) and at (write time, unix ms). The TTL is set
//     on it by PEXPIRE in the same Lua script that reads the previous p and writes the new fields, so
//     read-previous and write are atomic per customer.
//   - P:watch:{watch}:MEDIUM, P:watch:{watch}:HIGH, P:watch:{watch}:CRITICAL — sorted sets, all in
//     one slot (hash tag "watch"); each holds every customer whose tier is at least that tier. The
//     score is the NEGATED expected loss, so that ZRANGE BYSCORE (ascending score, ties by member
//     ascending) gives expected loss descending, ties by customer id ascending. A Put ZADDs the
//     customer to the sets at or below its tier and ZREMs it from those above; a customer at LOW
//     (or UNSPECIFIED) is removed from all three.
//
// # Redis writes
//
// A Put of fewer than 256 customers (one Score's) goes to a group-commit writer (redisgroup.go),
// which writes the Puts queued meanwhile together, as one chunk; a bigger Put runs in its
// caller's goroutine (redisput.go). On a single server (or a Sentinel's master) a chunk is one
// pipelined round trip: an EVALSHA per customer of the script that writes its hash and its
// watchlist entries in one atomic step, so that the hash and the watchlist never disagree,
// whatever becomes of the round trip. When the server answers NOSCRIPT (restart, SCRIPT FLUSH),
// the failed scripts are replayed with EVAL in a second round trip. A Cluster keeps the sets on
// another node than the hashes and its client sends every node its share of a pipeline at once,
// in no order between nodes, so there the script writes the hash only and the watchlist follows
// in a round trip of its own, for exactly the customers whose scripts succeeded: the watchlist
// never names a customer whose hash is not written yet; a customer whose watchlist write failed
// (the Put reports it) is put back by its next Put, or leaves with its hash's TTL.
//
// A Put of more than 256 customers is sent in chunks of 256, one after the other, each with its
// own Timeout, so that a full ScoreBatch has the time it needs. Redis runs one connection's commands in order, and one writer sends the queued Puts, so
// two entries of one customer in a Put apply in order, and a Put that returned before another
// began is applied first.
//
// Hashes expire, watchlist members do not: ListAtRisk reads the page's hashes in one pipelined HMGET,
// skips members whose hash is gone and removes them lazily, so the list stays consistent with Get.
// The removal is a script on the watchlist slot that ZREMs a member only while its score is still the
// one ListAtRisk saw, so a customer Put again meanwhile with a new expected loss is kept (one Put
// again with the very same loss in that window is put back by restoreRescored). A member whose hash
// tier is below the listed tier (a Put in flight) is skipped, not removed.
//
// # Watchlist
//
// The watchlist holds tiers MEDIUM and above; a minTier below MEDIUM lists MEDIUM and above. Pages are
// ordered by expected loss descending, ties by customer id ascending. A page token encodes the last
// item's expected loss and customer id (not an offset), so inserts between pages do not shift them.
//
// # Memory
//
// The in-process cache is a hand-written LRU (container/list + map) with a per-entry deadline.
// github.com/hashicorp/golang-lru/v2/expirable was considered: it reads time.Now itself and purges
// from a background goroutine, so TTL tests would need real sleeps and the clock could not be
// injected (STYLE: time is injected). Its watchlist is a B-tree per tier (github.com/google/btree)
// ordered like the Redis sets, so a page is a walk from its cursor; expired entries met on the
// walk are removed.
//
// # Errors
//
// Get returns [ErrNotFound] for a customer with no cached score, ListAtRisk [ErrBadPageToken] for a
// token it did not issue. Every Redis operation runs under context.WithTimeout(Timeout) (a Put,
// per chunk) and its errors wrap [ErrUnavailable], so a server can fail open for Put and answer
// UNAVAILABLE for Get and ListAtRisk; when the operation ran out of time (its deadline, or a
// socket timeout of the client) the error wraps context.DeadlineExceeded too, so the server can
// say so instead.
package cache

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

var (
	// ErrNotFound is returned by Get when the customer has no cached score, or it expired.
	ErrNotFound = errors.New("cache: not found")
	// ErrUnavailable wraps every error of the cache's backend (Redis down, timeout, cache closed).
	ErrUnavailable = errors.New("cache: unavailable")
	// ErrBadPageToken is returned by ListAtRisk for a malformed page token.
	ErrBadPageToken = errors.New("cache: bad page token")
)

// MaxPageSize is the largest limit ListAtRisk accepts.
const MaxPageSize = 1000

// watchTiers are the tiers that have a watchlist, lowest first.
var watchTiers = [...]churnv1.RiskTier{
	churnv1.RiskTier_RISK_TIER_MEDIUM,
	churnv1.RiskTier_RISK_TIER_HIGH,
	churnv1.RiskTier_RISK_TIER_CRITICAL,
}

// listArgs checks ListAtRisk's arguments: the tier clamped to MEDIUM..CRITICAL and the decoded token.
func listArgs(minTier churnv1.RiskTier, limit int, pageToken string) (churnv1.RiskTier, *cursor, error) {
	if limit < 1 || limit > MaxPageSize {
		return 0, nil, fmt.Errorf("cache: limit %d out of range 1..%d", limit, MaxPageSize)
	}
	if minTier > churnv1.RiskTier_RISK_TIER_CRITICAL {
		return 0, nil, fmt.Errorf("cache: unknown min tier %d", minTier)
	}
	minTier = max(minTier, churnv1.RiskTier_RISK_TIER_MEDIUM)
	if pageToken == "" {
		return minTier, nil, nil
	}
	c, err := decodeToken(pageToken)
	if err != nil {
		return 0, nil, err
	}
	return minTier, c, nil
}

// cursor is the last item of a page: the next page starts after it.
type cursor struct {
	loss float64
	id   string
}

// after reports whether (loss, id) comes after the cursor in watchlist order.
func (c *cursor) after(loss float64, id string) bool {
	if c == nil {
		return true
	}
	if loss != c.loss {
		return loss < c.loss
	}
	return id > c.id
}

const tokenVersion = "v1"

func encodeToken(loss float64, id string) string {
	s := tokenVersion + ":" + strconv.FormatFloat(loss, 'g', -1, 64) + ":" + id
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeToken(tok string) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPageToken, err)
	}
	ver, rest, ok := strings.Cut(string(b), ":")
	if !ok || ver != tokenVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrBadPageToken)
	}
	ls, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return nil, fmt.Errorf("%w: no customer id", ErrBadPageToken)
	}
	loss, err := strconv.ParseFloat(ls, 64)
	if err != nil || math.IsNaN(loss) {
		return nil, fmt.Errorf("%w: bad expected loss", ErrBadPageToken)
	}
	return &cursor{loss: loss, id: id}, nil
}
