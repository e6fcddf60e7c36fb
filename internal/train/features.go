package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// This file turns a dataset row into the CustomerFeatures a caller would send for it, so that
// check vectors and golden rows are real requests. Typed sources (account.tenure_months) are set
// through protobuf reflection by their proto field names, which is what a bundle's source names
// are; numeric.<key> and categorical.<key> go into the maps.

// setFeature stores one value of a row in f under source. A missing value is not set.
func setFeature(f *churnv1.CustomerFeatures, source string, v Value) error {
	if v.Missing {
		return nil
	}
	if k, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		if f.Numeric == nil {
			f.Numeric = map[string]float64{}
		}
		f.Numeric[k] = v.Num
		return nil
	}
	if k, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		if f.Categorical == nil {
			f.Categorical = map[string]string{}
		}
		f.Categorical[k] = v.Cat
		return nil
	}
	gfd, fd, err := typedField(source)
	if err != nil {
		return err
	}
	sub := f.ProtoReflect().Mutable(gfd).Message()
	if fd.Kind() == protoreflect.StringKind {
		sub.Set(fd, protoreflect.ValueOfString(v.Cat))
	} else {
		sub.Set(fd, protoreflect.ValueOfFloat64(v.Num))
	}
	return nil
}

// typedField resolves a typed source such as account.contract to its group field in
// CustomerFeatures and the scalar field inside it (a double or a string).
func typedField(source string) (group, field protoreflect.FieldDescriptor, err error) {
	g, name, ok := strings.Cut(source, ".")
	if !ok {
		return nil, nil, fmt.Errorf("source %q is not group.field", source)
	}
	group = (&churnv1.CustomerFeatures{}).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(g))
	if group == nil || group.Kind() != protoreflect.MessageKind || group.IsList() || group.IsMap() {
		return nil, nil, fmt.Errorf("source %q: CustomerFeatures has no message field %q", source, g)
	}
	field = group.Message().Fields().ByName(protoreflect.Name(name))
	if field == nil || field.IsList() || field.IsMap() ||
		(field.Kind() != protoreflect.DoubleKind && field.Kind() != protoreflect.StringKind) {
		return nil, nil, fmt.Errorf("source %q: %s has no double or string field %q", source, group.Message().Name(), name)
	}
	return group, field, nil
}

// checkSettable reports whether setFeature can write source, and whether the proto field's kind
// agrees with the input type the bundle gives the source.
func checkSettable(source string) error {
	t, err := bundle.SourceType(source)
	if err != nil {
		return err
	}
	if strings.HasPrefix(source, bundle.NumericPrefix) || strings.HasPrefix(source, bundle.CategoricalPrefix) {
		return nil
	}
	_, fd, err := typedField(source)
	if err != nil {
		return err
	}
	if (fd.Kind() == protoreflect.StringKind) != (t == bundle.TypeCategorical) {
		return fmt.Errorf("source %q: proto field kind %v does not match the bundle type %s", source, fd.Kind(), t)
	}
	return nil
}

// rowFeatures builds the CustomerFeatures of row; missing values are left unset.
func rowFeatures(cols []Column, row []Value) (*churnv1.CustomerFeatures, error) {
	f := &churnv1.CustomerFeatures{}
	for j, c := range cols {
		if err := setFeature(f, c.Source, row[j]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// featuresJSON is the protobuf JSON of f, compacted: protojson's own spacing varies between
// builds on purpose, and bundles must be reproducible byte for byte.
func featuresJSON(f *churnv1.CustomerFeatures) (json.RawMessage, error) {
	raw, err := protojson.Marshal(f)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
