//go:build linux

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// TestAttack runs issue 12's resource attacks against the churnd binary, each on a fresh
// process, and reports its resident memory (VmRSS sampled every 250 ms, and the kernel's
// VmHWM high-water mark), its open descriptors, and whether normal calls made during the attack
// were answered. It measures and reports; its only failures are calls a well-behaved client made
// that were not answered. The figures go to docs/PERFORMANCE.md ("Limits under attack").
//
//	CHURN_ATTACK=1 go test -count=1 -v -timeout 60m -run TestAttack ./cmd/churnd/
//
// CHURN_ATTACK_BIN=<path> runs the attacks against another churnd build (e.g. one from before the
// limits), with only the flags both know; CHURN_ATTACK_ONLY=<name> runs one attack.
func TestAttack(t *testing.T) {
	if os.Getenv("CHURN_ATTACK") == "" {
		t.Skip("measured attacks of issue 12 (minutes, tens of thousands of streams); set CHURN_ATTACK=1 to run them")
	}
	for _, a := range []struct {
		name string
		run  func(t *testing.T, d *daemon)
	}{
		{"idle-streams", attackIdleStreams},
		{"connection-flood", attackConnections},
		{"uploads-announcing-64MiB", attackUploads},
		{"non-reading-streams", attackNonReaders},
		{"http-flood", attackHTTPFlood},
	} {
		if only := os.Getenv("CHURN_ATTACK_ONLY"); only != "" && only != a.name {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			d := startAttackDaemon(t)
			a.run(t, d)
		})
	}
}

const attackToken = "attack-admin-token-0123456789"

func startAttackDaemon(t *testing.T) *daemon {
	t.Helper()
	if bin := os.Getenv("CHURN_ATTACK_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := builds.LoadOrStore("./cmd/churnd", &buildResult{})
		v.(*buildResult).once.Do(func() { v.(*buildResult).path = abs })
	}
	return startDaemon(t, "--admin-tokens", attackToken)
}

