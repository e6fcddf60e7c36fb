package train

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const validCSV = "id,tenure,plan,complaints,calls,region,churn\n" +
	"a,12,1,0,10,north,no\n" +
	"b,,2,3,0,,yes\n" +
	"c, 7 ,1,1,5.5,south,yes\n"

func mustSpec(t testing.TB, s string) *Spec {
	t.Helper()
	spec, err := ParseSpec([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	ds, err := ReadCSV(strings.NewReader(validCSV), mustSpec(t, validSpec))
	if err != nil {
		t.Fatal(err)
	}
	miss := Value{Missing: true}
	want := [][]Value{
		{{Num: 12}, {Cat: "monthly"}, {Num: 0}, {Num: 10}, {Cat: "north"}},
		{miss, {Cat: "yearly"}, {Num: 3}, {Num: 0}, miss},
		{{Num: 7}, {Cat: "monthly"}, {Num: 1}, {Num: 5.5}, {Cat: "south"}},
	}
	if diff := cmp.Diff(want, ds.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false, true, true}, ds.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := ds.Positives(nil); got != 2 {
		t.Errorf("Positives = %d, want 2", got)
	}
}

func TestReadCSVErrorsNameRowAndColumn(t *testing.T) {
	t.Parallel()
	header := "id,tenure,plan,complaints,calls,region,churn\n"
	tests := []struct {
		name, csv, want string
	}{
		{"bad number", header + "a,12,1,0,10,n,no\nb,twelve,1,0,10,n,no\n", `csv row 1 (line 3), column "tenure": "twelve" is not a finite number`},
		{"NaN", header + "a,NaN,1,0,10,n,no\n", `csv row 0 (line 2), column "tenure": "NaN" is not a finite number`},
		{"infinity", header + "a,12,1,0,-Inf,n,no\n", `csv row 0 (line 2), column "calls"`},
		{"unknown value", header + "a,12,3,0,10,n,no\n", `csv row 0 (line 2), column "plan": "3" is not one of the spec's values ["1" "2"]`},
		{"missing with policy error", header + "a,12,1,,10,n,no\n", `csv row 0 (line 2), column "complaints": empty cell`},
		{"negative log1p", header + "a,12,1,0,-1,n,no\n", `csv row 0 (line 2), column "calls": -1 is negative`},
		{"missing label", header + "a,12,1,0,10,n,\n", `csv row 0 (line 2), column "churn": the label is missing`},
		{"short record", header + "a,12,1,0,10,n\n", `csv row 0 (line 2)`},
		{"unmapped column", "id,tenure,plan,complaints,calls,region,churn,extra\n", `column "extra" is neither the label, dropped nor mapped`},
		{"absent column", "id,tenure,plan,complaints,calls,churn\n", `names columns the CSV does not have: ["region"]`},
		{"duplicate header", "id,tenure,tenure,plan,complaints,calls,region,churn\n", `column "tenure" appears twice`},
		{"no rows", header, `no data rows`},
		{"empty file", "", `csv header`},
	}
	spec := mustSpec(t, validSpec)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadCSV(strings.NewReader(tc.csv), spec)
			if err == nil {
				t.Fatal("ReadCSV accepted the file")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestReadCSVStripsByteOrderMark(t *testing.T) {
	t.Parallel()
	if _, err := ReadCSV(strings.NewReader("\ufeff"+validCSV), mustSpec(t, validSpec)); err != nil {
		t.Fatal(err)
	}
}
