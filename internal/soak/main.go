// Command soak runs the real churnd for a bounded time (default 2 minutes) against a throwaway
// redis-server of its own, under steady Score, ScoreBatch, ScoreStream and GetScore load from
// several goroutines, while on a schedule models are swapped (a new version of the default model
// uploaded and activated, then the default activated again), Redis is killed and started again
// on the same port (in turn coming back with its data and coming back empty), and bursts of
// streams are opened and abandoned (cancelled, or their connection dropped, without reading).
//
// Every sample interval it prints the customers scored by each method, the errors by method and
// gRPC code, and churnd's resident memory (VmRSS, /proc/PID/status), goroutines (go_goroutines on
// /metrics) and open file descriptors (/proc/PID/fd). It exits 1, saying why, when
//   - a call fails with a code the README's error table does not document for what the soak does
//     (shed load, RESOURCE_EXHAUSTED, anywhere; a Redis outage only for GetScore and, with
//     -model-store redis, ModelService writes: Score, ScoreBatch and ScoreStream fail open),
//     or answers wrongly (a short stream or batch, a Score after an activation served by
//     another version, a failed /metrics scrape);
//   - memory, goroutines or descriptors grow: the median of the last third of the samples is
//     above the median of the middle third (the first third is warm-up) by more than 20% plus a
//     slack (8 MiB, 25 goroutines, 10 descriptors);
//   - churnd does not start, dies, is not ready at the end, or does not exit 0 on SIGTERM, each
//     wait bounded.
//
// `make soak` runs it from the repository root (SOAK_DURATION sets the duration; SOAK_FLAGS
// passes more flags). It lives in the main module, not in internal/tools beside grpcload (a
// module of its own for pinned tools), because it speaks the typed API (api/churn/v1) and uploads
// the embedded default model (models); and under internal/, not cmd/, because it is not shipped.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/models"
)

const (
	buildTimeout   = 10 * time.Minute // go build of churnd on a busy 2-core machine
	shutdownGrace  = 5 * time.Second  // churnd's --shutdown-grace in the soak
	stopTimeout    = shutdownGrace + 15*time.Second
	workersTimeout = 80 * time.Second // the load goroutines stop after the run: the longest, a swap, is an upload, an activation and a Score, each with its deadline
	readyTimeout   = 15 * time.Second // churnd is ready again after the last disturbance (its reconcile is every 10 s)
	idleTimeout    = 15 * time.Second // churnd has released every call and stream once the load stopped
	retention      = 3                // churnd's --model-retention: the store stays bounded however many swaps
)

// Tolerances of the growth check (see tolerance).
var tolerances = map[string]tolerance{
	"RSS (MiB)":  {pct: 20, slack: 8},
	"goroutines": {pct: 20, slack: 25},
	"open fds":   {pct: 20, slack: 10},
}

// defaultBundle is the embedded default model, uploaded under other versions by the swaps.
var defaultBundle []byte

type config struct {
	duration, sample, swapEvery, restartEvery, redisDown, abandonEvery time.Duration
	abandonBurst                                                       int
	factor                                                             float64
	churndBin, request, modelStore                                     string
	keep                                                               bool
}

func main() { os.Exit(run()) }

