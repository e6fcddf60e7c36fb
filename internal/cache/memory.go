package cache

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

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
	return &Memory{
		maxEntries: o.MaxEntries,
		ttl:        o.TTL,
		now:        o.Now,
		ll:         list.New(),
		items:      make(map[string]*list.Element),
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
	m.ll.Remove(el)
	delete(m.items, el.Value.(*memEntry).id)
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
			el.Value = ne
			m.ll.MoveToFront(el)
		} else {
			m.items[e.CustomerID] = m.ll.PushFront(ne)
		}
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

// ListAtRisk pages the watchlist by a sorted scan of the live entries. It does not count as a use for
// the LRU.
func (m *Memory) ListAtRisk(_ context.Context, minTier churnv1.RiskTier, limit int, pageToken string) (Page, error) {
	minTier, cur, err := listArgs(minTier, limit, pageToken)
	if err != nil {
		return Page{}, err
	}
	now := m.now()
	var hits []*memEntry
	m.mu.Lock()
	for el := m.ll.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*memEntry)
		switch {
		case e.expired(now):
			m.remove(el)
		case e.tier >= minTier && cur.after(e.loss, e.id):
			hits = append(hits, e)
		}
		el = next
	}
	m.mu.Unlock()
	slices.SortFunc(hits, func(a, b *memEntry) int {
		if c := cmp.Compare(b.loss, a.loss); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
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
	return nil
}
