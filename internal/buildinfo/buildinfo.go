// Package buildinfo tells which build of churn is running: the version the Makefile or the
// Dockerfile stamps in with -ldflags "-X github.com/churnhq/churn/internal/buildinfo.version=…",
// else what the Go toolchain recorded (the main module's version, or the VCS revision when the
// build had VCS stamping on), else "(devel)". churnd exports it as go_build_info's version
// label, and both binaries print it for --version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is set at link time; see the package doc.
var version string

// Info is what a build recorded about itself.
type Info struct {
	Version   string // e.g. v1.4.0, v1.4.0-3-g9cbba29-dirty, or (devel)
	Revision  string // VCS revision, when the toolchain recorded one
	Modified  bool   // the VCS work tree had local changes
	Path      string // main module path
	Sum       string // main module checksum, empty for a local build
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: version, GoVersion: runtime.Version(), Path: "github.com/churnhq/churn"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		info.Path, info.Sum = bi.Main.Path, bi.Main.Sum
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version != "" {
		return info
	}
	switch {
	case ok && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		info.Version = bi.Main.Version
	case info.Revision != "":
		info.Version = "rev-" + info.Revision[:min(12, len(info.Revision))]
		if info.Modified {
			info.Version += "-dirty"
		}
	default:
		info.Version = "(devel)"
	}
	return info
}

// String is the line --version prints, e.g. "churnd v1.4.0 (go1.26.8)".
func (i Info) String(program string) string {
	s := fmt.Sprintf("%s %s (%s", program, i.Version, i.GoVersion)
	if i.Revision != "" && i.Version != "rev-"+i.Revision[:min(12, len(i.Revision))] {
		s += ", revision " + i.Revision
		if i.Modified {
			s += " modified"
		}
	}
	return s + ")"
}

// Collector is go_build_info with the version of Read, in place of client_golang's
// collectors.NewBuildInfoCollector, which reports the module version only ("(devel)" for every
// build from a work tree).
func Collector() prometheus.Collector {
	i := Read()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "go_build_info",
		Help:        "Build information about the main Go module.",
		ConstLabels: prometheus.Labels{"path": i.Path, "version": i.Version, "checksum": i.Sum},
	}, func() float64 { return 1 })
}
