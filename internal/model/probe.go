package model

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// probeFactors scale every numeric value of a check vector to make the probe set: customers
// around the ones the trainer vouched for, from none of everything to ten times as much.
var probeFactors = []float64{0, 0.1, 0.5, 2, 10}

// probe scores a probe set derived from the bundle's check vectors (each scaled by the
// probeFactors, and a customer with no features at all) and fails when any probe the model
// accepts gets a probability that is not a number in [0, 1]. Probes whose features the schema
// refuses (a required input missing, a count above its bound) are skipped: those are refusals of
// the input, not faults of the model. It is the last step of Load, after the check vectors: a
// bundle can reproduce its trainer on eight customers and still overflow on the ninth (weights
// of ±1e308 are finite).
func (m *Model) probe() error {
	try := func(name string, f *churnv1.CustomerFeatures) error {
		if _, err := m.Score(f); errors.Is(err, ErrUnscorable) {
			return fmt.Errorf("%w: probe %s: %v", ErrInvalid, name, err)
		}
		return nil
	}
	if err := try("with no features", &churnv1.CustomerFeatures{}); err != nil {
		return err
	}
	for i, cv := range m.Bundle.Manifest.CheckVectors {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(cv.Features, &f); err != nil {
			return fmt.Errorf("%w: check_vectors[%d].features: %v", ErrInvalid, i, err)
		}
		for _, k := range probeFactors {
			g := proto.Clone(&f).(*churnv1.CustomerFeatures)
			scaleNumbers(g.ProtoReflect(), k)
			if err := try(fmt.Sprintf("check_vectors[%d] × %g", i, k), g); err != nil {
				return err
			}
		}
	}
	return nil
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
