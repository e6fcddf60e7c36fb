// Package modelstore holds the model versions this replica has loaded (internal/model built
// them) and the active one behind an atomic pointer, so that scoring never waits for a lock and a
// swap never fails a request. That is its one job: where versions come from and how activations
// are shared between replicas is internal/registry's.
package modelstore

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/churnhq/churn/internal/model"
)

// Errors of the store.
var (
	// ErrNotFound means no loaded model has the asked version.
	ErrNotFound = errors.New("model version not loaded")
	// ErrExists means a version is already loaded.
	ErrExists = errors.New("model version already loaded")
	// ErrActive means the version is the active one, which cannot be removed.
	ErrActive = errors.New("model version is the active one")
)

// Store holds the loaded model versions and the active one. It is safe for concurrent use:
// lookups read two atomic pointers and never wait; adding a version copies the (small) map.
type Store struct {
	mu        sync.Mutex                              // serialises writers of byVersion
	byVersion atomic.Pointer[map[string]*model.Model] // never modified once published
	active    atomic.Pointer[model.Model]
}

// New makes a store of models and activates activeVersion, or, when it is empty, the newest
// model by creation time. Versions must be unique.
func New(models []*model.Model, activeVersion string) (*Store, error) {
	if len(models) == 0 {
		return nil, errors.New("no models")
	}
	s := &Store{}
	empty := map[string]*model.Model{}
	s.byVersion.Store(&empty)
	for _, m := range models {
		if err := s.Add(m); err != nil {
			return nil, err
		}
	}
	if activeVersion == "" {
		sorted := s.List()
		activeVersion = sorted[len(sorted)-1].Version()
	}
	if err := s.Activate(activeVersion); err != nil {
		return nil, err
	}
	return s, nil
}

// Add loads another version into the store (not active). A version already there is ErrExists.
func (s *Store) Add(m *model.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.Get(m.Version()); dup {
		return fmt.Errorf("%w: %q", ErrExists, m.Version())
	}
	next := s.copyMap(1)
	next[m.Version()] = m
	s.byVersion.Store(&next)
	return nil
}

// Replace loads m in place of the loaded model of its version (or adds it); when that was the
// active one, m becomes active. For a version whose stored bytes changed.
func (s *Store) Replace(m *model.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.copyMap(0)
	old := next[m.Version()]
	next[m.Version()] = m
	s.byVersion.Store(&next)
	if old != nil && s.active.Load() == old {
		s.active.Store(m)
	}
}

// Remove unloads a version (requests already holding it finish with it). The active version
// cannot be removed: ErrActive; a version not loaded is ErrNotFound.
func (s *Store) Remove(version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.Get(version)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	if s.active.Load() == m {
		return fmt.Errorf("%w: %q", ErrActive, version)
	}
	next := s.copyMap(0)
	delete(next, version)
	s.byVersion.Store(&next)
	return nil
}

// copyMap copies the published map with room for extra more versions; s.mu must be held.
func (s *Store) copyMap(extra int) map[string]*model.Model {
	old := *s.byVersion.Load()
	next := make(map[string]*model.Model, len(old)+extra)
	for v, m := range old {
		next[v] = m
	}
	return next
}

// Active returns the active model, nil when none is.
func (s *Store) Active() *model.Model { return s.active.Load() }

// Get returns a loaded model by version; false when none has it.
func (s *Store) Get(version string) (*model.Model, bool) {
	m, ok := (*s.byVersion.Load())[version]
	return m, ok
}

// Activate makes a loaded version the active one. Requests already holding the previous model
// finish with it; later ones get the new one.
func (s *Store) Activate(version string) error {
	s.mu.Lock() // so that a concurrent Remove never unloads the version being activated
	defer s.mu.Unlock()
	m, ok := s.Get(version)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	s.active.Store(m)
	return nil
}

// List returns the loaded models, oldest first (by creation time, then version).
func (s *Store) List() []*model.Model {
	byVersion := *s.byVersion.Load()
	out := make([]*model.Model, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Bundle.Manifest, out[j].Bundle.Manifest
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.Version < b.Version
	})
	return out
}
