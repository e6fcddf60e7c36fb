// Package model turns the bytes of a model bundle into a servable model, and scores customers
// with it. It is the one place that does either:
//
//   - Load is the gate every bundle passes, wherever it comes from (the embedded default,
//     --model-dir, an upload, `churnctl train`, `churnctl import`, `churnctl evaluate`): it parses
//     and validates the bundle once (bundle.Parse), compiles the input schema into a feature mapper
//     (internal/features) and the parameters into an evaluator (internal/scoring), replays every
//     check vector through the same path that serves requests, and probes the model around them.
//     A bundle whose check vectors differ from its trainer's probabilities by more than
//     bundle.CheckTolerance, or that gives a probability outside [0, 1] for a probe, is refused.
//   - Model.Score and Model.Explain map a request's CustomerFeatures and evaluate them, returning
//     plain Go values (Result): probability, tier, margin, imputed inputs and, for Explain, the
//     drivers with the base they add up to. Turning them into protobuf messages is the server's job.
//
// Errors about a request are *ValidationError values (from internal/features) that name each bad
// field by its path in the ScoreRequest; every error about a bundle wraps ErrInvalid.
package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/scoring"
)

// MaxBundleBytes bounds the size of one bundle.
const MaxBundleBytes = 64 << 20

// ErrInvalid is wrapped by every error about a bundle: it is not a model this build can serve.
var ErrInvalid = bundle.ErrInvalid

// ErrUnscorable means the model computed a probability that is not a number in [0, 1] for a
// valid request: the model's fault, not the caller's. Load's probes make it rare; it remains
// possible for a logistic regression whose weighted sum overflows on inputs far from its training
// data.
var ErrUnscorable = errors.New("the model could not score these values")

// ValidationError is every violation found in one request; Score and Explain return it for
// input the model's schema refuses.
type ValidationError = features.ValidationError

// Violation names one bad field of a request by its path in the ScoreRequest.
type Violation = features.Violation

// ValidVersion reports whether v is a well-formed model version (also used for model names).
func ValidVersion(v string) bool { return bundle.ValidVersion(v) }

// Origins of a model.
const (
	OriginEmbedded  = "embedded"  // the default bundle built into the binary
	OriginDirectory = "directory" // a bundle in --model-dir
	OriginStore     = "store"     // an uploaded version
)

// Model is a loaded, verified model version. It is immutable once loaded (but for Origin, which
// the loader sets) and safe for concurrent use.
type Model struct {
	Bundle *bundle.Bundle
	// Origin says where the bundle came from: OriginEmbedded, OriginDirectory or OriginStore.
	Origin string
	// SHA256 (lower-case hex) and Size are of the bundle's bytes as loaded; empty and 0 for a
	// model made by Compile.
	SHA256 string
	Size   int64

	mapper  *features.Mapper
	eval    *scoring.Evaluator
	inputs  []inputSpan // where each input's columns are, for drivers
	scratch sync.Pool   // *scratch
}

// scratch holds the buffers of one Score or Explain, reused through Model.scratch.
type scratch struct {
	x, contrib []float64
	imputed    []int
	shares     []share // every input's contribution, before the strongest are picked
}

// Name returns the model's name.
func (m *Model) Name() string { return m.Bundle.Manifest.Name }

// Version returns the model's version.
func (m *Model) Version() string { return m.Bundle.Manifest.Version }

// Type returns the model's type: bundle.ModelLogistic or bundle.ModelTrees.
func (m *Model) Type() string { return m.Bundle.Model.Type }

// NumInputs returns the number of the model's inputs.
func (m *Model) NumInputs() int { return m.mapper.NumInputs() }

// Width returns the number of the model's input columns (one-hot columns counted one by one).
func (m *Model) Width() int { return m.mapper.Width() }

// Load parses, validates, compiles and verifies one bundle: the gate of every bundle (see the
// package doc). Every error wraps ErrInvalid.
func Load(data []byte) (*Model, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(data), MaxBundleBytes)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, err
	}
	m, err := compile(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	m.SHA256, m.Size = hex.EncodeToString(sum[:]), int64(len(data))
	if err := m.verify(); err != nil {
		return nil, err
	}
	if err := m.probe(); err != nil {
		return nil, err
	}
	return m, nil
}

// Compile validates b (bundle.Validate) and compiles it without running its check vectors: for an
// importer that needs the serving path to compute the probabilities it then records as check
// vectors. A bundle is only served after Load.
func Compile(b *bundle.Bundle) (*Model, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return compile(b)
}

