package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/internal/retention"
)

// kit is every object of deploy/kubernetes, decoded strictly into its API type.
type kit struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*monitoringv1.ServiceMonitor
	files           []string // the manifest files, kustomization.yaml aside
	kustomized      []string // kustomization.yaml's resources
}

// decodeStrict decodes one YAML document into obj, refusing unknown and duplicate fields.
func decodeStrict(t *testing.T, where string, doc []byte, obj any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

// documents splits a YAML file into its documents.
func documents(data []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(s, "")
}

func loadKit(t *testing.T) *kit {
	t.Helper()
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	k := &kit{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) == "kustomization.yaml" {
			var kz struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Resources  []string `json:"resources"`
				Images     []struct {
					Name, NewName, NewTag string
				} `json:"images"`
			}
			decodeStrict(t, p, data, &kz)
			k.kustomized = kz.Resources
			continue
		}
		k.files = append(k.files, filepath.Base(p))
		for i, doc := range documents(data) {
			where := fmt.Sprintf("%s, document %d", p, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				k.deployments = append(k.deployments, decode[appsv1.Deployment](t, where, doc))
			case "v1 Service":
				k.services = append(k.services, decode[corev1.Service](t, where, doc))
			case "v1 ConfigMap":
				k.configMaps = append(k.configMaps, decode[corev1.ConfigMap](t, where, doc))
			case "v1 Secret":
				k.secrets = append(k.secrets, decode[corev1.Secret](t, where, doc))
			case "autoscaling/v2 HorizontalPodAutoscaler":
				k.hpas = append(k.hpas, decode[autoscalingv2.HorizontalPodAutoscaler](t, where, doc))
			case "policy/v1 PodDisruptionBudget":
				k.pdbs = append(k.pdbs, decode[policyv1.PodDisruptionBudget](t, where, doc))
			case "monitoring.coreos.com/v1 ServiceMonitor":
				k.serviceMonitors = append(k.serviceMonitors, decode[monitoringv1.ServiceMonitor](t, where, doc))
			default:
				t.Fatalf("%s: %s %s is not a kind this test knows: add it", where, tm.APIVersion, tm.Kind)
			}
		}
	}
	return k
}

func decode[T any](t *testing.T, where string, doc []byte) *T {
	t.Helper()
	obj := new(T)
	decodeStrict(t, where, doc, obj)
	return obj
}

