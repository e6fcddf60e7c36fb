// Package modelstore loads model bundles, proves each one reproduces its trainer, and holds the
// loaded versions with the active one behind an atomic pointer, so that scoring never waits for a
// lock and a swap never fails a request.
//
// Load is the one gate every bundle passes: bundle.Parse checks the structure, features.New and
// scoring.New compile the schema and the parameters, and every check vector is run through the
// same mapping and evaluation code that serves requests; a bundle whose probabilities differ from
// its trainer's by more than bundle.CheckTolerance is refused.
package modelstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/scoring"
)

// Errors returned by the store; the server maps them to gRPC codes.
var (
	// ErrNotFound means no loaded model has the asked version.
	ErrNotFound = errors.New("model version not found")
	// ErrNoActive means no model is active.
	ErrNoActive = errors.New("no active model")
)

// MaxBundleBytes bounds the size of one bundle file.
const MaxBundleBytes = 64 << 20

// Model is a loaded, verified model version: its bundle, compiled mapper and evaluator.
type Model struct {
	Bundle *bundle.Bundle
	Mapper *features.Mapper
	Eval   *scoring.Evaluator
	// Ref names the model in responses. It is shared by every response and must not be modified.
	Ref *churnv1.ModelRef
	// Origin says where the bundle came from: OriginEmbedded, OriginDirectory or OriginStore.
	Origin string
	// SHA256 (lower-case hex) and Size are of the bundle's bytes as loaded.
	SHA256 string
	Size   int64

	spans []inputSpan // for drivers
}

// Name returns the model's name.
func (m *Model) Name() string { return m.Bundle.Manifest.Name }

// Version returns the model's version.
func (m *Model) Version() string { return m.Bundle.Manifest.Version }

// Score maps features into x (len >= Mapper.Width()) and evaluates them. It appends the indices
// of imputed inputs to imputed and returns them with the probability and tier. It is the one
// scoring path, used both by the server and by the check vectors.
func (m *Model) Score(f *churnv1.CustomerFeatures, x []float64, imputed []int) (p float64, tier scoring.Tier, _ []int, err error) {
	var s Explained
	s, imputed, err = m.score(f, x, nil, false, imputed)
	return s.Probability, s.Tier, imputed, err
}

// Explained is a score with its explanation.
type Explained struct {
	Probability float64
	Tier        scoring.Tier
	// Margin is the model's log-odds before calibration.
	Margin float64
	// Base plus the drivers' contributions is Margin (to rounding).
	Base    float64
	Drivers []*churnv1.Driver
}

// Explain is Score that also says why: the margin, and the drivers with the base they add up to:
// the MaxDriversPerSide inputs that raised the risk most and those that lowered it most, and the
// rest added up in one OtherDrivers entry. contrib is scratch space of Mapper.Width() (Explain
// panics on a shorter one, like a slice index). The model is evaluated once: for a
// tree ensemble the attribution rides on the scoring walk (scoring.Evaluator.Explain).
func (m *Model) Explain(f *churnv1.CustomerFeatures, x, contrib []float64, imputed []int) (Explained, []int, error) {
	s, imputed, err := m.score(f, x, contrib, true, imputed)
	if err != nil {
		return s, imputed, err
	}
	s.Drivers = m.drivers(x, contrib)
	return s, imputed, nil
}

// score is Score, and with explain also writes the columns' contributions to the margin into
// contrib and sets Base.
func (m *Model) score(f *churnv1.CustomerFeatures, x, contrib []float64, explain bool, imputed []int) (s Explained, _ []int, err error) {
	imputed, err = m.Mapper.Map(f, x, imputed)
	if err != nil {
		return s, imputed, err
	}
	if explain {
		s.Margin, s.Base = m.Eval.Explain(x, contrib)
	} else {
		s.Margin = m.Eval.Margin(x)
	}
	s.Probability = m.Eval.Probability(s.Margin)
	if !(s.Probability >= 0 && s.Probability <= 1) { // NaN: finite inputs whose weighted sum overflows
		return Explained{}, imputed, &features.ValidationError{Violations: []features.Violation{{
			Field: "features", Description: "the values are too large for the model to score",
		}}}
	}
	s.Tier = m.Eval.Tier(s.Probability)
	return s, imputed, nil
}

// Origins of a model.
const (
	OriginEmbedded  = "embedded"  // the default bundle built into the binary
	OriginDirectory = "directory" // a bundle in --model-dir
	OriginStore     = "store"     // an uploaded version
)