func run() int {
	var c config
	flag.DurationVar(&c.duration, "duration", 2*time.Minute, "how long the load runs")
	flag.DurationVar(&c.sample, "sample", 5*time.Second, "interval of the printed samples")
	flag.DurationVar(&c.swapEvery, "swap-every", 10*time.Second, "interval of the model swaps")
	flag.DurationVar(&c.restartEvery, "redis-restart-every", 30*time.Second, "interval of the Redis restarts")
	flag.DurationVar(&c.redisDown, "redis-down", 2*time.Second, "how long Redis stays down at each restart")
	flag.DurationVar(&c.abandonEvery, "abandon-every", 5*time.Second, "interval of the bursts of abandoned streams")
	flag.IntVar(&c.abandonBurst, "abandon-burst", 30, "streams abandoned in each burst")
	flag.Float64Var(&c.factor, "load", 1, "multiplies the rate of every load goroutine (1: about 300 Score, 500 batch and 400 stream customers a second)")
	flag.StringVar(&c.churndBin, "churnd", "", "churnd binary to run (default: build ./cmd/churnd without cgo)")
	flag.StringVar(&c.request, "request", "testdata/requests/basic.json", "the ScoreRequest (JSON) whose features every call sends")
	flag.StringVar(&c.modelStore, "model-store", "disk", "churnd's --model-store: disk (a temporary directory) or redis (the soak's Redis, restarted with the rest)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (churnd's and Redis's logs) after a passing run")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: redis-server not found on PATH: install it (Debian: apt-get install redis-server)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "churn-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	failed := true
	defer func() {
		if failed || c.keep {
			fmt.Printf("logs kept in %s (churnd.log, redis.log)\n", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	reasons, err := soak(ctx, c, redisBin, tmp)
	if err != nil {
		fmt.Println("verdict: FAIL:", err)
		return 1
	}
	if len(reasons) > 0 {
		fmt.Println("verdict: FAIL:")
		for _, r := range reasons {
			fmt.Println("  -", r)
		}
		return 1
	}
	failed = false
	fmt.Println("verdict: PASS")
	return 0
}

func (c config) validate() error {
	for name, d := range map[string]time.Duration{"-duration": c.duration, "-sample": c.sample, "-swap-every": c.swapEvery,
		"-redis-restart-every": c.restartEvery, "-redis-down": c.redisDown, "-abandon-every": c.abandonEvery} {
		if d <= 0 {
			return fmt.Errorf("%s must be positive, got %v", name, d)
		}
	}
	if n := int(c.duration / c.sample); n < minSamples {
		return fmt.Errorf("-duration %v gives %d samples of -sample %v: the growth check needs at least %d", c.duration, n, c.sample, minSamples)
	}
	if c.abandonBurst < 0 || c.abandonBurst > 300 {
		return fmt.Errorf("-abandon-burst must be in 0..300 (churnd's --max-streams is 500), got %d", c.abandonBurst)
	}
	if c.factor <= 0 || c.factor > 20 {
		return fmt.Errorf("-load must be in (0, 20], got %v", c.factor)
	}
	if c.modelStore != "disk" && c.modelStore != "redis" {
		return fmt.Errorf("-model-store must be disk or redis, got %q", c.modelStore)
	}
	return nil
}

// soak runs one soak and returns why it failed (nothing when it passed), or an error when it
// could not run.
func soak(ctx context.Context, c config, redisBin, tmp string) ([]string, error) {
	var err error
	defaultBundle, err = models.FS.ReadFile(models.DefaultName)
	if err != nil {
		return nil, err
	}
	var manifest struct {
		Manifest struct{ Version string } `json:"manifest"`
	}
	if err := json.Unmarshal(defaultBundle, &manifest); err != nil || manifest.Manifest.Version == "" {
		return nil, fmt.Errorf("the default bundle's version: %v", err)
	}
	defaultVersion := manifest.Manifest.Version
	features, err := readFeatures(c.request)
	if err != nil {
		return nil, err
	}
	bin := c.churndBin
	if bin == "" {
		if bin, err = buildChurnd(ctx, tmp); err != nil {
			return nil, err
		}
	}
	redis, err := newRedis(redisBin, tmp)
	if err != nil {
		return nil, err
	}
	defer redis.stop()
	tokenBytes := make([]byte, 16)
	_, _ = rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	os.Setenv("CHURN_ADMIN_TOKENS", token) // inherited by churnd; never on its command line
	flags := []string{"--redis-addr", redis.addr, "--model-store", c.modelStore,
		"--store-dir", filepath.Join(tmp, "store"), "--model-retention", fmt.Sprint(retention),
		"--shutdown-grace", shutdownGrace.String()}
	d, err := startChurnd(ctx, bin, tmp, flags)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !d.p.exited() {
			_ = d.p.kill(redisStopTimeout)
		}
	}()
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	t := newTally()
	l := &load{target: d.grpcAddr, scoring: churnv1.NewScoringServiceClient(conn),
		models: churnv1.NewModelServiceClient(conn), token: token, features: features, t: t,
		outage: &outage{grace: 5 * time.Second}, redisStore: c.modelStore == "redis", factor: c.factor}

	fmt.Printf("soak: %v, samples every %v; machine: %d cores, load average %s; %s; %s\n",
		c.duration, c.sample, runtime.NumCPU(), loadAverage(), runtime.Version(), redisVersion(redisBin))
	fmt.Printf("churnd pid %d on %s (HTTP %s), Redis %s, model store %s, flags %s\n",
		d.pid(), d.grpcAddr, d.httpAddr, redis.addr, c.modelStore, strings.Join(flags, " "))
	fmt.Printf("schedule: model swap every %v, Redis killed every %v (down %v; back with its data, then empty, in turn), %d streams abandoned every %v\n",
		c.swapEvery, c.restartEvery, c.redisDown, c.abandonBurst, c.abandonEvery)

	runCtx, endRun := context.WithTimeout(ctx, c.duration)
	defer endRun()
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() { l.scoreWorker(runCtx, w) })
	}
	wg.Go(func() { l.batchWorker(runCtx, 0) })
	for w := range 2 {
		wg.Go(func() { l.streamWorker(runCtx, w) })
	}
	wg.Go(func() { l.getWorker(runCtx, 0) })
	wg.Go(func() {
		scheduled(runCtx, c.swapEvery, func(n int) { l.swap(n, defaultVersion) })
	})
	wg.Go(func() {
		scheduled(runCtx, c.abandonEvery, func(int) { l.abandonStreams(c.abandonBurst) })
	})
	wg.Go(func() {
		scheduled(runCtx, c.restartEvery, func(n int) {
			if err := restartRedis(runCtx, redis, l.outage, t, n%2 == 0, c.redisDown); err != nil {
				t.problem("%v", err)
				endRun()
			}
		})
	})

	samples := samplesLoop(runCtx, c, d, t)
	endRun() // samplesLoop also returns early, when churnd died

	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(workersTimeout):
		return nil, fmt.Errorf("the load goroutines did not stop within %v of the end of the run", workersTimeout)
	}
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	var reasons []string
	if d.p.exited() {
		reasons = append(reasons, fmt.Sprintf("churnd exited during the run (%v); its log:\n%s", d.p.err, d.logTail(20)))
	} else {
		if err := d.awaitReady(readyTimeout); err != nil {
			reasons = append(reasons, err.Error())
		}
		if err := d.awaitIdle(idleTimeout); err != nil {
			reasons = append(reasons, err.Error())
		}
		fmt.Printf("after the run: %s\n", listModels(ctx, l))
		if fam, err := d.metrics(); err == nil {
			fmt.Printf("churnd's counters: cache writes %s; calls shed %s; model activations %s; model store repairs %s\n",
				labelled(counts(fam, "churn_cache_writes_total", "result")), labelled(counts(fam, "churn_grpc_shed_total", "class")),
				labelled(counts(fam, "churn_model_activations_total", "")), labelled(counts(fam, "churn_model_store_repairs_total", "kind")))
		}
		if err := d.stop(stopTimeout); err != nil {
			reasons = append(reasons, err.Error())
		} else {
			fmt.Printf("churnd exited 0 on SIGTERM\n")
		}
	}
	return append(reasons, summary(t, samples)...), nil
}

