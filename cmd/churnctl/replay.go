package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// replayFlags are the flags of churnctl replay.
type replayFlags struct {
	connFlags
	token, data, spec, rows, idPrefix, version string
	batch                                      int
	asJSON                                     bool
	timeout                                    time.Duration
}

// replayUsage is a bad flag value of churnctl replay: exit code 2.
type replayUsage struct{ error }

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("churnctl replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f replayFlags
	f.connFlags.register(fs)
	fs.StringVar(&f.token, "token", "", "scoring (or admin) bearer token, when churnd requires one (default: env CHURN_TOKEN)")
	fs.StringVar(&f.data, "data", "", "data: a CSV file with a header row and the label column (required)")
	fs.StringVar(&f.spec, "spec", "", "dataset spec (JSON) mapping the CSV's columns to request fields (required)")
	fs.StringVar(&f.rows, "rows", "", "replay only these rows: a file of 0-based data-row indices, one a line (default: every row)")
	fs.StringVar(&f.idPrefix, "id-prefix", "replay-", "customer id of a row: this prefix and the row's 0-based index")
	fs.StringVar(&f.version, "model-version", "", "score with this model version instead of the active one")
	fs.IntVar(&f.batch, "batch", 500, "outcomes per RecordOutcomes call (at most churnd's --max-batch)")
	fs.BoolVar(&f.asJSON, "json", false, "print churnd's live model performance as protobuf JSON")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each unary call (the scoring stream has none)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl replay --data file.csv --spec spec.json [--rows idx.csv] [--addr host:port] [flags]")
		fmt.Fprintln(stderr, "\nScores every row (or the --rows) through a running churnd over ScoreStream, then records each")
		fmt.Fprintln(stderr, "row's label as an outcome (CHURNED or RETAINED, dated at its score) with RecordOutcomes, and")
		fmt.Fprintln(stderr, "prints churnd's live model performance over the replay: compare it with churnctl evaluate.")
		fs.PrintDefaults()
	}
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	if f.token == "" {
		f.token = os.Getenv("CHURN_TOKEN")
	}
	err := replayCommand(ctx, &f, stdout, stderr)
	var ue replayUsage
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "churnctl replay: %v\n", err)
		fs.Usage()
		return 2
	default:
		fmt.Fprintln(stderr, rpcErrorLine("churnctl replay", err, f.token))
		return 1
	}
}

// replayed is one row scored by churnd.
type replayed struct {
	row      int
	churned  bool
	scoredAt *timestamppb.Timestamp
}

