package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/churnhq/churn/internal/config"
)

// TestLocalStackConfig checks the configuration `make stack` and compose.yaml share against
// churnd: churnd.env sets real flags to a valid configuration, compose publishes the ports churnd
// listens on by default and Prometheus scrapes them, and every file compose mounts exists.
func TestLocalStackConfig(t *testing.T) {
	flags := churndFlags(t)
	f, err := os.Open("local/churnd.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !slices.ContainsFunc(flags, func(f string) bool { return config.EnvName(f) == k }) {
			t.Errorf("local/churnd.env: %q sets no churnd flag's environment variable", line)
		}
		env[k] = v
	}
	// The stack adds the addresses; Redis is needed by --model-store redis.
	env[config.EnvName("redis-addr")] = "127.0.0.1:6379"
	var usage bytes.Buffer
	if _, err := config.Parse(nil, func(k string) string { return env[k] }, &usage); err != nil {
		t.Errorf("churnd refuses local/churnd.env: %v", err)
	}

	data, err := os.ReadFile("local/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Ports    map[string]string `json:"x-ports"`
		Services map[string]struct {
			Ports   []string `json:"ports"`
			Volumes []string `json:"volumes"`
			EnvFile string   `json:"env_file"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("local/compose.yaml: %v", err)
	}
	for _, s := range []string{"redis", "churnd-1", "churnd-2", "prometheus"} {
		if _, ok := compose.Services[s]; !ok {
			t.Errorf("compose.yaml has no service %s", s)
		}
	}
	def := config.Default()
	_, grpcPort, _ := net.SplitHostPort(def.GRPCAddr)
	_, httpPort, _ := net.SplitHostPort(def.HTTPAddr)
	for _, s := range []string{"churnd-1", "churnd-2"} {
		svc := compose.Services[s]
		if svc.EnvFile != "churnd.env" {
			t.Errorf("compose %s: env_file %q, want churnd.env (the stack's configuration)", s, svc.EnvFile)
		}
		var inside []string
		for _, p := range svc.Ports {
			inside = append(inside, p[strings.LastIndex(p, ":")+1:])
		}
		slices.Sort(inside)
		if want := slices.Sorted(slices.Values([]string{grpcPort, httpPort})); !slices.Equal(inside, want) {
			t.Errorf("compose %s publishes container ports %v, churnd listens on %v", s, inside, want)
		}
	}
	var targets []struct {
		Targets []string `json:"targets"`
	}
	data, err = os.ReadFile("local/compose-targets.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &targets); err != nil || len(targets) != 1 {
		t.Fatalf("local/compose-targets.json: %v", err)
	}
	if want := []string{"churnd-1:" + httpPort, "churnd-2:" + httpPort}; !slices.Equal(targets[0].Targets, want) {
		t.Errorf("compose's Prometheus scrapes %v, churnd's metrics are on %v", targets[0].Targets, want)
	}
	for _, v := range compose.Services["prometheus"].Volumes {
		host := strings.Split(v, ":")[0]
		if _, err := os.Stat(filepath.Join("local", host)); err != nil {
			t.Errorf("compose mounts %s: %v", host, err)
		}
	}
}