func (k *kit) configMap(name string) *corev1.ConfigMap {
	for _, c := range k.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (k *kit) secret(name string) *corev1.Secret {
	for _, s := range k.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// secretValue is a Secret's value for key, from stringData or data.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// churndFlags are the flag names of `churnd --help`, read from churnd's own flag set.
func churndFlags(t *testing.T) []string {
	t.Helper()
	var help bytes.Buffer
	if _, err := config.Parse([]string{"--help"}, func(string) string { return "" }, &help); err != config.ErrHelp {
		t.Fatalf("churnd --help: %v", err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		out = append(out, m[1])
	}
	if len(out) < 10 {
		t.Fatalf("read only %d flags from churnd --help:\n%s", len(out), help.String())
	}
	return out
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// TestKubernetesManifests decodes every manifest into its Kubernetes API type (unknown fields
// refused) and checks that the parts fit: churnd accepts the Deployment's arguments and
// environment (real flags, a valid configuration), listens on the ports the probes and Services
// use, finds its rules file in the ConfigMap and its secrets in the Secret; the Services,
// autoscaler, disruption budget and ServiceMonitor select what they should.
func TestKubernetesManifests(t *testing.T) {
	k := loadKit(t)
	if diff := fmt.Sprint(slices.Sorted(slices.Values(k.kustomized))); diff != fmt.Sprint(k.files) {
		t.Errorf("kustomization.yaml's resources %v, the directory's manifests %v", k.kustomized, k.files)
	}
	if len(k.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(k.deployments))
	}
	d := k.deployments[0]
	pod := d.Spec.Template
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("the Deployment's selector %v does not select its pods' labels %v (%v)", d.Spec.Selector, pod.Labels, err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want churnd alone", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// The arguments and the environment are churnd's flags and their environment twins, and
	// make a valid configuration.
	flags := churndFlags(t)
	env := map[string]string{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, config.EnvPrefix) && !slices.ContainsFunc(flags, func(f string) bool { return config.EnvName(f) == e.Name }) {
			t.Errorf("env %s is no churnd flag's environment variable", e.Name)
		}
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := k.secret(ref.Name)
			if s == nil {
				t.Errorf("env %s: no Secret %q in the kit", e.Name, ref.Name)
				continue
			}
			v, ok := secretValue(s, ref.Key)
			if !ok {
				t.Errorf("env %s: Secret %q has no key %q", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom != nil:
			t.Errorf("env %s: only values and Secret references are expected", e.Name)
		default:
			env[e.Name] = e.Value
		}
	}
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !slices.Contains(flags, name) {
			t.Errorf("argument %q is not a churnd flag (churnd --help lists %v)", a, flags)
		}
	}
	var usage bytes.Buffer
	cfg, err := config.Parse(c.Args, func(k string) string { return env[k] }, &usage)
	if err != nil {
		t.Fatalf("churnd refuses the Deployment's arguments and environment: %v\n%s", err, usage.String())
	}
	if len(cfg.AdminTokens) == 0 || len(cfg.ScoringTokens) == 0 || cfg.RedisPassword == "" {
		t.Errorf("tokens and the Redis password should come from the Secret: admin %d, scoring %d tokens, password set %v",
			len(cfg.AdminTokens), len(cfg.ScoringTokens), cfg.RedisPassword != "")
	}

	// Ports: churnd listens where the container says, and the probes ask there.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if got, want := ports["grpc"], port(t, cfg.GRPCAddr); got != want {
		t.Errorf("container port grpc is %d, churnd listens on %d (--grpc-addr %q)", got, want, cfg.GRPCAddr)
	}
	if got, want := ports["http"], port(t, cfg.HTTPAddr); got != want {
		t.Errorf("container port http is %d, churnd listens on %d (--http-addr %q)", got, want, cfg.HTTPAddr)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.GRPC == nil {
			t.Errorf("%s probe: want a gRPC probe, got %+v", name, p)
			continue
		}
		if p.GRPC.Port != ports["grpc"] {
			t.Errorf("%s probe asks port %d, gRPC is on %d", name, p.GRPC.Port, ports["grpc"])
		}
	}
	if p := c.ReadinessProbe; p != nil && p.GRPC != nil && (p.GRPC.Service == nil || *p.GRPC.Service != churnv1.ScoringService_ServiceDesc.ServiceName) {
		t.Errorf("the readiness probe should ask for %s, the service that goes NOT_SERVING on shutdown", churnv1.ScoringService_ServiceDesc.ServiceName)
	}
	if p := c.StartupProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Port.IntVal != ports["http"] {
		t.Errorf("the startup probe asks port %v, HTTP is on %d", p.HTTPGet.Port, ports["http"])
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || float64(*g) < (cfg.ShutdownGrace.Seconds()+5) {
		t.Errorf("terminationGracePeriodSeconds %v leaves churnd less than --shutdown-grace %s plus 5s for HTTP to drain", g, cfg.ShutdownGrace)
	}

	// Resources and security.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit (churnd sets Go's memory limit from it)")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container security context %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the pod should run as non-root")
	}

	// The rules file comes from the ConfigMap and is one churnd accepts.
	if cfg.RulesFile == "" {
		t.Fatal("no --rules-file")
	}
	found := false
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, cfg.RulesFile)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := k.configMap(v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("volume %s: no ConfigMap %q in the kit", v.Name, v.ConfigMap.Name)
			}
			data, ok := cm.Data[rel]
			if !ok {
				t.Fatalf("--rules-file %s: ConfigMap %s has no key %q", cfg.RulesFile, cm.Name, rel)
			}
			if _, err := retention.ParseRules([]byte(data)); err != nil {
				t.Errorf("ConfigMap %s, %s: churnd refuses the rules: %v", cm.Name, rel, err)
			}
			found = true
		}
	}
	if !found {
		t.Errorf("--rules-file %s is on no volume mounted from a ConfigMap", cfg.RulesFile)
	}

	// Services select the pods and name the container's ports; one of them is headless.
	headless := 0
	for _, s := range k.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selects %v, not the churnd pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.StrVal]; !ok {
				t.Errorf("Service %s port %s targets %q, no port of the container", s.Name, p.Name, p.TargetPort.String())
			}
		}
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless++
		}
	}
	if len(k.services) != 2 || headless != 1 {
		t.Errorf("%d Services of which %d headless, want 2 and 1", len(k.services), headless)
	}

	// The autoscaler scales the Deployment; the disruption budget covers its pods.
	if len(k.hpas) != 1 || k.hpas[0].Spec.ScaleTargetRef.Kind != "Deployment" || k.hpas[0].Spec.ScaleTargetRef.Name != d.Name {
		t.Errorf("want one HorizontalPodAutoscaler of Deployment %s", d.Name)
	} else if h := k.hpas[0].Spec; h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
		t.Errorf("autoscaler replicas %v..%d: want at least 2, and max >= min", h.MinReplicas, h.MaxReplicas)
	}
	if len(k.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(k.pdbs))
	}
	if sel, err := metav1.LabelSelectorAsSelector(k.pdbs[0].Spec.Selector); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the PodDisruptionBudget does not select the churnd pods (%v)", err)
	}

	// The ServiceMonitor scrapes the metrics port of the non-headless Service only.
	if len(k.serviceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(k.serviceMonitors))
	}
	sm := k.serviceMonitors[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var scraped []string
	for _, s := range k.services {
		if !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		scraped = append(scraped, s.Name)
		for _, e := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port && p.TargetPort.StrVal == "http" }) {
				t.Errorf("ServiceMonitor endpoint port %q is not Service %s's metrics port", e.Port, s.Name)
			}
			if e.Path != "/metrics" {
				t.Errorf("ServiceMonitor path %q, churnd serves /metrics", e.Path)
			}
		}
	}
	if len(scraped) != 1 {
		t.Errorf("the ServiceMonitor selects Services %v, want exactly one (the headless one would scrape each pod twice)", scraped)
	}
}

// TestDocumentsSplit: the splitter keeps a file's documents apart and drops empty ones.
func TestDocumentsSplit(t *testing.T) {
	got := documents([]byte("# head\na: 1\n---\n# only a comment\n---\nb: 2\n"))
	if len(got) != 2 {
		t.Fatalf("%d documents, want 2: %q", len(got), got)
	}
	var v map[string]int
	if err := yaml.Unmarshal(got[1], &v); err != nil || v["b"] != 2 {
		t.Errorf("second document %q: %v", got[1], err)
	}
}
