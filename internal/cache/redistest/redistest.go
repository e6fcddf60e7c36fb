// Package redistest starts throwaway Redis servers for tests: one redis-server, a Redis Cluster of
// several, or a server watched by a Sentinel, on free ports, keeping nothing on disk, stopped when
// the test ends.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/poll"
)

// startTimeout bounds how long the server may take to answer PING.
const startTimeout = 10 * time.Second

// StartRedis starts redis-server on a free 127.0.0.1 port and returns its address, a stop func that
// kills it (as a crash would) and a restart func that starts it again on the same port. Both may be
// called more than once; the server is stopped when the test ends. Without redis-server on PATH the
// test fails: it never skips.
func StartRedis(t testing.TB) (addr string, stop func(), restart func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: install it (Debian: apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &server{bin: bin, port: port, addr: addr, dir: t.TempDir()}
	if err := s.start(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.stop)
	restart = func() {
		t.Helper()
		s.stop()
		if err := s.start(); err != nil {
			t.Fatalf("redistest: restart: %v", err)
		}
	}
	return addr, s.stop, restart
}

// StartCluster starts a Redis Cluster of n masters (no replicas, all 16,384 slots spread over
// them by redis-cli --cluster create) on free 127.0.0.1 ports, waits until every node reports
// cluster_state:ok, and returns their addresses. The nodes are stopped when the test ends. Without
// redis-server and redis-cli on PATH the test fails: it never skips.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: install it (Debian: apt-get install redis-server)")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found: install it (Debian: apt-get install redis-tools)")
	}
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	addrs := make([]string, n)
	for i := range addrs {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		bus, err := freePort() // not port+10000, the default, which may be taken or above 65535
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		dir := t.TempDir()
		s := &server{bin: bin, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir,
			extra: []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000"}}
		if err := s.start(); err != nil {
			t.Fatalf("redistest: cluster node %d: %v", i, err)
		}
		t.Cleanup(s.stop)
		addrs[i] = s.addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		host, port, _ := net.SplitHostPort(addr)
		poll.Until(t, startTimeout, func() bool {
			info, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").Output()
			return err == nil && bytes.Contains(info, []byte("cluster_state:ok"))
		}, "redistest: cluster node %s reports cluster_state:ok", addr)
	}
	return addrs
}

// StartSentinel starts a redis-server and a Sentinel that monitors it as master name, on free
// 127.0.0.1 ports, waits until the Sentinel reports the master's address, and returns the
// Sentinel's address. Both are stopped when the test ends.
func StartSentinel(t testing.TB, name string) (sentinelAddr string) {
	t.Helper()
	master, _, _ := StartRedis(t)
	bin, _ := exec.LookPath("redis-server")
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found: install it (Debian: apt-get install redis-tools)")
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	dir := t.TempDir()
	mhost, mport, _ := net.SplitHostPort(master)
	conf := filepath.Join(dir, "sentinel.conf") // the Sentinel rewrites its own configuration
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("sentinel monitor %s %s %s 1\n", name, mhost, mport)), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &server{bin: bin, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir,
		extra: []string{"--sentinel"}, conf: conf}
	if err := s.start(); err != nil {
		t.Fatalf("redistest: sentinel: %v", err)
	}
	t.Cleanup(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	poll.Until(t, startTimeout, func() bool {
		out, err := exec.CommandContext(ctx, cli, "-p", strconv.Itoa(port), "sentinel", "get-master-addr-by-name", name).Output()
		return err == nil && bytes.Contains(out, []byte(mport))
	}, "redistest: sentinel on %s knows master %s", s.addr, name)
	return s.addr
}

type server struct {
	bin, addr, dir string
	port           int
	extra          []string // more redis-server arguments
	conf           string   // a configuration file, first argument when set

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr bytes.Buffer
}

func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	cmd := exec.Command(s.bin, append(append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	), s.extra...)...)
	s.stderr.Reset()
	cmd.Stdout = &s.stderr
	cmd.Stderr = &s.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.addr) == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("redis-server on %s exited at start: %s", s.addr, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			s.cmd = nil
			return fmt.Errorf("redis-server on %s did not answer PING within %v", s.addr, startTimeout)
		}
	}
}

// stop kills the server and waits for it to exit.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// ping sends an inline PING and waits for +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
