package train

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStratifiedSplitKeepsTheRate(t *testing.T) {
	t.Parallel()
	labels := make([]bool, 1000)
	for i := range labels {
		labels[i] = i%7 == 0 // 143 positives
	}
	train, test := StratifiedSplit(labels, 0.2, 42)
	if len(train)+len(test) != len(labels) {
		t.Fatalf("%d + %d rows, want %d", len(train), len(test), len(labels))
	}
	all := append(slices.Clone(train), test...)
	slices.Sort(all)
	for i, r := range all {
		if r != i {
			t.Fatalf("rows are not a partition of 0..%d (at %d: %d)", len(labels)-1, i, r)
		}
	}
	if !slices.IsSorted(train) || !slices.IsSorted(test) {
		t.Error("parts are not sorted")
	}
	rate := func(rows []int) float64 {
		n := 0
		for _, r := range rows {
			if labels[r] {
				n++
			}
		}
		return float64(n) / float64(len(rows))
	}
	if d := math.Abs(rate(test) - rate(train)); d > 0.005 {
		t.Errorf("positive rate train %.4f, test %.4f", rate(train), rate(test))
	}
	if len(test) != 200 {
		t.Errorf("%d test rows, want 200", len(test))
	}
	train2, test2 := StratifiedSplit(labels, 0.2, 42)
	if !slices.Equal(train, train2) || !slices.Equal(test, test2) {
		t.Error("the same seed gave a different split")
	}
	_, test3 := StratifiedSplit(labels, 0.2, 43)
	if slices.Equal(test, test3) {
		t.Error("another seed gave the same split")
	}
}

func TestReadIndices(t *testing.T) {
	t.Parallel()
	got, err := ReadIndices(strings.NewReader("4\n1\n\n 2 \n"), 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, 4}, got); diff != "" {
		t.Errorf("indices (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{0, 3}, Complement(5, got)); diff != "" {
		t.Errorf("complement (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ in, want string }{
		{"1\nx\n", `line 2: "x" is not a row index`},
		{"1\n5\n", `line 2: row 5 is outside`},
		{"-1\n", `line 1: row -1 is outside`},
		{"1\n\n1\n", `line 3: row 1 is listed twice`},
		{"\n", `no row indices`},
	} {
		if _, err := ReadIndices(strings.NewReader(tc.in), 5); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadIndices(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}
