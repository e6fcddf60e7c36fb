package train

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/churnhq/churn/internal/bundle"
)

// Value is one cell of a mapped column: a number for a numeric source, a category for a
// categorical source (after the spec's recoding), or missing.
type Value struct {
	Num     float64
	Cat     string
	Missing bool
}

// Dataset is a CSV read under a spec: one row per CSV data row, in file order, with one Value
// per spec column in spec order, and the labels. Derived are the spec's derived inputs, which
// the preprocessing (Prep) computes from the row's values.
type Dataset struct {
	Columns []Column
	Derived []Derived
	Rows    [][]Value
	Labels  []bool
}

// MaxRows bounds the data rows of a CSV.
const MaxRows = 10_000_000

// ReadCSV reads a CSV with a header row under spec (which must be valid). Every header must be the
// label, a dropped column or a mapped column, and every column the spec names must be in the
// header. Cells are trimmed of spaces; an empty cell is missing. Numeric cells must parse as
// finite numbers; categorical cells are recoded by the column's values when it has them. A
// missing cell in a column whose missing policy is "error" is refused, as is a missing label.
// Errors name the data row (0-based, as in the split files), its line and the column.
func ReadCSV(r io.Reader, spec *Spec) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	layout, err := newLayout(header, spec)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Columns: slices.Clone(spec.Columns), Derived: slices.Clone(spec.Derived)}
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("csv row %d (line %d): %v", row, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("csv row %d: %w", row, err)
		}
		if row >= MaxRows {
			return nil, fmt.Errorf("csv: more than %d data rows", MaxRows)
		}
		line, _ := cr.FieldPos(0)
		vals, y, err := layout.parse(rec)
		if err != nil {
			return nil, fmt.Errorf("csv row %d (line %d), %v", row, line, err)
		}
		ds.Rows = append(ds.Rows, vals)
		ds.Labels = append(ds.Labels, y)
	}
	if len(ds.Rows) == 0 {
		return nil, errors.New("csv: no data rows")
	}
	return ds, nil
}

// layout says where the label and the mapped columns are in a CSV record.
type layout struct {
	spec  *Spec
	label int   // index of the label column
	index []int // index of each spec column
}

func newLayout(header []string, spec *Spec) (*layout, error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		if _, dup := pos[h]; dup {
			return nil, fmt.Errorf("csv header: column %q appears twice", h)
		}
		pos[h] = i
	}
	known := map[string]bool{spec.Label.Column: true}
	for _, d := range spec.Drop {
		known[d] = true
	}
	for _, c := range spec.Columns {
		known[c.CSV] = true
	}
	for _, h := range header {
		if !known[h] {
			return nil, fmt.Errorf("csv header: column %q is neither the label, dropped nor mapped in spec %s: add it to the spec's columns or drop", h, spec.Name)
		}
	}
	var absent []string
	for name := range known {
		if _, ok := pos[name]; !ok {
			absent = append(absent, name)
		}
	}
	if len(absent) > 0 {
		sort.Strings(absent)
		return nil, fmt.Errorf("csv header: spec %s names columns the CSV does not have: %q", spec.Name, absent)
	}
	l := &layout{spec: spec, label: pos[spec.Label.Column]}
	for _, c := range spec.Columns {
		l.index = append(l.index, pos[c.CSV])
	}
	return l, nil
}

// parse converts one record; errors start with the column.
func (l *layout) parse(rec []string) ([]Value, bool, error) {
	lab := strings.TrimSpace(rec[l.label])
	if lab == "" {
		return nil, false, fmt.Errorf("column %q: the label is missing", l.spec.Label.Column)
	}
	vals := make([]Value, len(l.index))
	for j, c := range l.spec.Columns {
		v, err := parseCell(&c, strings.TrimSpace(rec[l.index[j]]))
		if err != nil {
			return nil, false, fmt.Errorf("column %q: %v", c.CSV, err)
		}
		vals[j] = v
	}
	return vals, lab == l.spec.Label.Positive, nil
}

// parseCell converts one trimmed cell of column c.
func parseCell(c *Column, cell string) (Value, error) {
	if cell == "" {
		if c.Missing == bundle.MissingError {
			return Value{}, errors.New("empty cell, and the column's missing policy is error")
		}
		return Value{Missing: true}, nil
	}
	if c.Type() == bundle.TypeCategorical {
		if len(c.Values) == 0 {
			return Value{Cat: cell}, nil
		}
		cat, ok := c.Values[cell]
		if !ok {
			return Value{}, fmt.Errorf("%q is not one of the spec's values %q", cell, sortedKeys(c.Values))
		}
		return Value{Cat: cat}, nil
	}
	x, err := strconv.ParseFloat(cell, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return Value{}, fmt.Errorf("%q is not a finite number", cell)
	}
	if c.Transform == bundle.TransformLog1p && x < 0 {
		return Value{}, fmt.Errorf("%g is negative, and the column's transform is log1p", x)
	}
	return Value{Num: x}, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
