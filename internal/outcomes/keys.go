package outcomes

// keySet remembers the last max idempotency-key digests, first in, first out: a map for the lookup
// and a ring for the order, so memory is fixed by max (~60 bytes a key) whatever the traffic.
type keySet struct {
	max  int
	seen map[[16]byte]struct{}
	ring [][16]byte
	next int // the oldest entry once the ring is full
	// evicted is set when an add pushed out the oldest key; the caller counts and clears it.
	evicted bool
}

func newKeySet(max int) keySet {
	return keySet{max: max, seen: map[[16]byte]struct{}{}}
}

// add remembers k and reports true, or reports false when k is remembered already.
func (s *keySet) add(k [16]byte) bool {
	if _, ok := s.seen[k]; ok {
		return false
	}
	if len(s.ring) < s.max {
		s.ring = append(s.ring, k)
	} else {
		delete(s.seen, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % s.max
		s.evicted = true
	}
	s.seen[k] = struct{}{}
	return true
}
