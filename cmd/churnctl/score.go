package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/features"
)

// featureFlags collects repeated --set source=value flags.
type featureFlags []string

func (f *featureFlags) String() string     { return strings.Join(*f, ",") }
func (f *featureFlags) Set(v string) error { *f = append(*f, v); return nil }

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("churnctl score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf connFlags
	cf.register(fs)
	token := fs.String("token", "", "scoring (or admin) bearer token, when churnd requires one (default: env CHURN_TOKEN)")
	reqFile := fs.String("request", "", "ScoreRequest as protobuf JSON, from a file or - for stdin")
	id := fs.String("customer-id", "", "customer id (overrides the request file's)")
	version := fs.String("model-version", "", "score with this model version instead of the active one")
	asJSON := fs.Bool("json", false, "print the response as protobuf JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "call timeout")
	var sets featureFlags
	fs.Var(&sets, "set", "a feature as source=value, e.g. complaints.count_30d=2, numeric.calls=40, account.contract=contract (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: churnctl score [--request file.json | -] [--customer-id ID] [--set source=value ...] [--addr host:port] [--json]")
		fs.PrintDefaults()
	}
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	req, err := buildRequest(*reqFile, *id, *version, sets, os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "churnctl score: %v\n", err)
		return 2
	}

	if *token == "" {
		*token = os.Getenv("CHURN_TOKEN")
	}
	cf.plaintextTokenWarning(*token, stderr)
	conn, err := cf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "churnctl score: %v\n", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}
	resp, err := churnv1.NewScoringServiceClient(conn).Score(ctx, req)
	if err != nil {
		printStatus(stderr, err)
		return 1
	}
	if *asJSON {
		return printJSON(stdout, stderr, "churnctl score", resp)
	}
	printScore(stdout, resp)
	return 0
}

// buildRequest reads the request file, if any, then applies the flags on top.
func buildRequest(file, id, version string, sets []string, stdin io.Reader) (*churnv1.ScoreRequest, error) {
	req := &churnv1.ScoreRequest{}
	if file != "" {
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, err
		}
		if err := protojson.Unmarshal(data, req); err != nil {
			return nil, fmt.Errorf("--request %s: %v", file, err)
		}
	}
	if id != "" {
		req.CustomerId = id
	}
	if version != "" {
		req.ModelVersion = version
	}
	if req.Features == nil {
		req.Features = &churnv1.CustomerFeatures{}
	}
	for _, s := range sets {
		source, value, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("--set %q: want source=value", s)
		}
		if err := features.Set(req.Features, source, value); err != nil {
			return nil, fmt.Errorf("--set %q: %v", s, err)
		}
	}
	if req.CustomerId == "" {
		return nil, errors.New("no customer id: give --customer-id or a request file with customerId")
	}
	return req, nil
}

func printScore(w io.Writer, r *churnv1.ScoreResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "customer\t%s\n", r.GetCustomerId())
	fmt.Fprintf(tw, "probability\t%.4f\n", r.GetProbability())
	fmt.Fprintf(tw, "tier\t%s\n", strings.TrimPrefix(r.GetTier().String(), "RISK_TIER_"))
	fmt.Fprintf(tw, "model\t%s %s\n", r.GetModel().GetName(), r.GetModel().GetVersion())
	fmt.Fprintf(tw, "scored at\t%s\n", r.GetScoredAt().AsTime().Format(time.RFC3339))
	if len(r.GetImputedInputs()) > 0 {
		fmt.Fprintf(tw, "imputed\t%s\n", strings.Join(r.GetImputedInputs(), ", "))
	}
	tw.Flush()
}

// printStatus prints a gRPC error with its code and the fields it names.
func printStatus(w io.Writer, err error) {
	st := status.Convert(err)
	fmt.Fprintf(w, "churnctl score: %s: %s\n", st.Code(), st.Message())
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fmt.Fprintf(w, "  field %s: %s\n", v.GetField(), v.GetDescription())
			}
		}
	}
}