// Load parses, compiles and verifies one bundle.
func Load(data []byte) (*Model, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", bundle.ErrInvalid, len(data), MaxBundleBytes)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, err
	}
	mapper, err := features.New(&b.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: input schema: %v", bundle.ErrInvalid, err)
	}
	eval, err := scoring.New(b)
	if err != nil {
		return nil, fmt.Errorf("%w: model: %v", bundle.ErrInvalid, err)
	}
	if mapper.Width() != eval.Width() {
		return nil, fmt.Errorf("%w: the schema makes %d columns, the model takes %d", bundle.ErrInvalid, mapper.Width(), eval.Width())
	}
	sum := sha256.Sum256(data)
	m := &Model{
		Bundle: b, Mapper: mapper, Eval: eval,
		Ref:    &churnv1.ModelRef{Name: b.Manifest.Name, Version: b.Manifest.Version},
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)),
		spans: spans(&b.Manifest),
	}
	if err := m.verify(); err != nil {
		return nil, err
	}
	return m, nil
}

// verify runs every check vector through the serving path.
func (m *Model) verify() error {
	x := make([]float64, m.Mapper.Width())
	for i, cv := range m.Bundle.Manifest.CheckVectors {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(cv.Features, &f); err != nil {
			return fmt.Errorf("%w: check_vectors[%d].features: %v", bundle.ErrInvalid, i, err)
		}
		p, _, _, err := m.Score(&f, x, nil)
		if err != nil {
			return fmt.Errorf("%w: check_vectors[%d] does not map: %v", bundle.ErrInvalid, i, err)
		}
		if d := math.Abs(p - cv.Probability); !(d <= bundle.CheckTolerance) {
			return fmt.Errorf("%w: check_vectors[%d]: serving computes %.17g, the trainer computed %.17g (difference %.3g > %g)",
				bundle.ErrInvalid, i, p, cv.Probability, d, bundle.CheckTolerance)
		}
	}
	return nil
}

// LoadDir loads every *.json bundle in dir. Any bad bundle fails the whole load, naming the file:
// a service must not start with fewer models than its operator put there.
func LoadDir(dir string) ([]*Model, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	}
	var models []*Model
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readLimited(path)
		if err != nil {
			return nil, err
		}
		m, err := Load(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.Origin = OriginDirectory
		models = append(models, m)
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("model directory %s: no *.json model bundles", dir)
	}
	return models, nil
}

func readLimited(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Size() > MaxBundleBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", path, bundle.ErrInvalid, info.Size(), MaxBundleBytes)
	}
	return os.ReadFile(path)
}

// Store holds the loaded model versions and the active one. It is safe for concurrent use:
// lookups read two atomic pointers and never wait; adding a version copies the (small) map.
type Store struct {
	mu        sync.Mutex                        // serialises writers of byVersion
	byVersion atomic.Pointer[map[string]*Model] // never modified once published
	active    atomic.Pointer[Model]
}

// ErrExists means a version is already loaded.
var ErrExists = errors.New("model version already exists")

// New makes a store of models and activates activeVersion, or, when it is empty, the newest
// model by creation time. Versions must be unique.
func New(models []*Model, activeVersion string) (*Store, error) {
	if len(models) == 0 {
		return nil, errors.New("no models")
	}
	s := &Store{}
	empty := map[string]*Model{}
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
func (s *Store) Add(m *Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.byVersion.Load()
	if _, dup := old[m.Version()]; dup {
		return fmt.Errorf("%w: %q", ErrExists, m.Version())
	}
	next := make(map[string]*Model, len(old)+1)
	for v, o := range old {
		next[v] = o
	}
	next[m.Version()] = m
	s.byVersion.Store(&next)
	return nil
}

// Active returns the active model.
func (s *Store) Active() (*Model, error) {
	if m := s.active.Load(); m != nil {
		return m, nil
	}
	return nil, ErrNoActive
}

// Get returns a loaded model by version.
func (s *Store) Get(version string) (*Model, error) {
	if m, ok := (*s.byVersion.Load())[version]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, version)
}

// Activate makes a loaded version the active one. Requests already holding the previous model
// finish with it; later ones get the new one.
func (s *Store) Activate(version string) error {
	m, err := s.Get(version)
	if err != nil {
		return err
	}
	s.active.Store(m)
	return nil
}

// List returns the loaded models, oldest first (by creation time, then version).
func (s *Store) List() []*Model {
	byVersion := *s.byVersion.Load()
	out := make([]*Model, 0, len(byVersion))
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

// LoadFS loads one bundle from a file system, for the embedded default model.
func LoadFS(fsys fs.FS, name string) (*Model, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	m, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m.Origin = OriginEmbedded
	return m, nil
}
