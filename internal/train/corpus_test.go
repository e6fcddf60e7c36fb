package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/model"
)

// TestHostileCorpus trains the auto trainers on every hostile dataset (corpus.go): each must give
// a bundle that the serving code loads (its check vectors reproduce) and that scores every golden
// row as the trainer did, with no trainer skipped, or stop with an error that names the column
// and the reason; all within a time budget. The normal run uses 400 rows, 3 folds (5 for the case
// about folds) and at most 20 boosting rounds, to stay cheap under -race; CHURN_CORPUS=full
// (make quality) 10000 rows, 5 folds and the default options.
func TestHostileCorpus(t *testing.T) {
	rows, folds, gbdt := 400, 3, DefaultGBDTOptions
	gbdt.MaxRounds, gbdt.EarlyStopping = 20, 5
	if os.Getenv("CHURN_CORPUS") == "full" {
		rows, folds, gbdt = 10000, 5, DefaultGBDTOptions
	}
	leafwise := gbdt
	leafwise.MaxDepth, leafwise.MaxLeaves = LeafwiseGBDTOptions.MaxDepth, LeafwiseGBDTOptions.MaxLeaves
	for _, c := range HostileCorpus(rows, 1) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			if c.Folds == 0 {
				c.Folds = folds
			}
			res, err := trainCorpusCase(c, AutoTrainers(1, gbdt, leafwise))
			if len(c.WantErr) > 0 {
				if err == nil {
					t.Fatalf("%s: trained a %s bundle, want an error containing %q", c.About, res.Trainer, c.WantErr)
				}
				for _, w := range c.WantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q lacks %q", c.About, err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", c.About, err)
			}
			for _, s := range res.Skipped {
				t.Errorf("%s: trainer %s skipped: %v", c.About, s.Name, s.Err)
			}
			var fits []string
			for _, cd := range res.Candidates {
				fits = append(fits, fmt.Sprintf("%s %.1f s", cd.Name, cd.Seconds))
			}
			t.Logf("%s: %s, test ROC-AUC %.4f, Brier %.4f (%s)", c.About, res.Trainer, res.Test.ROCAUC, res.Test.Brier, strings.Join(fits, ", "))
			checkServes(t, res)
		})
	}
}

// trainCorpusCase reads a case under its spec and runs the trainers on a stratified 80/20 split,
// as churnctl train does without --test-idx, within corpusBudget.
func trainCorpusCase(c CorpusCase, trainers []Trainer) (*Result, error) {
	spec, err := ParseSpec(c.Spec)
	if err != nil {
		return nil, err
	}
	ds, err := ReadCSV(bytes.NewReader(c.CSV), spec)
	if err != nil {
		return nil, err
	}
	trainRows, testRows := StratifiedSplit(ds.Labels, 0.2, 42)
	return Run(context.Background(), Config{
		Data: ds, TrainRows: trainRows, TestRows: testRows, Trainers: trainers, Folds: c.Folds,
		Tiers: DefaultTierQuantiles, Seed: 42, Name: "corpus", Version: c.Name, CreatedAt: time.Unix(1, 0).UTC(),
		Workers: 1, Budget: corpusBudget,
	})
}

// checkServes loads the bundle as churnd does (its check vectors must reproduce) and scores every
// golden row through the serving path.
func checkServes(t *testing.T, res *Result) {
	t.Helper()
	data, err := res.Bundle.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(data)
	if err != nil {
		t.Fatalf("the serving code refuses the bundle: %v", err)
	}
	if len(res.Golden) == 0 {
		t.Fatal("no golden rows")
	}
	for i, g := range res.Golden {
		var f churnv1.CustomerFeatures
		if err := protojson.Unmarshal(g.Features, &f); err != nil {
			t.Fatal(err)
		}
		r, err := m.Score(&f)
		if err != nil {
			t.Fatalf("golden row %d: %v", i, err)
		}
		if p := r.Probability; math.Abs(p-g.Probability) > bundle.CheckTolerance {
			t.Errorf("golden row %d: serving %v, trainer %v", i, p, g.Probability)
		}
	}
}

// corpusBudget is a case's time budget: far above what any case needs (about 3 minutes for the
// 1000 levels at full size on a busy machine), so that only a fit that does not end reaches it.
const corpusBudget = 10 * time.Minute
