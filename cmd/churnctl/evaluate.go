package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/churnhq/churn/internal/evaluate"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/train"
)

// evaluateFlags are the flags of churnctl evaluate.
type evaluateFlags struct {
	model, data, spec, rows, segment, format, out string
}

// evaluateUsage is a bad flag value of churnctl evaluate: exit code 2.
type evaluateUsage struct{ error }

func runEvaluate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("churnctl evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f evaluateFlags
	fs.StringVar(&f.model, "model", "", "model bundle (JSON) to evaluate (required)")
	fs.StringVar(&f.data, "data", "", "data: a CSV file with a header row and the label column (required)")
	fs.StringVar(&f.spec, "spec", "", "dataset spec (JSON) mapping the CSV's columns to request fields (required)")
	fs.StringVar(&f.rows, "rows", "", "evaluate only these rows: a file of 0-based data-row indices, one a line (default: every row)")
	fs.StringVar(&f.segment, "segment", "", "also break the figures down by the values of this CSV column")
	fs.StringVar(&f.format, "format", "text", "report format: text, json or html")
	fs.StringVar(&f.out, "out", "", "write the report to this file (default: standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl evaluate --model bundle.json --data file.csv --spec spec.json [flags]")
		fmt.Fprintln(stderr, "\nScores every row (or the --rows) through the bundle as churnd would and reports ROC-AUC, PR-AUC,")
		fmt.Fprintln(stderr, "log loss, Brier, calibration, lift and capture at the top 5/10/20%, the confusion at each tier")
		fmt.Fprintln(stderr, "threshold and, with --segment, a breakdown by segment. Rows the model refuses are counted.")
		fs.PrintDefaults()
	}
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	err := evaluateCommand(ctx, &f, stdout)
	var ue evaluateUsage
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "churnctl evaluate: %v\n", err)
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "churnctl evaluate: %v\n", err)
		return 1
	}
}

// evaluateCommand loads the model and the data, scores the rows, evaluates and writes the report.
func evaluateCommand(ctx context.Context, f *evaluateFlags, stdout io.Writer) error {
	for _, req := range []struct{ name, val string }{{"model", f.model}, {"data", f.data}, {"spec", f.spec}} {
		if req.val == "" {
			return evaluateUsage{fmt.Errorf("--%s is required", req.name)}
		}
	}
	var render func(*evaluate.Report, io.Writer) error
	switch f.format {
	case "text":
		render = (*evaluate.Report).WriteText
	case "json":
		render = (*evaluate.Report).WriteJSON
	case "html":
		render = (*evaluate.Report).WriteHTML
	default:
		return evaluateUsage{fmt.Errorf("--format %q: want text, json or html", f.format)}
	}
	report, err := evaluateFiles(ctx, f)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := render(report, &buf); err != nil {
		return err
	}
	if f.out == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(f.out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// evaluateFiles reads the flags' files and evaluates the model on the chosen rows.
func evaluateFiles(ctx context.Context, f *evaluateFlags) (*evaluate.Report, error) {
	m, err := model.LoadFile(f.model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	ds, data, rows, err := readRows(f.data, f.spec, f.rows)
	if err != nil {
		return nil, err
	}
	var segOf []string
	if f.segment != "" {
		if segOf, err = readColumn(data, f.segment); err != nil {
			return nil, fmt.Errorf("--segment %q: %w", f.segment, err)
		}
		if len(segOf) != len(ds.Rows) {
			return nil, fmt.Errorf("--segment %q: %d values for %d data rows", f.segment, len(segOf), len(ds.Rows))
		}
	}
	in, refused, err := scoreRows(ctx, m, ds, rows, segOf)
	if err != nil {
		return nil, err
	}
	in.Split = "rows"
	if f.rows != "" {
		in.Split = strings.TrimSuffix(filepath.Base(f.rows), filepath.Ext(f.rows))
	}
	in.Tiers = &m.Bundle.Manifest.Tiers
	in.SegmentColumn = f.segment
	if len(in.Labels) == 0 {
		return nil, fmt.Errorf("the model refused all %d rows; first: row %d: %s", refused.Rows, refused.Examples[0].Row, refused.Examples[0].Reason)
	}
	report, err := evaluate.Evaluate(in)
	if err != nil {
		return nil, err
	}
	report.Model, report.Version = m.Name(), m.Version()
	report.Data = filepath.Base(f.data)
	if f.rows != "" {
		report.RowsFile = filepath.Base(f.rows)
	}
	report.Refused = refused
	return report, nil
}

// readRows reads a dataset spec, the CSV it describes and, when rowsPath is set, the 0-based
// data-row indices to use (else every row): what evaluate and replay both read. It returns the
// CSV's bytes too, for columns the spec does not map.
func readRows(dataPath, specPath, rowsPath string) (*train.Dataset, []byte, []int, error) {
	rawSpec, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--spec: %w", err)
	}
	spec, err := train.ParseSpec(rawSpec)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--spec %s: %w", specPath, err)
	}
	data, err := os.ReadFile(dataPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--data: %w", err)
	}
	ds, err := train.ReadCSV(bytes.NewReader(data), spec)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--data %s: %w", dataPath, err)
	}
	if rowsPath == "" {
		rows := make([]int, len(ds.Rows))
		for i := range rows {
			rows[i] = i
		}
		return ds, data, rows, nil
	}
	fh, err := os.Open(rowsPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--rows: %w", err)
	}
	defer fh.Close()
	rows, err := train.ReadIndices(fh, len(ds.Rows))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--rows %s: %w", rowsPath, err)
	}
	return ds, data, rows, nil
}

// scoreRows scores each row as churnd would: the row becomes the request a caller would send, and
// the model's one scoring path maps and evaluates it. Rows the model refuses are counted with the
// fields they were refused for.
func scoreRows(ctx context.Context, m *model.Model, ds *train.Dataset, rows []int, segOf []string) (evaluate.Input, evaluate.Refusals, error) {
	var in evaluate.Input
	var refused evaluate.Refusals
	for k, i := range rows {
		if k%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return in, refused, err
			}
		}
		req, err := ds.Request(i)
		if err != nil {
			return in, refused, err
		}
		res, err := m.Score(req)
		if err != nil {
			var ve *model.ValidationError
			if !errors.As(err, &ve) {
				return in, refused, fmt.Errorf("row %d: %w", i, err)
			}
			fields := make([]string, len(ve.Violations))
			for j, v := range ve.Violations {
				fields[j] = v.Field
			}
			refused.Add(i, fields, err)
			continue
		}
		in.Labels = append(in.Labels, ds.Labels[i])
		in.Probabilities = append(in.Probabilities, res.Probability)
		if segOf != nil {
			in.Segments = append(in.Segments, segOf[i])
		}
	}
	return in, refused, nil
}

// readColumn returns the trimmed cells of one CSV column, one per data row, in file order (the
// rows of train.ReadCSV); an empty cell is "(missing)".
func readColumn(data []byte, column string) ([]string, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	at := -1
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		if h == column {
			at = i
			break
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("the CSV has no such column (columns: %q)", header)
	}
	var out []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		v := strings.TrimSpace(rec[at])
		if v == "" {
			v = "(missing)"
		}
		out = append(out, v)
	}
}