// memory samples a process's resident memory until stop is called, which returns the peak
// sample and the kernel's high-water mark, in MiB.
func memory(t *testing.T, pid int) (stop func() (peak, hwm float64)) {
	var mu sync.Mutex
	var max float64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss := procStatus(pid, "VmRSS"); rss > 0 {
				mu.Lock()
				max = maxf(max, rss)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return max, procStatus(pid, "VmHWM")
	}
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// procStatus reads a kB field of /proc/<pid>/status, in MiB; 0 when unreadable.
func procStatus(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func openFDs(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries)
}

// metric returns the value of the first /metrics line starting with series, -1 when absent.
func metric(httpAddr, series string) float64 {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

func attackRequest(t *testing.T) *churnv1.ScoreRequest {
	data, err := os.ReadFile("../../testdata/requests/basic.json")
	if err != nil {
		t.Fatal(err)
	}
	req := &churnv1.ScoreRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		t.Fatal(err)
	}
	return req
}

// normalLoad is well-behaved traffic during an attack: workers calling Score on a connection
// made before the attack, and a /metrics scrape every second.
type normalLoad struct {
	scores, scoreFailures, scrapes, scrapeFailures atomic.Int64
	firstFailure                                   atomic.Value
	cancel                                         context.CancelFunc
	conn                                           *grpc.ClientConn
	wg                                             sync.WaitGroup
}

func startNormalLoad(t *testing.T, d *daemon) *normalLoad {
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client, req := churnv1.NewScoringServiceClient(conn), attackRequest(t)
	if _, err := client.Score(context.Background(), req); err != nil {
		t.Fatalf("Score before the attack: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &normalLoad{cancel: cancel, conn: conn}
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pace := time.NewTicker(5 * time.Millisecond) // a steady rate, not a saturating one
			defer pace.Stop()
			for ; ctx.Err() == nil; <-pace.C {
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := client.Score(cctx, req)
				ccancel()
				l.scores.Add(1)
				if err != nil {
					l.scoreFailures.Add(1)
					l.firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		hc := http.Client{Timeout: 10 * time.Second}
		for ctx.Err() == nil {
			resp, err := hc.Get("http://" + d.httpAddr + "/metrics")
			l.scrapes.Add(1)
			if err != nil {
				l.scrapeFailures.Add(1)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return l
}

func (l *normalLoad) stop(t *testing.T) {
	l.cancel()
	l.wg.Wait()
	l.conn.Close()
	t.Logf("normal load during the attack: %d Score calls, %d failed; %d /metrics scrapes, %d failed",
		l.scores.Load(), l.scoreFailures.Load(), l.scrapes.Load(), l.scrapeFailures.Load())
	if l.scoreFailures.Load() > 0 {
		t.Errorf("%d Score calls of the normal load failed; first: %v", l.scoreFailures.Load(), l.firstFailure.Load())
	}
}

// attackIdleStreams opens 40,000 ScoreStream calls, 100 on each of 400 connections, that send
// one request, read its answer and then neither send nor half-close, and holds them for 90 s
// (past the default 60 s idle timeout).
func attackIdleStreams(t *testing.T, d *daemon) {
	const conns, perConn, hold = 400, 100, 90 * time.Second
	pid := d.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")
	load := startNormalLoad(t, d)
	mem := memory(t, pid)
	req := attackRequest(t)

	ctx, cancel := context.WithCancel(context.Background())
	var answered, refused, idleClosed, otherEnd atomic.Int64
	var otherErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := churnv1.NewScoringServiceClient(conn)
		for range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := client.ScoreStream(ctx)
				if err == nil {
					err = s.Send(req)
					if errors.Is(err, io.EOF) { // refused already: Recv has the status
						err = nil
					}
				}
				if err == nil {
					if _, err = s.Recv(); err == nil {
						answered.Add(1)
						_, err = s.Recv() // held: nothing more is sent, the stream is never half-closed
					}
				}
				switch {
				case status.Code(err) == codes.ResourceExhausted:
					refused.Add(1)
				case status.Code(err) == codes.DeadlineExceeded && strings.Contains(err.Error(), "no message for"):
					idleClosed.Add(1)
				case ctx.Err() != nil:
				default:
					otherEnd.Add(1)
					otherErr.CompareAndSwap(nil, fmt.Sprint(err))
				}
			}()
		}
	}
	var maxHeld float64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ; time.Since(start) < hold; <-tick.C {
		maxHeld = maxf(maxHeld, metric(d.httpAddr, `churn_grpc_in_flight{class="stream"}`))
	}
	rssHeld := procStatus(pid, "VmRSS")
	fds := openFDs(pid)
	cancel()
	wg.Wait()
	load.stop(t)
	peak, hwm := mem()
	t.Logf("40,000 idle ScoreStream calls on 400 connections for %v: RSS %.0f MiB before, %.0f MiB at the end, peak %.0f MiB (VmHWM %.0f MiB); %d open fds at the end",
		hold, base, rssHeld, peak, hwm, fds)
	t.Logf("streams: %d answered their first request, %d refused RESOURCE_EXHAUSTED, %d closed idle, %d ended otherwise (%v); at most %.0f held at once",
		answered.Load(), refused.Load(), idleClosed.Load(), otherEnd.Load(), otherErr.Load(), maxHeld)
}

// attackUploads opens 30 uploads that announce 64 MiB and send nothing more, for 90 s.
func attackUploads(t *testing.T, d *daemon) {
	const n, hold = 30, 90 * time.Second
	pid := d.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")
	load := startNormalLoad(t, d)
	mem := memory(t, pid)
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	models := churnv1.NewModelServiceClient(conn)
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+attackToken))
	codesSeen := map[codes.Code]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := models.UploadModel(ctx)
			if err == nil {
				err = s.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: &churnv1.UploadMetadata{
					Sha256: strings.Repeat("0", 64), SizeBytes: 64 << 20}}})
			}
			if err == nil {
				err = s.RecvMsg(&churnv1.ModelInfo{})
			}
			mu.Lock()
			codesSeen[status.Code(err)]++
			mu.Unlock()
		}()
	}
	<-time.After(hold)
	rssHeld := procStatus(pid, "VmRSS")
	cancel()
	wg.Wait()
	load.stop(t)
	peak, hwm := mem()
	t.Logf("30 uploads announcing 64 MiB and sending nothing, for %v: RSS %.0f MiB before, %.0f MiB at the end, peak %.0f MiB (VmHWM %.0f MiB); outcomes by code %v",
		hold, base, rssHeld, peak, hwm, codesSeen)
}

