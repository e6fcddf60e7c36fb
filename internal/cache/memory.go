package cache

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
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

// Memory is an in-process Cache: a bounded LRU with a TTL. It is safe for concurrent use.
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
	prev     Previous
	deadline time.Time // zero: no expiry
}

var _ Cache = (*Memory)(nil)

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

// Put stores the entries in order and returns each one's previous cached probability. A response
// that cannot be marshalled (a string field that is not UTF-8) fails the whole Put, before anything
// is stored.
func (m *Memory) Put(_ context.Context, entries []Entry) ([]Previous, error) {
	resps := make([][]byte, len(entries))
	for i, e := range entries {
		b, err := proto.Marshal(e.Response)
		if err != nil {
			return nil, fmt.Errorf("cache: marshal response of %q: %w", e.CustomerID, err)
		}
		resps[i] = b
	}
	prevs := make([]Previous, len(entries))
	now := m.now()
	var deadline time.Time
	if m.ttl > 0 {
		deadline = now.Add(m.ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, e := range entries {
		ne := &memEntry{
			id:       e.CustomerID,
			resp:     resps[i],
			p:        e.Probability,
			tier:     e.Tier,
			loss:     e.ExpectedLoss,
			deadline: deadline,
		}
		if el := m.live(e.CustomerID, now); el != nil {
			old := el.Value.(*memEntry)
			ne.prev = Previous{Found: true, Probability: old.p}
			m.unindex(old)
			el.Value = ne
			m.ll.MoveToFront(el)
		} else {
			m.items[e.CustomerID] = m.ll.PushFront(ne)
		}
		m.index(ne)
		prevs[i] = ne.prev
		for m.ll.Len() > m.maxEntries {
			m.remove(m.ll.Back())
		}
	}
	return prevs, nil
}

// Get returns the customer's cached response with FromCache set, or ErrNotFound.
func (m *Memory) Get(_ context.Context, customerID string) (*churnv1.ScoreResponse, Previous, error) {
	now := m.now()
	m.mu.Lock()
	el := m.live(customerID, now)
	if el == nil {
		m.mu.Unlock()
		return nil, Previous{}, ErrNotFound
	}
	m.ll.MoveToFront(el)
	e := el.Value.(*memEntry)
	m.mu.Unlock()
	// e is never mutated after it is stored, so it can be read without the lock.
	resp, err := decodeResponse(e.resp)
	if err != nil {
		return nil, Previous{}, err
	}
	return resp, e.prev, nil
}

// ListAtRisk pages the watchlist of minTier: a walk of its B-tree from the page token, removing the
// expired entries it meets. It does not count as a use for the LRU.
func (m *Memory) ListAtRisk(_ context.Context, minTier churnv1.RiskTier, limit int, pageToken string) (Page, error) {
	minTier, cur, err := listArgs(minTier, limit, pageToken)
	if err != nil {
		return Page{}, err
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
	var page Page
	if len(hits) > limit {
		hits = hits[:limit]
		last := hits[limit-1]
		page.NextPageToken = encodeToken(last.loss, last.id)
	}
	page.Responses = make([]*churnv1.ScoreResponse, len(hits))
	for i, e := range hits {
		if page.Responses[i], err = decodeResponse(e.resp); err != nil {
			return Page{}, err
		}
	}
	return page, nil
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
