package importer

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ProbabilityColumn is the column of a rows file that holds the library's own probability.
const ProbabilityColumn = "probability"

// Rows are inputs the foreign library scored, with its probabilities: the golden vectors of an
// import. In a file they are a CSV with a header row: one column per model feature (named as the
// model names it, any order) and a ProbabilityColumn. An empty cell, "nan", "NaN" or "NA" is a
// missing value.
type Rows struct {
	// Features names the value columns, in the order of each row's Values.
	Features []string
	Rows     []Row
}

// Row is one scored input.
type Row struct {
	// Line is the row's line in its file (the header is line 1), for error messages.
	Line int
	// Values are the feature values, NaN where missing.
	Values []float64
	// Probability is the library's predicted probability of the positive class.
	Probability float64
}

// MaxRows bounds the rows of a rows file.
const MaxRows = 100000

// ParseRows reads a rows CSV. Errors name the line and the column.
func ParseRows(r io.Reader) (*Rows, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("rows: empty file: want a header row of feature names and probability")
		}
		return nil, fmt.Errorf("rows: line 1: %v", err)
	}
	probCol := -1
	seen := map[string]bool{}
	var out Rows
	var valueCols []int
	for j, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("rows: line 1: column %d has an empty name", j+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("rows: line 1: column %q appears twice", h)
		}
		seen[h] = true
		if h == ProbabilityColumn {
			probCol = j
			continue
		}
		out.Features = append(out.Features, h)
		valueCols = append(valueCols, j)
	}
	if probCol < 0 {
		return nil, fmt.Errorf("rows: line 1: no %q column (the library's predicted probability)", ProbabilityColumn)
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rows: %v", err)
		}
		if len(out.Rows) == MaxRows {
			return nil, fmt.Errorf("rows: line %d: more than %d rows", line, MaxRows)
		}
		row := Row{Line: line, Values: make([]float64, len(valueCols))}
		p, missing, err := parseCell(rec[probCol])
		if err != nil || missing || p < 0 || p > 1 {
			return nil, fmt.Errorf("rows: line %d: column %q: %q is not a probability in [0,1]", line, ProbabilityColumn, rec[probCol])
		}
		row.Probability = p
		for k, j := range valueCols {
			x, missing, err := parseCell(rec[j])
			if err != nil {
				return nil, fmt.Errorf("rows: line %d: column %q: %v", line, header[j], err)
			}
			if missing {
				x = math.NaN()
			}
			row.Values[k] = x
		}
		out.Rows = append(out.Rows, row)
	}
	if len(out.Rows) == 0 {
		return nil, errors.New("rows: no data rows after the header")
	}
	return &out, nil
}

// parseCell parses a value cell: a finite number, or a missing value.
func parseCell(s string) (x float64, missing bool, err error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "nan", "NaN", "NA":
		return 0, true, nil
	}
	x, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, false, fmt.Errorf("%q is not a finite number or a missing value (empty, nan, NA)", s)
	}
	return x, false, nil
}
