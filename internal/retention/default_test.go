package retention

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const defaultFile = "../../testdata/rules/default.yaml"

// TestDefaultFile checks that testdata/rules/default.yaml is exactly DefaultRules, and that it sets
// every key itself (parsed over zero rules, not over the defaults).
func TestDefaultFile(t *testing.T) {
	t.Parallel()
	r, err := LoadRules(defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultRules(), r); diff != "" {
		t.Errorf("LoadRules (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err = parse(data, Rules{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultRules(), r); diff != "" {
		t.Errorf("default.yaml leaves keys out (-want +got):\n%s", diff)
	}
}
