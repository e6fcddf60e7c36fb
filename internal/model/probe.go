package model

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/features"
)

// probeFactors scale every numeric value of a check vector to make the probe set: customers
// around the ones the trainer vouched for, from none of everything to ten times as much.
var probeFactors = []float64{0, 0.1, 0.5, 2, 10}

// Bounds of the probe set, so that loading a model with many inputs and categories stays quick.
const (
	maxProbeCategories = 64    // of one categorical input
	maxProbes          = 50000 // in all
)

// probe scores a probe set derived from the bundle's check vectors and fails when any probe the
// model accepts gets a probability that is not a number in [0, 1]. For each check vector: the
// customer with every number scaled by the probeFactors; each input at the ends of the range the
// manifest records for it (Input.Range), and every ranged input at its minimum, then at its
// maximum, at once; each input missing; each categorical input at each of its categories and at a
// category the model has not seen. And a customer with no features at all. Probes whose features
// the schema refuses (a required input missing, a count above its bound) are skipped: those are
// refusals of the input, not faults of the model. It is the last step of Load, after the check
// vectors: a bundle can reproduce its trainer on eight customers and still overflow on the ninth.
func (m *Model) probe() error {
	n := 0
	try := func(name string, f *churnv1.CustomerFeatures) error {
		if n++; n > maxProbes {
			return nil
		}
		if _, err := m.Score(f); errors.Is(err, ErrUnscorable) {
			return fmt.Errorf("%w: probe %s: %v", ErrInvalid, name, err)
		}
		return nil
	}
	if err := try("with no features", &churnv1.CustomerFeatures{}); err != nil {
		return err
	}
	inputs := m.Bundle.Manifest.Inputs
	for i, cv := range m.Bundle.Manifest.CheckVectors {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(cv.Features, &f); err != nil {
			return fmt.Errorf("%w: check_vectors[%d].features: %v", ErrInvalid, i, err)
		}
		// change is the check vector with some values changed.
		change := func(name string, set func(g *churnv1.CustomerFeatures)) error {
			g := proto.Clone(&f).(*churnv1.CustomerFeatures)
			set(g)
			return try(fmt.Sprintf("check_vectors[%d] %s", i, name), g)
		}
		for _, k := range probeFactors {
			if err := change(fmt.Sprintf("× %g", k), func(g *churnv1.CustomerFeatures) { scaleNumbers(g.ProtoReflect(), k) }); err != nil {
				return err
			}
		}
		for _, end := range []string{"min", "max"} {
			if err := change("with every input at its range's "+end, func(g *churnv1.CustomerFeatures) {
				for _, in := range inputs {
					if r := in.Range; r != nil {
						features.SetNumber(g, in.Source, rangeEnd(r, end))
					}
				}
			}); err != nil {
				return err
			}
		}
		for _, in := range inputs {
			if in.Source == "" {
				continue
			}
			if err := change(in.Name+" missing", func(g *churnv1.CustomerFeatures) { features.Unset(g, in.Source) }); err != nil {
				return err
			}
			if r := in.Range; r != nil {
				for _, end := range []string{"min", "max"} {
					if err := change(fmt.Sprintf("%s at its range's %s %g", in.Name, end, rangeEnd(r, end)), func(g *churnv1.CustomerFeatures) {
						features.SetNumber(g, in.Source, rangeEnd(r, end))
					}); err != nil {
						return err
					}
				}
			}
			if in.Type != bundle.TypeCategorical {
				continue
			}
			cats := append(in.Categories[:min(len(in.Categories), maxProbeCategories):min(len(in.Categories), maxProbeCategories)], unseenProbe)
			for _, c := range cats {
				if err := change(fmt.Sprintf("%s = %s", in.Name, bundle.Quote(c)), func(g *churnv1.CustomerFeatures) { features.SetText(g, in.Source, c) }); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// unseenProbe is the category the probes send for a category the model has not seen.
const unseenProbe = "(a category the model has not seen)"

func rangeEnd(r *bundle.Range, end string) float64 {
	if end == "min" {
		return r.Min
	}
	return r.Max
}

// scaleNumbers multiplies every double set in msg, in its sub-messages and in its maps, by k.
func scaleNumbers(msg protoreflect.Message, k float64) {
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.DoubleKind:
			m := v.Map()
			m.Range(func(key protoreflect.MapKey, mv protoreflect.Value) bool {
				m.Set(key, protoreflect.ValueOfFloat64(scale(mv.Float(), k)))
				return true
			})
		case fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap():
			scaleNumbers(v.Message(), k)
		case fd.Kind() == protoreflect.DoubleKind && !fd.IsList():
			msg.Set(fd, protoreflect.ValueOfFloat64(scale(v.Float(), k)))
		}
		return true
	})
}

func scale(v, k float64) float64 {
	if r := v * k; !math.IsInf(r, 0) {
		return r
	}
	return v
}
