package buildinfo

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLinkerVersionWins(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7-test"
	i := Read()
	if i.Version != "v9.8.7-test" {
		t.Errorf("Version = %q, want the one set at link time", i.Version)
	}
	if got := i.String("churnd"); !strings.HasPrefix(got, "churnd v9.8.7-test (go") {
		t.Errorf("String = %q", got)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	want := `# HELP go_build_info Build information about the main Go module.
# TYPE go_build_info gauge
go_build_info{checksum="` + i.Sum + `",path="` + i.Path + `",version="v9.8.7-test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "go_build_info"); err != nil {
		t.Error(err)
	}
}

func TestWithoutLinkerVersion(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = ""
	// A test binary has no module version and, built by go test, no VCS stamp.
	if v := Read().Version; v == "" {
		t.Error("Version is empty; want the toolchain's record or (devel)")
	}
}