func replayCommand(ctx context.Context, f *replayFlags, stdout, stderr io.Writer) error {
	for _, req := range []struct{ name, val string }{{"data", f.data}, {"spec", f.spec}} {
		if req.val == "" {
			return replayUsage{fmt.Errorf("--%s is required", req.name)}
		}
	}
	if f.batch < 1 {
		return replayUsage{fmt.Errorf("--batch %d: want at least 1", f.batch)}
	}
	ds, _, rows, err := readRows(f.data, f.spec, f.rows)
	if err != nil {
		return err
	}
	f.plaintextTokenWarning(f.token, stderr)
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = (&adminFlags{token: f.token}).outgoing(ctx)

	scored, refused, err := replayScores(ctx, churnv1.NewScoringServiceClient(conn), ds.Request, ds.Labels, rows, f)
	if err != nil {
		return err
	}
	if len(scored) == 0 {
		return fmt.Errorf("churnd refused all %d rows", len(rows))
	}
	outcomes := churnv1.NewOutcomeServiceClient(conn)
	var recorded, duplicates, unjoined, churned int
	for start := 0; start < len(scored); start += f.batch {
		part := scored[start:min(start+f.batch, len(scored))]
		req := &churnv1.RecordOutcomesRequest{Outcomes: make([]*churnv1.Outcome, len(part))}
		for i, r := range part {
			t := churnv1.OutcomeType_OUTCOME_TYPE_RETAINED
			if r.churned {
				t = churnv1.OutcomeType_OUTCOME_TYPE_CHURNED
			}
			// Dated at its score, on churnd's clock, so that it joins that score whatever the
			// two clocks say.
			req.Outcomes[i] = &churnv1.Outcome{CustomerId: fmt.Sprintf("%s%d", f.idPrefix, r.row), Type: t, OccurredAt: r.scoredAt}
		}
		callCtx, cancel := context.WithTimeout(ctx, f.timeout)
		resp, err := outcomes.RecordOutcomes(callCtx, req, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return err
		}
		for i, res := range resp.GetResults() {
			switch {
			case res.GetError() != nil:
				return fmt.Errorf("row %d: the outcome was refused: %s", part[i].row, res.GetError().GetMessage())
			case res.GetDuplicate():
				duplicates++
			default:
				recorded++
				if part[i].churned {
					churned++
				}
				if res.GetScoredBy() == nil {
					unjoined++
				}
			}
		}
	}
	first, last := scored[0].scoredAt.AsTime(), scored[0].scoredAt.AsTime()
	for _, r := range scored {
		at := r.scoredAt.AsTime()
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	perf, err := outcomes.GetModelPerformance(callCtx, &churnv1.GetModelPerformanceRequest{
		Version: f.version, From: timestamppb.New(first), To: timestamppb.New(last.Add(time.Nanosecond)),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replayed %d rows: %d scored (%d refused), %d outcomes recorded (%d churned, %d duplicates, %d not joined to a score)\n",
		len(rows), len(scored), refused, recorded, churned, duplicates, unjoined)
	if f.asJSON {
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(perf)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	fmt.Fprintln(stdout, "live model performance over the replay (every outcome that churnd has recorded in that time):")
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tCUSTOMERS\tCHURNED\tRATE\tMEAN P\tROC-AUC\t±\tBRIER\tLIFT@10%")
	for _, r := range perf.GetRows() {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.2f\n", r.GetModel().GetVersion(), r.GetCustomers(), r.GetChurned(),
			r.GetObservedChurnRate(), r.GetMeanPredicted(), r.GetRocAuc(), r.GetRocAucErrorBound(), r.GetBrier(), r.GetLiftTop_10())
	}
	return tw.Flush()
}

// replayScores scores the rows over one ScoreStream: a goroutine sends while this one receives,
// so gRPC's flow control paces both. Rows churnd refuses are counted, not recorded.
func replayScores(ctx context.Context, client churnv1.ScoringServiceClient, request func(int) (*churnv1.CustomerFeatures, error), labels []bool, rows []int, f *replayFlags) ([]replayed, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.ScoreStream(ctx, grpc.WaitForReady(true))
	if err != nil {
		return nil, 0, err
	}
	sent := make(chan error, 1)
	go func() {
		sent <- func() error {
			for _, i := range rows {
				feats, err := request(i)
				if err != nil {
					return err
				}
				if err := stream.Send(&churnv1.ScoreRequest{CustomerId: fmt.Sprintf("%s%d", f.idPrefix, i), Features: feats, ModelVersion: f.version}); err != nil {
					return nil // the receiver gets the stream's error
				}
			}
			return stream.CloseSend()
		}()
	}()
	var scored []replayed
	refused := 0
	for k := range rows {
		resp, err := stream.Recv()
		if err != nil {
			if serr := <-sent; serr != nil {
				return nil, 0, serr
			}
			if err == io.EOF {
				return nil, 0, fmt.Errorf("churnd ended the stream after %d of %d rows", k, len(rows))
			}
			return nil, 0, err
		}
		if resp.GetError() != nil {
			refused++
			continue
		}
		scored = append(scored, replayed{row: rows[k], churned: labels[rows[k]], scoredAt: resp.GetScoredAt()})
	}
	if err := <-sent; err != nil {
		return nil, 0, err
	}
	return scored, refused, nil
}
