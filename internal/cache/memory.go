package cache

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/btree"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// MemoryOptions configure an in-process cache.
type MemoryOptions struct {
	// MaxEntries bounds the number of customers kept; the least recently used is evicted first.
	// Default 100_000.
	MaxEntries int
	// TTL is how long an entry lives after its Put; 0 or less keeps it until evicted.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is the in-process score cache: a bounded LRU with a TTL. It is safe for concurrent use.
type Memory struct {
	maxEntries int
	ttl        time.Duration
	now        func() time.Time

	mu    sync.Mutex
	ll    *list.List // of *memEntry, most recently used at the front
	items map[string]*list.Element
	// watch[j] orders the entries of tier watchTiers[j] or above by expected loss, largest first,
	// then id: the watchlist, so that a page is a walk from its cursor (a B-tree, from
	// github.com/google/btree), not a sort of every entry under the lock.
	watch [len(watchTiers)]*btree.BTreeG[watchItem]
}

// watchItem is an entry's place in a watchlist.
type watchItem struct {
	loss float64
	id   string
}

// watchLess is the watchlist order: expected loss descending (cmp.Compare, so a NaN has a place
// too), then id ascending.
func watchLess(a, b watchItem) bool {
	if c := cmp.Compare(b.loss, a.loss); c != 0 {
		return c < 0
	}
	return a.id < b.id
}

type memEntry struct {
	id string
	// resp is the response marshalled: a third of the memory of the message itself (which with
	// its drivers and warnings is some 30 small objects, ~3.4 KiB), and no object the collector
	// has to mark.
	resp     []byte
	p        float64
	tier     churnv1.RiskTier
	loss     float64
	prev     float64   // the probability cached before this entry; NaN when none
	deadline time.Time // zero: no expiry
}

// NewMemory returns an empty in-process cache.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{
		maxEntries: o.MaxEntries,
		ttl:        o.TTL,
		now:        o.Now,
		ll:         list.New(),
		items:      make(map[string]*list.Element),
	}
	for j := range m.watch {
		m.watch[j] = btree.NewG(32, watchLess)
	}
	return m
}

// index adds e to the watchlists of its tier; unindex takes it out. m.mu must be held.
func (m *Memory) index(e *memEntry) {
	for j, t := range watchTiers {
		if e.tier >= t {
			m.watch[j].ReplaceOrInsert(watchItem{e.loss, e.id})
		}
	}
}

func (m *Memory) unindex(e *memEntry) {
	for j, t := range watchTiers {
		if e.tier >= t {
			m.watch[j].Delete(watchItem{e.loss, e.id})
		}
	}
}

func (e *memEntry) expired(now time.Time) bool {
	return !e.deadline.IsZero() && !now.Before(e.deadline)
}

// live returns the customer's element, or nil when it is absent or expired (and then removes it).
// m.mu must be held.
func (m *Memory) live(id string, now time.Time) *list.Element {
	el, ok := m.items[id]
	if !ok {
		return nil
	}
	if el.Value.(*memEntry).expired(now) {
		m.remove(el)
		return nil
	}
	return el
}

func (m *Memory) remove(el *list.Element) {
	e := el.Value.(*memEntry)
	m.ll.Remove(el)
	delete(m.items, e.id)
	m.unindex(e)
}

// Put remembers each response, in order, as its customer's latest score, and returns per response
// the probability cached for that customer before it, NaN when there was none. A response that
// cannot be marshalled (a string field that is not UTF-8) fails the whole Put, before anything is
// stored.
func (m *Memory) Put(_ context.Context, resps []*churnv1.ScoreResponse) ([]float64, error) {
	raw := make([][]byte, len(resps))
	for i, r := range resps {
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("cache: marshal response of %q: %w", r.GetCustomerId(), err)
		}
		raw[i] = b
	}
	prevs := make([]float64, len(resps))
	now := m.now()
	var deadline time.Time
	if m.ttl > 0 {
		deadline = now.Add(m.ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range resps {
		ne := &memEntry{
			id:       r.GetCustomerId(),
			resp:     raw[i],
			p:        r.GetProbability(),
			tier:     r.GetTier(),
			loss:     r.GetExpectedLoss(),
			prev:     math.NaN(),
			deadline: deadline,
		}
		if el := m.live(ne.id, now); el != nil {
			old := el.Value.(*memEntry)
			ne.prev = old.p
			m.unindex(old)
			el.Value = ne
			m.ll.MoveToFront(el)
		} else {
			m.items[ne.id] = m.ll.PushFront(ne)
		}
		m.index(ne)
		prevs[i] = ne.prev
		for m.ll.Len() > m.maxEntries {
			m.remove(m.ll.Back())
		}
	}
	return prevs, nil
}

// Get returns the customer's cached response with FromCache set and the probability cached before
// it (NaN when none), or ErrNotFound.
func (m *Memory) Get(_ context.Context, customerID string) (*churnv1.ScoreResponse, float64, error) {
	now := m.now()
	m.mu.Lock()
	el := m.live(customerID, now)
	if el == nil {
		m.mu.Unlock()
		return nil, math.NaN(), ErrNotFound
	}
	m.ll.MoveToFront(el)
	e := el.Value.(*memEntry)
	m.mu.Unlock()
	// e is never mutated after it is stored, so it can be read without the lock.
	resp, err := decodeResponse(e.resp)
	if err != nil {
		return nil, math.NaN(), err
	}
	return resp, e.prev, nil
}

// ListAtRisk returns a page of the watchlist of minTier and the token of the next page ("" at the
// end): a walk of the tier's B-tree from the page token, removing the expired entries it meets. It
// does not count as a use for the LRU.
func (m *Memory) ListAtRisk(_ context.Context, minTier churnv1.RiskTier, limit int, pageToken string) ([]*churnv1.ScoreResponse, string, error) {
	minTier, cur, err := listArgs(minTier, limit, pageToken)
	if err != nil {
		return nil, "", err
	}
	j := slices.Index(watchTiers[:], minTier)
	now := m.now()
	var hits []*memEntry
	var expired []*list.Element
	walk := func(it watchItem) bool {
		if !cur.after(it.loss, it.id) {
			return true // the cursor itself
		}
		el := m.items[it.id]
		if e := el.Value.(*memEntry); e.expired(now) {
			expired = append(expired, el)
		} else {
			hits = append(hits, e)
		}
		return len(hits) <= limit
	}
	m.mu.Lock()
	if cur == nil {
		m.watch[j].Ascend(walk)
	} else {
		m.watch[j].AscendGreaterOrEqual(watchItem{cur.loss, cur.id}, walk)
	}
	for _, el := range expired { // not during the walk: the tree must not change under it
		m.remove(el)
	}
	m.mu.Unlock()
	var next string
	if len(hits) > limit {
		hits = hits[:limit]
		last := hits[limit-1]
		next = encodeToken(last.loss, last.id)
	}
	page := make([]*churnv1.ScoreResponse, len(hits))
	for i, e := range hits {
		if page[i], err = decodeResponse(e.resp); err != nil {
			return nil, "", err
		}
	}
	return page, next, nil
}

// Close drops every entry.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ll.Init()
	clear(m.items)
	for _, w := range m.watch {
		w.Clear(false)
	}
	return nil
}
