package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/cache/redistest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/drift"
)

// ruleFile is the part of a Prometheus rule file the tests read (decoded strictly, so a
// misspelt key fails here as it would in Prometheus).
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Record      string            `json:"record,omitempty"`
			Alert       string            `json:"alert,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// query is one PromQL expression and where it was found.
type query struct{ where, expr string }

func ruleQueries(t *testing.T) (qs []query, recorded []string) {
	t.Helper()
	data, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("prometheus/rules.yml: %v", err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			qs = append(qs, query{"prometheus/rules.yml " + g.Name + "/" + name, r.Expr})
			if r.Record != "" {
				recorded = append(recorded, r.Record)
			}
			if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "") {
				t.Errorf("alert %s: want a severity label, a summary and a description", r.Alert)
			}
		}
	}
	if len(qs) == 0 {
		t.Fatal("prometheus/rules.yml has no rules")
	}
	return qs, recorded
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// grafanaVariable is a dashboard variable in an expression: $name, ${name} or [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{?(\w+)\}?|\[\[(\w+)\]\]`)

// promQL replaces the dashboard's variables by values the parser takes: a duration for the
// interval variables, a regular expression for the others (they all stand in =~ matchers).
func promQL(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.Contains(v, "interval") || strings.Contains(v, "__range") {
			return "5m"
		}
		return ".+"
	})
}

// labelValues matches a Grafana variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile("grafana/churnd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/churnd.json: %v", err)
	}
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("dashboard panel %q, target %d: no expression", p.Title, i)
					continue
				}
				qs = append(qs, query{fmt.Sprintf("grafana/churnd.json panel %q", p.Title), promQL(tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		// The label must be on the metric: check it as a matcher.
		qs = append(qs, query{"grafana/churnd.json variable " + v.Name, promQL(m[1]) + `{` + m[2] + `=~".+"}`})
	}
	if len(qs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	return qs
}

// exported runs churnd (internal/app, with the collectors cmd/churnd adds, Redis as cache and
// model store so that every part registers its metrics), has it score enough customers for
// every series to appear, and returns the label names of each metric family by the names a
// query may use (a histogram's _bucket, _sum and _count).
func exported(t *testing.T) map[string][]string {
	t.Helper()
	addr, _, _ := redistest.StartRedis(t)
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	cfg.RedisAddrs, cfg.ModelStore = []string{addr}, "redis"
	reg := prometheus.NewRegistry()
	reg.MustRegister( // as cmd/churnd does
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	a := apptest.StartWithRegistry(t, cfg, reg)

	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, err := os.ReadFile("../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		t.Fatal(err)
	}
	req.Features.Categorical["status"] = "a-status-the-model-never-saw" // churn_unknown_categories_total
	reqs := make([]*churnv1.ScoreRequest, drift.MinSamples)             // churn_score_drift_psi
	for i := range reqs {
		reqs[i] = &req
	}
	if _, err := churnv1.NewScoringServiceClient(conn).ScoreBatch(context.Background(), &churnv1.ScoreBatchRequest{Requests: reqs}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		var names []string
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(names, l.GetName()) {
					names = append(names, l.GetName())
				}
			}
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[mf.GetName()+"_bucket"] = append(slices.Clone(names), "le")
			out[mf.GetName()+"_sum"] = names
			out[mf.GetName()+"_count"] = names
		case dto.MetricType_SUMMARY:
			out[mf.GetName()] = append(slices.Clone(names), "quantile")
			out[mf.GetName()+"_sum"] = names
			out[mf.GetName()+"_count"] = names
		default:
			out[mf.GetName()] = names
		}
	}
	return out
}

// scrapeLabels are added by Prometheus to every scraped series.
var scrapeLabels = []string{"job", "instance"}

// TestQueriesNameExportedMetrics parses every PromQL expression of the rules and the dashboard,
// and checks that each metric it selects is one churnd exports (or a recording rule of
// rules.yml, or Prometheus's own `up`), with the labels its matchers name.
func TestQueriesNameExportedMetrics(t *testing.T) {
	rules, recorded := ruleQueries(t)
	queries := append(rules, dashboardQueries(t)...)
	metrics := exported(t)
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, q := range queries {
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			used[name] = true
			have, ok := metrics[name]
			switch {
			case name == "up":
				return nil
			case slices.Contains(recorded, name):
				return nil
			case !ok:
				t.Errorf("%s: %s is not a metric churnd exports", q.where, name)
				return nil
			}
			for _, m := range vs.LabelMatchers {
				if m.Name != labels.MetricName && !slices.Contains(have, m.Name) && !slices.Contains(scrapeLabels, m.Name) {
					t.Errorf("%s: %s has no label %q (it has %v)", q.where, name, m.Name, have)
				}
			}
			return nil
		})
	}
	// The rules and the dashboard cover the metrics the issue asks for.
	for _, name := range []string{"churn_grpc_server_handled_total", "churn_grpc_server_handling_seconds_bucket", "churn_scores_total",
		"churn_warnings_total", "churn_cache_operations_total", "churn_model_active_info", "churn_model_activations_total",
		"churn_model_active_mismatch", "churn_model_syncs_total", drift.PSIName, drift.HistogramName + "_bucket"} {
		if !used[name] {
			t.Errorf("neither the rules nor the dashboard use %s", name)
		}
	}
}

// TestGrafanaVariables: the replacement of dashboard variables leaves valid PromQL.
func TestGrafanaVariables(t *testing.T) {
	got := promQL(`rate(x{version=~"$version",a=~"${b}",c=~"[[c]]"}[$__rate_interval])`)
	want := `rate(x{version=~".+",a=~".+",c=~".+"}[5m])`
	if got != want {
		t.Errorf("promQL = %s, want %s", got, want)
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(got); err != nil {
		t.Error(err)
	}
}
