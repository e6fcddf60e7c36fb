package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func TestParseInterleaved(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
		wantAddr string
	}{
		{"flags first", []string{"--json", "--addr", "h:1", "v1"}, []string{"v1"}, true, "h:1"},
		{"flags after", []string{"v1", "--json", "--addr=h:2"}, []string{"v1"}, true, "h:2"},
		{"mixed", []string{"a", "--json", "b"}, []string{"a", "b"}, true, "d"},
		{"double dash keeps the rest", []string{"--", "--json"}, []string{"--json"}, false, "d"},
		{"none", nil, nil, false, "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			j := fs.Bool("json", false, "")
			addr := fs.String("addr", "d", "")
			pos, err := parseInterleaved(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantPos, pos); diff != "" {
				t.Errorf("positionals (-want +got):\n%s", diff)
			}
			if *j != tc.wantJSON || *addr != tc.wantAddr {
				t.Errorf("json, addr = %v, %q; want %v, %q", *j, *addr, tc.wantJSON, tc.wantAddr)
			}
		})
	}
}

func TestRPCErrorLine(t *testing.T) {
	t.Parallel()
	withField := func(msg, field, desc string) error {
		st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name, token string
		err         error
		want        string
	}{
		{"field named in message", "", withField("bundle.check_vectors[2]: got 0.3, want 0.4", "bundle.check_vectors[2]", "got 0.3, want 0.4"),
			"churnctl upload: refused (InvalidArgument): bundle.check_vectors[2]: got 0.3, want 0.4"},
		{"field appended", "", withField("invalid bundle", "metadata.sha256", "not hex"),
			"churnctl upload: refused (InvalidArgument): invalid bundle; metadata.sha256: not hex"},
		{"no token hint", "", status.Error(codes.Unauthenticated, "missing bearer token"),
			"churnctl upload: not authenticated (Unauthenticated): missing bearer token (no token given: use --token or set CHURN_TOKEN)"},
		{"token masked", "s3cret", status.Error(codes.PermissionDenied, "token s3cret lacks admin"),
			"churnctl upload: not allowed (PermissionDenied): token <token> lacks admin"},
		{"unlisted code", "", status.Error(codes.DataLoss, "x"), "churnctl upload: failed (DataLoss): x"},
		{"multi-line message", "", status.Error(codes.NotFound, "a\nb"), "churnctl upload: not found (NotFound): a b"},
		{"not a status", "", errors.New("boom"), "churnctl upload: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := rpcErrorLine("churnctl upload", tc.err, tc.token); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRollbackTarget(t *testing.T) {
	t.Parallel()
	acts := func(vs ...string) []*churnv1.Activation {
		var out []*churnv1.Activation
		for _, v := range vs {
			out = append(out, &churnv1.Activation{Version: v})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		list    *churnv1.ListModelsResponse
		want    string
		wantErr bool
	}{
		{"previous", &churnv1.ListModelsResponse{ActiveVersion: "b", Activations: acts("b", "a")}, "a", false},
		{"skips repeats of the active", &churnv1.ListModelsResponse{ActiveVersion: "b", Activations: acts("b", "b", "c", "a")}, "c", false},
		{"active not at the top", &churnv1.ListModelsResponse{ActiveVersion: "a", Activations: acts("b", "a")}, "b", false},
		{"only the active", &churnv1.ListModelsResponse{ActiveVersion: "a", Activations: acts("a")}, "", true},
		{"empty history", &churnv1.ListModelsResponse{ActiveVersion: "a"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := rollbackTarget(tc.list)
			if tc.wantErr {
				if !errors.Is(err, errNothingToRollBack) {
					t.Fatalf("err = %v, want errNothingToRollBack", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("rollbackTarget = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPrintModelList(t *testing.T) {
	t.Parallel()
	ts := timestamppb.New(mustTime(t, "2026-11-23T12:00:00Z"))
	var buf bytes.Buffer
	printModelList(&buf, &churnv1.ListModelsResponse{
		ActiveVersion: "v2",
		Models: []*churnv1.ModelInfo{
			{Name: "m", Version: "v1", Status: churnv1.ModelStatus_MODEL_STATUS_READY, ModelType: "logistic_regression",
				CreatedAt: ts, Origin: "embedded", Evaluation: &churnv1.ModelEvaluation{RocAuc: 0.91234, Brier: 0.0712}},
			{Name: "m", Version: "v2", Status: churnv1.ModelStatus_MODEL_STATUS_ACTIVE, Origin: "store"},
			{Name: "m", Version: "v3", Status: churnv1.ModelStatus_MODEL_STATUS_FAILED, Error: "check vector 0 differs"},
		},
	})
	want := `  VERSION  NAME  STATUS  TYPE                 CREATED           ROC-AUC  BRIER   ORIGIN
  v1       m     READY   logistic_regression  2026-11-23 12:00  0.9123   0.0712  embedded
* v2       m     ACTIVE  -                    -                 -        -       store
  v3       m     FAILED  -                    -                 -        -       -
v3: check vector 0 differs
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestPrintModel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	printModel(&buf, &churnv1.ModelInfo{
		Name: "m", Version: "v1", Status: churnv1.ModelStatus_MODEL_STATUS_READY, SizeBytes: 12595,
		Tiers:      &churnv1.TierThresholds{Medium: 0.2, High: 0.4, Critical: 0.7},
		Evaluation: &churnv1.ModelEvaluation{Trainer: "lr", Split: "test", Rows: 630, Positives: 99, RocAuc: 0.9},
		Inputs: []*churnv1.ModelInput{
			{Name: "contract", Source: "account.contract", Type: "categorical", Missing: "impute", Categories: []string{"a", "b"}},
			{Name: "calls", Source: "numeric.calls", Type: "numeric"},
		},
	})
	for _, want := range []string{
		"status        READY\n",
		"size          12.3 KiB (12595 bytes)\n",
		"tiers         MEDIUM >= 0.2, HIGH >= 0.4, CRITICAL >= 0.7\n",
		"evaluated on  test: 630 rows, 99 positive\n",
		"inputs (2):\n",
		"contract  account.contract  categorical  impute   a, b\n",
		"calls     numeric.calls     numeric      -        -\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0 bytes", 1023: "1023 bytes", 1024: "1.0 KiB (1024 bytes)", 64 << 20: "64.0 MiB (67108864 bytes)",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestModelsUsage covers the exits that never reach a server.
func TestModelsUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no subcommand", nil, 2, "usage: churnctl models"},
		{"unknown subcommand", []string{"delete"}, 2, `unknown subcommand "delete"`},
		{"get without version", []string{"get"}, 2, "want one VERSION, got 0"},
		{"activate with two", []string{"activate", "a", "b"}, 2, "want one VERSION, got 2"},
		{"list with an argument", []string{"list", "x"}, 2, `unexpected arguments ["x"]`},
		{"bad flag", []string{"list", "--nope"}, 2, "flag provided but not defined"},
		{"help", []string{"list", "-h"}, 0, "usage: churnctl models list"},
		{"empty version", []string{"get", " "}, 2, "VERSION is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := modelsMain(context.Background(), tc.args, &stdout, &stderr, noEnv)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestModelsAndUploadAreCommands(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"models", "upload"} {
		if _, ok := commands[name]; !ok {
			t.Errorf("commands has no %q", name)
		}
	}
}

func noEnv(string) string { return "" }
