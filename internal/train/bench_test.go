package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/sharedtest"
)

// BenchmarkCheckRequests measures the check that every row of a dataset is a request serving
// accepts (Run makes it before any fit), beside ReadCSV of the same file: bankchurners, 10,127
// rows of 19 mapped columns.
func BenchmarkCheckRequests(b *testing.B) {
	rawSpec, err := os.ReadFile("../../models/specs/bankchurners.json")
	if err != nil {
		b.Fatal(err)
	}
	spec, err := ParseSpec(rawSpec)
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(sharedtest.Path(b, "data/bankchurners.csv"))
	if err != nil {
		b.Fatal(err)
	}
	ds, err := ReadCSV(bytes.NewReader(data), spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ReadCSV", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadCSV(bytes.NewReader(data), spec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckRequests", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ds.CheckRequests(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFitGBDTShared measures one fit of each tree family on the rows scikit-learn's
// HistGradientBoosting fits in shared/bench/baselines.py (the standard training rows), for every
// dataset of shared/data with a spec in models/specs and more than 5,000 rows: the family's
// final fit, with the number of rounds its cross-fitting chooses (found before the timing).
// internal/tools/speed-table.py prints it beside HistGradientBoosting's fit.
func BenchmarkFitGBDTShared(b *testing.B) {
	specs, err := filepath.Glob("../../models/specs/*.json")
	if err != nil {
		b.Fatal(err)
	}
	dataDir := sharedtest.Path(b, "data")
	for _, spec := range specs {
		name := strings.TrimSuffix(filepath.Base(spec), ".json")
		if _, err := os.Stat(filepath.Join(dataDir, name+".csv")); err != nil {
			continue
		}
		b.Run(name, func(b *testing.B) { benchmarkFitGBDTShared(b, name) })
	}
}

// benchmarkFitGBDTShared is BenchmarkFitGBDTShared on one dataset: its setup runs only when the
// dataset is selected.
func benchmarkFitGBDTShared(b *testing.B, name string) {
	ds, trainRows, testRows := loadShared(b, name)
	if len(ds.Rows) <= 5000 {
		b.Skipf("%s has %d rows, not more than 5,000", name, len(ds.Rows))
	}
	pp, err := LearnPrepFor(ds, trainRows, EncodeRaw)
	if err != nil {
		b.Fatal(err)
	}
	fold, err := StratifiedFolds(labels(ds, trainRows), 5, 42)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Data: ds, TrainRows: trainRows, TestRows: testRows, Seed: 42, C: 1, Tiers: DefaultTierQuantiles, CreatedAt: time.Unix(1, 0)}
	if err := cfg.check(); err != nil { // the defaults: folds, workers, clock
		b.Fatal(err)
	}
	all := encode(pp, ds, trainRows).all()
	for _, tr := range AutoTrainers(1, DefaultGBDTOptions, LeafwiseGBDTOptions)[1:] {
		c, err := crossFit(context.Background(), cfg, tr, pp, fold, &progress{now: time.Now})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tr.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Fit(context.Background(), FitInput{Train: all, Rounds: c.Rounds}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Rounds), "rounds")
		})
	}
}

// BenchmarkRunAuto measures churnctl train's default, auto (three families, 5-fold
// cross-fitting, calibration), on the standard training rows of bankchurners.
func BenchmarkRunAuto(b *testing.B) {
	ds, trainRows, testRows := loadShared(b, "bankchurners")
	for b.Loop() {
		_, err := Run(context.Background(), Config{
			Data: ds, TrainRows: trainRows, TestRows: testRows, Tiers: DefaultTierQuantiles, Seed: 42,
			Trainers: AutoTrainers(1, DefaultGBDTOptions, LeafwiseGBDTOptions),
			Name:     "bench", Version: "bench", CreatedAt: time.Unix(1, 0).UTC(), SpecName: "bankchurners",
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
