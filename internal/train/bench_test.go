package train

import (
	"bytes"
	"os"
	"testing"

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
