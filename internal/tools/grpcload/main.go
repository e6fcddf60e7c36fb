// Command grpcload measures the latency of one unary gRPC method under load, for the latency
// targets that ghz cannot show on a 2-core machine: ghz builds every request and decodes every
// response by reflection, and its own work (a no-op server's p99 at concurrency 16 is 3.5–7 ms
// with it, 0.7 ms even at concurrency 1) swamps the sub-millisecond figures to be measured.
//
// grpcload sends a request that is already protobuf-encoded (-data, e.g. from `buf convert`) as
// raw bytes and keeps the reply as raw bytes, so the client side of a call is gRPC's framing and
// HTTP/2 only: the same work for any method, and none of it depends on the messages' schema. The
// same binary measures the method under test and the no-op floor (../shared/bench/floor) in turn.
//
// -c workers each send the next call as soon as their last one returns (a closed loop, as ghz
// runs): at saturation the latency is mostly queueing, c / throughput by Little's law, so the
// floor's figures at the same -c are the baseline. There is no fixed-rate mode: on these VMs a
// timer fired more than a millisecond late for 3-19% of the calls at 2,000-5,000 calls/s, which
// would be measured as latency.
//
// It prints one line: rps=… p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=… calls=… errors=…
// (and first_error=… when a call failed): rps and the latencies are of the successful calls.
//
// Hand-written: ghz, the usual Go tool, is the one whose overhead is the problem, and the
// request/latency loop is a few dozen lines over grpc-go.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec sends and receives *[]byte as they are. It is named "proto", so that calls carry the
// usual content type (application/grpc+proto) and the server decodes them with its own codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func main() {
	target := flag.String("target", "", "host:port of the server (required)")
	method := flag.String("method", "", "full method, e.g. /churn.v1.ScoringService/GetScore (required)")
	dataFile := flag.String("data", "", "file with the protobuf-encoded request (required; may be empty for an empty message)")
	conc := flag.Int("c", 16, "concurrent calls (workers)")
	dur := flag.Duration("d", 8*time.Second, "how long to measure")
	warm := flag.Duration("warmup", time.Second, "calls made first and not measured")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call")
	flag.Parse()
	if *target == "" || *method == "" || *dataFile == "" || *conc < 1 || *dur <= 0 || *warm < 0 || *timeout <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	req, err := os.ReadFile(*dataFile)
	if err != nil {
		fail(err)
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	res, err := run(conn, *method, req, *conc, *warm, *dur, *timeout)
	if err != nil {
		fail(err)
	}
	fmt.Println(res)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "grpcload:", err)
	os.Exit(1)
}

type result struct {
	lat      []time.Duration // of the successful calls started in the window
	errors   int             // failed calls started in the window
	window   time.Duration
	firstErr error
}

func (r result) String() string {
	slices.Sort(r.lat)
	q := func(p float64) float64 {
		if len(r.lat) == 0 {
			return -1
		}
		rank := int(math.Ceil(p * float64(len(r.lat)))) // nearest rank: the smallest with p of the calls at or below it
		return float64(r.lat[max(rank, 1)-1]) / 1e6
	}
	s := fmt.Sprintf("rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f calls=%d errors=%d",
		float64(len(r.lat))/r.window.Seconds(), q(0.50), q(0.90), q(0.99), q(0.999), q(1), len(r.lat), r.errors)
	if r.firstErr != nil {
		s += fmt.Sprintf(" first_error=%q", r.firstErr.Error())
	}
	return s
}

// run makes calls for warm, then measures the calls started in the next dur: rps is the
// successful ones over dur (a call that hangs past the window does not stretch it).
func run(conn *grpc.ClientConn, method string, req []byte, c int, warm, dur, timeout time.Duration) (result, error) {
	start := time.Now().Add(warm)
	end := start.Add(dur)
	perWorker := make([]result, c)
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			out := &perWorker[w]
			out.lat = make([]time.Duration, 0, 1<<16)
			var reply []byte
			for {
				sent := time.Now()
				if !sent.Before(end) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := conn.Invoke(ctx, method, &req, &reply)
				cancel()
				if sent.Before(start) {
					continue // warm-up
				}
				if err != nil {
					if out.firstErr == nil {
						out.firstErr = err
					}
					out.errors++
					continue
				}
				out.lat = append(out.lat, time.Since(sent))
			}
		})
	}
	wg.Wait()
	all := result{window: dur}
	for _, r := range perWorker {
		all.lat = append(all.lat, r.lat...)
		all.errors += r.errors
		if all.firstErr == nil {
			all.firstErr = r.firstErr
		}
	}
	if len(all.lat) == 0 && all.firstErr != nil {
		return all, all.firstErr
	}
	return all, nil
}