// scheduled calls fn(0), fn(1), … at every period from the start until ctx ends.
func scheduled(ctx context.Context, period time.Duration, fn func(n int)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fn(n)
	}
}

// restartRedis kills Redis (after a SAVE when keep, so that it comes back with its data; else
// it comes back empty), keeps it down for down, and starts it again on the same port.
func restartRedis(ctx context.Context, r *redisServer, o *outage, t *tally, keep bool, down time.Duration) error {
	before := r.keys()
	o.begin()
	if err := r.kill(keep); err != nil {
		return fmt.Errorf("kill Redis: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	if err := r.start(); err != nil { // also at the end of the run: churnd stops with its Redis up
		return fmt.Errorf("restart Redis: %w", err)
	}
	after := r.keys()
	o.end()
	how := "empty"
	if keep {
		how = "with its data"
	}
	t.event("Redis killed (%d keys), back %s (%d keys a moment later)", before, how, after)
	return nil
}

// samplesLoop prints a row at every sample interval until the run ends, and returns the samples.
func samplesLoop(ctx context.Context, c config, d *churnd, t *tally) []sample {
	fmt.Printf("%6s %7s %9s %8s %8s %8s %7s %7s %6s %5s  %s\n", "t", "Score", "Score_max", "batch", "stream", "GetScore",
		"abandon", "RSS_MiB", "gorout", "fds", "errors | events")
	start := time.Now()
	tick := time.NewTicker(c.sample)
	defer tick.Stop()
	var samples []sample
	for {
		select {
		case <-ctx.Done():
			return samples
		case <-d.p.done:
			t.problem("churnd exited during the run: %v", d.p.err)
			return samples
		case <-tick.C:
		}
		s, err := d.sample()
		if err != nil {
			t.problem("sample: %v", err)
			continue
		}
		samples = append(samples, s)
		iv := t.take()
		row := iv.errorsText()
		if len(iv.events) > 0 {
			row += " | " + strings.Join(iv.events, "; ")
		}
		fmt.Printf("%6s %7d %9s %8d %8d %8d %7d %7.1f %6.0f %5.0f  %s\n", time.Since(start).Round(time.Second),
			iv.ok[mScore], iv.slowest.Round(time.Millisecond), iv.ok[mBatch], iv.ok[mStream], iv.ok[mGetScore], iv.abandoned,
			s.rssMiB, s.goroutines, s.fds, row)
	}
}

// summary prints the run's totals, errors and growth checks, and returns why it failed.
func summary(t *tally, samples []sample) []string {
	var reasons []string
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Printf("answered over the run: Score %d calls, ScoreBatch %d customers, ScoreStream %d customers, GetScore %d calls; %d streams abandoned\n",
		t.okTotal[mScore], t.okTotal[mBatch], t.okTotal[mStream], t.okTotal[mGetScore], t.abandonedTotal)
	fmt.Println("errors by method and code over the run:")
	if len(t.total) == 0 {
		fmt.Println("  none")
	}
	for _, k := range sortedKeys(t.total) {
		fmt.Printf("  %-45s %7d  first: %s\n", k, t.total[k], t.first[k])
		if k.reason == "" {
			reasons = append(reasons, fmt.Sprintf("%d × %s, a code the README does not document for this (first: %s)", t.total[k], k, t.first[k]))
		}
	}
	if t.nProblems > 0 {
		fmt.Printf("problems (%d):\n", t.nProblems)
		for _, p := range t.problems {
			fmt.Println("  ", p)
		}
		reasons = append(reasons, fmt.Sprintf("%d problems (listed above)", t.nProblems))
	}
	n := len(samples)
	fmt.Printf("growth: median of samples %d-%d (middle third) against %d-%d (last third); limit = middle × (1 + pct) + slack:\n",
		n/3+1, 2*n/3, 2*n/3+1, n)
	series := map[string]func(sample) float64{
		"RSS (MiB)":  func(s sample) float64 { return s.rssMiB },
		"goroutines": func(s sample) float64 { return s.goroutines },
		"open fds":   func(s sample) float64 { return s.fds },
	}
	for _, name := range []string{"RSS (MiB)", "goroutines", "open fds"} {
		xs := make([]float64, n)
		for i, s := range samples {
			xs[i] = series[name](s)
		}
		tol := tolerances[name]
		g, err := checkGrowth(name, xs, tol)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		verdict := "ok"
		if !g.ok() {
			verdict = "GROWS"
			reasons = append(reasons, fmt.Sprintf("%s grew from %.1f to %.1f, above the limit %.1f", name, g.mid, g.last, g.limit))
		}
		fmt.Printf("  %-11s %8.1f → %8.1f  limit %8.1f (+%.0f%% +%.0f)  %s\n", name, g.mid, g.last, g.limit, tol.pct, tol.slack, verdict)
	}
	return reasons
}

func readFeatures(path string) (*churnv1.CustomerFeatures, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the request file (-request; run from the repository root): %w", err)
	}
	var req churnv1.ScoreRequest
	if err := protojson.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return req.GetFeatures(), nil
}

