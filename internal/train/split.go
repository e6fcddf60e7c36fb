package train

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// ReadIndices reads held-out row indices, one 0-based data-row index per line (the format of
// shared/bench/splits/*_test_idx.csv), for a dataset of n rows. Blank lines are skipped; an index
// out of range, a repeated index or a line that is not an integer is an error naming the line.
// The result is sorted.
func ReadIndices(r io.Reader, n int) ([]int, error) {
	sc := bufio.NewScanner(r)
	seen := make(map[int]bool)
	var idx []int
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not a row index", line, s)
		}
		if i < 0 || i >= n {
			return nil, fmt.Errorf("line %d: row %d is outside the dataset's rows 0..%d", line, i, n-1)
		}
		if seen[i] {
			return nil, fmt.Errorf("line %d: row %d is listed twice", line, i)
		}
		seen[i] = true
		idx = append(idx, i)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, errors.New("no row indices")
	}
	slices.Sort(idx)
	return idx, nil
}

// Complement returns the rows 0..n-1 that are not in the sorted list rows.
func Complement(n int, rows []int) []int {
	out := make([]int, 0, n-len(rows))
	k := 0
	for i := range n {
		if k < len(rows) && rows[k] == i {
			k++
			continue
		}
		out = append(out, i)
	}
	return out
}

// StratifiedSplit holds out round(testFraction × count) rows of each label value, chosen by a
// seeded shuffle (PCG), so that both parts keep the positive rate. It returns the sorted train
// and test rows. The same labels, fraction and seed always give the same split.
func StratifiedSplit(labels []bool, testFraction float64, seed uint64) (trainRows, testRows []int) {
	rng := rand.New(rand.NewPCG(seed, 0x636875726e)) // second word: "churn"
	byLabel := rowsByLabel(labels)
	for _, rows := range byLabel {
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		nTest := int(math.Round(testFraction * float64(len(rows))))
		testRows = append(testRows, rows[:nTest]...)
		trainRows = append(trainRows, rows[nTest:]...)
	}
	slices.Sort(trainRows)
	slices.Sort(testRows)
	return trainRows, testRows
}

// rowsByLabel returns the indices of the negative rows ([0]) and of the positive rows ([1]), each
// in order: what stratified splits and folds draw from.
func rowsByLabel(labels []bool) [2][]int {
	var byLabel [2][]int
	for i, y := range labels {
		k := 0
		if y {
			k = 1
		}
		byLabel[k] = append(byLabel[k], i)
	}
	return byLabel
}