// compile builds the mapper and the evaluator of a validated bundle. The input sources are the
// one thing bundle.Validate cannot check: which typed fields exist is the feature mapper's table.
func compile(b *bundle.Bundle) (*Model, error) {
	mapper, err := features.New(&b.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Model{
		Bundle: b,
		mapper: mapper,
		eval:   scoring.New(b),
		inputs: spans(&b.Manifest),
	}, nil
}

// verify runs every check vector through the serving path.
func (m *Model) verify() error {
	for i, cv := range m.Bundle.Manifest.CheckVectors {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(cv.Features, &f); err != nil {
			return fmt.Errorf("%w: check_vectors[%d].features: %v", ErrInvalid, i, err)
		}
		r, err := m.Score(&f)
		if err != nil {
			return fmt.Errorf("%w: check_vectors[%d] does not map: %v", ErrInvalid, i, err)
		}
		if d := math.Abs(r.Probability - cv.Probability); !(d <= bundle.CheckTolerance) {
			return fmt.Errorf("%w: check_vectors[%d]: serving computes %.17g, the trainer computed %.17g (difference %.3g > %g)",
				ErrInvalid, i, r.Probability, cv.Probability, d, bundle.CheckTolerance)
		}
	}
	return nil
}

// LoadFile loads the bundle in a file; it reads at most MaxBundleBytes of it.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBundleBytes+1))
	if err != nil {
		return nil, err
	}
	m, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
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
		m, err := LoadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		m.Origin = OriginDirectory
		models = append(models, m)
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("model directory %s: no *.json model bundles", dir)
	}
	return models, nil
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

// Result is a customer's score, in plain Go values.
type Result struct {
	Probability float64
	Tier        churnv1.RiskTier
	// Margin is the model's log-odds before calibration.
	Margin float64
	// Imputed names the inputs whose value was missing, or a category the model does not know,
	// and was imputed by the input's missing policy; nil when none.
	Imputed []string
	// Unknown lists the categories the model did not know (their inputs are in Imputed too); nil
	// when none.
	Unknown []UnknownCategory
	// Base is set by Explain: Base plus the contributions of Drivers() is Margin (to rounding).
	Base float64

	// The drivers are held in the Result itself rather than in a slice of their own: one
	// allocation of ~430 bytes less per explained Score (docs/PERFORMANCE.md, "Issue 11: the
	// whole change against its budget").
	drivers  [MaxDrivers]Driver
	nDrivers int
}

// Drivers are the drivers Explain found, at most MaxDrivers, from most raising to most lowering
// the risk; none after Score.
func (r *Result) Drivers() []Driver { return r.drivers[:r.nDrivers] }

// UnknownCategory is a categorical input's value the model was not trained on, scored as missing
// (the input's unseen policy is bundle.UnseenMissing).
type UnknownCategory struct {
	Input, Value string
}

// Score maps f by the model's schema and evaluates it: the one scoring path, of requests and of
// check vectors alike. Errors are a *ValidationError for input the schema refuses, or
// ErrUnscorable.
func (m *Model) Score(f *churnv1.CustomerFeatures) (Result, error) {
	return m.score(f, false)
}

// Explain is Score that also says why: the drivers with the base they add up to (see Driver).
// The model is evaluated once: for a tree ensemble the attribution rides on the scoring walk
// (scoring.Evaluator.Explain).
func (m *Model) Explain(f *churnv1.CustomerFeatures) (Result, error) {
	return m.score(f, true)
}

func (m *Model) score(f *churnv1.CustomerFeatures, explain bool) (Result, error) {
	sc, _ := m.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{x: make([]float64, m.Width()), contrib: make([]float64, m.Width()), shares: make([]share, 0, m.NumInputs())}
	}
	defer m.scratch.Put(sc)

	var r Result
	imputed, err := m.mapper.Map(f, sc.x, sc.imputed[:0])
	sc.imputed = imputed
	if err != nil {
		return Result{}, err
	}
	if explain {
		r.Margin, r.Base = m.eval.Explain(sc.x, sc.contrib)
		r.nDrivers = len(m.drivers(sc.x, sc.contrib, sc.shares, r.drivers[:0]))
	} else {
		r.Margin = m.eval.Margin(sc.x)
	}
	r.Probability = m.eval.Probability(r.Margin)
	if !(r.Probability >= 0 && r.Probability <= 1) { // NaN: finite inputs whose weighted sum overflows
		return Result{}, fmt.Errorf("%w: model version %q computed a margin of %v", ErrUnscorable, m.Version(), r.Margin)
	}
	r.Tier = tier(m.eval.Tier(r.Probability))
	if len(imputed) > 0 {
		r.Imputed = make([]string, len(imputed))
		for i, in := range imputed {
			r.Imputed[i] = m.mapper.InputName(in)
			if v, ok := m.mapper.Unknown(f, in); ok {
				r.Unknown = append(r.Unknown, UnknownCategory{Input: r.Imputed[i], Value: v})
			}
		}
	}
	return r, nil
}

// tier is the API's name of a scoring tier.
func tier(t scoring.Tier) churnv1.RiskTier {
	switch t {
	case scoring.TierLow:
		return churnv1.RiskTier_RISK_TIER_LOW
	case scoring.TierMedium:
		return churnv1.RiskTier_RISK_TIER_MEDIUM
	case scoring.TierHigh:
		return churnv1.RiskTier_RISK_TIER_HIGH
	case scoring.TierCritical:
		return churnv1.RiskTier_RISK_TIER_CRITICAL
	}
	return churnv1.RiskTier_RISK_TIER_UNSPECIFIED
}
