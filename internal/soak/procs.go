package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

const (
	redisStartTimeout  = 10 * time.Second
	redisStopTimeout   = 10 * time.Second
	churndStartTimeout = 60 * time.Second // a busy 2-core machine, and the model's checks at load
	scrapeTimeout      = 5 * time.Second
)

// proc is a child process and the channel closed when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the exit, at most timeout.
func (p *proc) kill(timeout time.Duration) error {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("pid %d did not exit within %v of SIGKILL", p.cmd.Process.Pid, timeout)
	}
}

// redisServer is a throwaway redis-server on one port that can be killed and started again
// there. Its snapshot (dump.rdb) lives in dir, so a restart comes back with the data of the last
// SAVE, or empty once the snapshot is removed.
type redisServer struct {
	bin, dir, addr string
	port           int
	p              *proc
}

func newRedis(bin, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{bin: bin, dir: dir, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	return r, r.start()
}

func (r *redisServer) start() error {
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--dbfilename", "dump.rdb")
	cmd.Stdout, cmd.Stderr = log, log
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.p = p
	deadline := time.Now().Add(redisStartTimeout)
	for {
		if r.ping() == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("redis-server on %s exited at start (its log: %s)", r.addr, log.Name())
		}
		if time.Now().After(deadline) {
			_ = p.kill(redisStopTimeout)
			return fmt.Errorf("redis-server on %s did not answer PING within %v", r.addr, redisStartTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr, DialTimeout: time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
}

func (r *redisServer) ping() error {
	c := r.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// keys is the number of keys in the database, -1 when Redis did not answer.
func (r *redisServer) keys() int64 {
	c := r.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		return -1
	}
	return n
}

// kill kills the server as a crash would. With keep, it first writes a snapshot (SAVE), so that
// the next start loads the data; without, it removes the snapshot, so that the next start is
// empty.
func (r *redisServer) kill(keep bool) error {
	if keep {
		c := r.client()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Save(ctx).Err()
		cancel()
		c.Close()
		if err != nil {
			return fmt.Errorf("redis SAVE before the kill: %w", err)
		}
	}
	if err := r.p.kill(redisStopTimeout); err != nil {
		return err
	}
	if !keep {
		if err := os.Remove(filepath.Join(r.dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (r *redisServer) stop() {
	if r.p != nil && !r.p.exited() {
		_ = r.p.kill(redisStopTimeout)
	}
}

// churnd is the service under test.
type churnd struct {
	p        *proc
	grpcAddr string
	httpAddr string
	logPath  string
	http     *http.Client
}

func startChurnd(ctx context.Context, bin, dir string, extra []string) (*churnd, error) {
	gport, err := freePort()
	if err != nil {
		return nil, err
	}
	hport, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &churnd{
		grpcAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(gport)),
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(hport)),
		logPath:  filepath.Join(dir, "churnd.log"),
		http:     &http.Client{Timeout: scrapeTimeout},
	}
	log, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	args := append([]string{"--grpc-addr", c.grpcAddr, "--http-addr", c.httpAddr,
		"--log-format", "text", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// The collector as on a machine without a memory limit (see internal/tools/churnd-pair.sh):
	// the soak's figures then do not depend on the cgroup it runs in.
	cmd.Env = append(os.Environ(), "GOGC=100", "AUTOMEMLIMIT=off")
	if c.p, err = startProc(cmd); err != nil {
		return nil, fmt.Errorf("start churnd: %w", err)
	}
	deadline := time.Now().Add(churndStartTimeout)
	for {
		if resp, err := c.http.Get("http://" + c.httpAddr + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if c.p.exited() {
			return nil, fmt.Errorf("churnd exited at start-up (%v); its log:\n%s", c.p.err, c.logTail(20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = c.p.kill(redisStopTimeout)
			return nil, fmt.Errorf("churnd was not ready within %v; its log:\n%s", churndStartTimeout, c.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *churnd) pid() int { return c.p.cmd.Process.Pid }

// stop sends SIGTERM and waits, at most timeout, for churnd to exit; an exit other than 0, or
// none in time (then it is killed), is an error.
func (c *churnd) stop(timeout time.Duration) error {
	if c.p.exited() {
		return fmt.Errorf("churnd had already exited: %v", c.p.err)
	}
	_ = c.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.p.done:
		if c.p.err != nil {
			return fmt.Errorf("churnd exited with %v after SIGTERM; its log:\n%s", c.p.err, c.logTail(20))
		}
		return nil
	case <-time.After(timeout):
		_ = c.p.kill(redisStopTimeout)
		return fmt.Errorf("churnd did not exit within %v of SIGTERM (killed); its log:\n%s", timeout, c.logTail(20))
	}
}

// sample is churnd's resources at one moment.
type sample struct {
	rssMiB     float64
	goroutines float64
	fds        float64
}

// sample reads churnd's resident memory (VmRSS in /proc/PID/status), its open descriptors (the
// entries of /proc/PID/fd) and its goroutines (go_goroutines on /metrics).
func (c *churnd) sample() (sample, error) {
	var s sample
	pid := strconv.Itoa(c.pid())
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, fmt.Errorf("read /proc/%s/status: %w", pid, err)
	}
	kb, err := statusField(string(status), "VmRSS")
	if err != nil {
		return s, err
	}
	s.rssMiB = kb / 1024
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return s, fmt.Errorf("read /proc/%s/fd: %w", pid, err)
	}
	s.fds = float64(len(fds))
	families, err := c.metrics()
	if err != nil {
		return s, err
	}
	g := families["go_goroutines"]
	if g == nil || len(g.GetMetric()) != 1 {
		return s, errors.New("/metrics has no go_goroutines")
	}
	s.goroutines = g.GetMetric()[0].GetGauge().GetValue()
	return s, nil
}

// metrics scrapes churnd's /metrics.
func (c *churnd) metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := c.http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return families, nil
}

// counts sums a metric family's samples (counter or gauge) by the value of one label.
func counts(families map[string]*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		key := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

// statusField reads a "Name:   1234 kB" line of /proc/PID/status, in kB.
func statusField(status, name string) (float64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.ParseFloat(f[0], 64)
	}
	return 0, fmt.Errorf("/proc status has no %s", name)
}

// logTail is the last n lines of churnd's log.
func (c *churnd) logTail(n int) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