func buildChurnd(ctx context.Context, tmp string) (string, error) {
	bin := filepath.Join(tmp, "churnd")
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/churnd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	fmt.Println("building churnd (CGO_ENABLED=0 go build ./cmd/churnd)")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build churnd (from the repository root, within %v): %w", buildTimeout, err)
	}
	return bin, nil
}

// awaitReady waits until /readyz answers 200 (churnd serves the model store's active version).
func (c *churnd) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := c.http.Get("http://" + c.httpAddr + "/readyz")
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(body[:n])))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("churnd was not ready within %v of the end of the run: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitIdle waits until churnd holds no call and no stream (churn_grpc_in_flight is 0 in every
// class): every abandoned stream was released.
func (c *churnd) awaitIdle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		fam, err := c.metrics()
		if err != nil {
			return err
		}
		busy := counts(fam, "churn_grpc_in_flight", "class")
		total := 0.0
		for _, v := range busy {
			total += v
		}
		if total == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("churnd still held calls %v (churn_grpc_in_flight) %v after the load stopped", busy, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listModels describes the model store after the run: the versions stored and the active one.
func listModels(ctx context.Context, l *load) string {
	cctx, cancel := context.WithTimeout(l.admin(ctx), callTimeout)
	defer cancel()
	resp, err := l.models.ListModels(cctx, &churnv1.ListModelsRequest{})
	if err != nil {
		return fmt.Sprintf("ListModels failed: %v", err)
	}
	var versions []string
	for _, m := range resp.GetModels() {
		v := m.GetVersion()
		if m.GetStatus() == churnv1.ModelStatus_MODEL_STATUS_ACTIVE {
			v = "*" + v
		}
		versions = append(versions, v)
	}
	return fmt.Sprintf("%d versions listed (* active): %s", len(versions), strings.Join(versions, " "))
}

// labelled formats counts by label as "a=1 b=2", a count without a label as "3", none as "0".
func labelled(m map[string]float64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k == "" {
			parts = append(parts, fmt.Sprintf("%.0f", m[k]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func redisVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "redis-server ?"
	}
	return strings.TrimSpace(string(out))
}
