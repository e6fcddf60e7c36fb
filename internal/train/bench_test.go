package train

import (
	"bytes"
	"context"
	"os"
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

// BenchmarkFitGBDTShared measures one fit of each tree family on the standard training rows of
// the shared datasets with more than 5,000 rows, the rows scikit-learn's HistGradientBoosting
// fits in shared/bench/baselines.py: the family's options, early stopping on fold 1 of 5 as in
// cross-fitting. scripts/speed-table.sh prints it beside HistGradientBoosting's fit.
func BenchmarkFitGBDTShared(b *testing.B) {
	for _, name := range []string{"wa_churn", "bankchurners"} {
		ds, trainRows, _ := loadShared(b, name)
		pp, err := LearnPrepFor(ds, trainRows, EncodeRaw)
		if err != nil {
			b.Fatal(err)
		}
		enc := encode(pp, ds, trainRows)
		fold, err := StratifiedFolds(enc.y, 5, 42)
		if err != nil {
			b.Fatal(err)
		}
		train, valid := enc.subset(positions(fold, 0, false)), enc.subset(positions(fold, 0, true))
		for _, tr := range AutoTrainers(1, DefaultGBDTOptions, LeafwiseGBDTOptions)[1:] {
			b.Run(name+"/"+tr.Name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := tr.Fit(context.Background(), FitInput{Train: train, Valid: &valid}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
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