// attackNonReaders runs 100 ScoreStream clients, one connection each, that send requests as fast
// as flow control lets them (customer ids from a set of 1,000) and never read a response, for
// 60 s; RSS is logged every 6 s to show whether it levels off.
func attackNonReaders(t *testing.T, d *daemon) {
	const n, dur = 100, 60 * time.Second
	pid := d.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")
	load := startNormalLoad(t, d)
	mem := memory(t, pid)
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := churnv1.NewScoringServiceClient(conn).ScoreStream(ctx)
			if err != nil {
				return
			}
			req := attackRequest(t)
			for j := 0; ctx.Err() == nil; j++ {
				req.CustomerId = fmt.Sprintf("nonreader-%d", (i*1000+j)%1000)
				if s.Send(req) != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	var samples []string
	start := time.Now()
	tick := time.NewTicker(6 * time.Second)
	defer tick.Stop()
	for time.Since(start) < dur {
		<-tick.C
		samples = append(samples, fmt.Sprintf("%.0fs:%.0f", time.Since(start).Seconds(), procStatus(pid, "VmRSS")))
	}
	cancel()
	wg.Wait()
	load.stop(t)
	peak, hwm := mem()
	t.Logf("100 ScoreStream clients that never read, for %v (%d requests sent): RSS %.0f MiB before, peak %.0f MiB (VmHWM %.0f MiB); RSS over time (s:MiB) %s",
		dur, sent.Load(), base, peak, hwm, strings.Join(samples, " "))
}

// attackHTTPFlood lowers churnd's descriptor limit to 5,000 (so that this process, whose own limit
// is 20,000, can exceed it, as 20,200 connections exceeded the 20,000 of the run), opens
// 19,000 connections to the HTTP port, each sending one request and staying open (keep-alive),
// then makes a new gRPC client and calls Score.
func attackHTTPFlood(t *testing.T, d *daemon) {
	const n, fdLimit = 19_000, 5_000
	pid := d.cmd.Process.Pid
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: fdLimit, Max: fdLimit}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	base := procStatus(pid, "VmRSS")
	mem := memory(t, pid)
	var established, served atomic.Int64
	conns := make(chan net.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", d.httpAddr, 2*time.Second)
			if err != nil {
				return
			}
			conns <- c
			established.Add(1)
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: churnd\r\n\r\n"); err != nil {
				return
			}
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	wg.Wait()
	close(conns)
	fds := openFDs(pid)
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, scoreErr := churnv1.NewScoringServiceClient(conn).Score(ctx, attackRequest(t))
	for c := range conns {
		c.Close()
	}
	peak, hwm := mem()
	t.Logf("descriptor limit %d; %d connections to the HTTP port tried, %d established (TCP), %d served a request; churnd holds %d open fds; RSS %.0f MiB before, peak %.0f MiB (VmHWM %.0f MiB); Score from a new gRPC client: %v",
		fdLimit, n, established.Load(), served.Load(), fds, base, peak, hwm, scoreErr)
	if scoreErr != nil {
		t.Errorf("Score from a new gRPC client with the HTTP port flooded: %v", scoreErr)
	}
}

// attackConnections opens 5,000 gRPC connections, each holding one ScoreStream that sends
// nothing, for 30 s, while the normal load runs on a connection made before.
func attackConnections(t *testing.T, d *daemon) {
	const n, hold = 5_000, 30 * time.Second
	pid := d.cmd.Process.Pid
	base := procStatus(pid, "VmRSS")
	load := startNormalLoad(t, d)
	mem := memory(t, pid)
	ctx, cancel := context.WithCancel(context.Background())
	var opened atomic.Int64
	var wg sync.WaitGroup
	for range n {
		conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := churnv1.NewScoringServiceClient(conn).ScoreStream(ctx)
			if err != nil {
				return
			}
			opened.Add(1)
			s.Recv()
		}()
	}
	<-time.After(hold)
	rssHeld, fds := procStatus(pid, "VmRSS"), openFDs(pid)
	cancel()
	wg.Wait()
	load.stop(t)
	peak, hwm := mem()
	t.Logf("%d gRPC connections each opening a silent ScoreStream, for %v: %d streams created client-side; churnd holds %d open fds; RSS %.0f MiB before, %.0f MiB at the end, peak %.0f MiB (VmHWM %.0f MiB)",
		n, hold, opened.Load(), fds, base, rssHeld, peak, hwm)
}
