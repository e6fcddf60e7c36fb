package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/models/modeltest"
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
		{"previous", &churnv1.ListModelsResponse{ActiveVersion: "b", Activations: acts("b", "a"), Models: ready("a", "b")}, "a", false},
		{"skips repeats of the active", &churnv1.ListModelsResponse{ActiveVersion: "b", Activations: acts("b", "b", "c", "a"), Models: ready("a", "b", "c")}, "c", false},
		{"active not at the top", &churnv1.ListModelsResponse{ActiveVersion: "a", Activations: acts("b", "a"), Models: ready("a", "b")}, "b", false},
		{"skips a version not servable here", &churnv1.ListModelsResponse{ActiveVersion: "c", Activations: acts("c", "b", "a"),
			Models: append(ready("a", "c"), &churnv1.ModelInfo{Version: "b", Status: churnv1.ModelStatus_MODEL_STATUS_FAILED})}, "a", false},
		{"a stored version not loaded here", &churnv1.ListModelsResponse{ActiveVersion: "b", Activations: acts("b", "a"),
			Models: append(ready("b"), &churnv1.ModelInfo{Version: "a", Status: churnv1.ModelStatus_MODEL_STATUS_STORED})}, "a", false},
		{"skips a version no longer listed", &churnv1.ListModelsResponse{ActiveVersion: "c", Activations: acts("c", "old", "a"), Models: ready("a", "c")}, "a", false},
		{"only the active", &churnv1.ListModelsResponse{ActiveVersion: "a", Activations: acts("a"), Models: ready("a")}, "", true},
		{"empty history", &churnv1.ListModelsResponse{ActiveVersion: "a", Models: ready("a")}, "", true},
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

	// A replica out of step with the model store says so under the table.
	buf.Reset()
	printModelList(&buf, &churnv1.ListModelsResponse{
		ActiveVersion: "v1",
		Models:        []*churnv1.ModelInfo{{Name: "m", Version: "v1", Status: churnv1.ModelStatus_MODEL_STATUS_ACTIVE}},
		Replica: &churnv1.ReplicaState{StoreActiveVersion: "v9", ServedVersion: "v1", InSync: false,
			Message:   `the model store's active version is "v9" but this replica serves v1: the bundle of "v9" is not in the model store`,
			SyncError: "model store unavailable: redis: i/o timeout"},
	})
	for _, want := range []string{
		"\nthis replica is out of step with the model store: the model store's active version is \"v9\" but this replica serves v1: the bundle of \"v9\" is not in the model store\n",
		"the last read of the model store failed: model store unavailable: redis: i/o timeout\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("list of an out-of-step replica lacks %q:\n%s", want, buf.String())
		}
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
		{"unknown subcommand", []string{"remove"}, 2, `unknown subcommand "remove"`},
		{"delete without version", []string{"delete"}, 2, "want one VERSION, got 0"},
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

// adminToken is the admin bearer token of the in-process churnd (at least 16 bytes, as churnd
// requires).
const adminToken = "cli-test-admin-token-0123456789"

// startChurnd runs a real churnd (internal/app) in-process on free ports with a fresh disk model
// store and adminToken, stops it when the test ends, and returns its gRPC address. edits change
// the configuration further.
func startChurnd(t *testing.T, edits ...func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ShutdownGrace = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	cfg.StoreDir = t.TempDir()
	cfg.AdminTokens = []string{adminToken}
	for _, edit := range edits {
		edit(&cfg)
	}
	return apptest.Start(t, cfg).GRPCAddr().String()
}

// cli runs one churnctl command line (as main does, through run and the commands map) with the
// token given only by flag or by env.
type cli struct {
	t    *testing.T
	addr string
	env  map[string]string
	tty  bool // stderr is taken for a terminal: upload draws its progress bar
}

type result struct {
	code           int
	stdout, stderr string
}

func (c cli) run(args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return c.env[k] }
	ctx := context.Background()
	full := append([]string{"--addr", c.addr}, args[1:]...)
	var code int
	switch args[0] {
	case "upload":
		code = uploadMain(ctx, full, &stdout, &stderr, getenv, c.tty)
	case "models":
		// The subcommand comes first, then the flags.
		code = modelsMain(ctx, append([]string{args[1], "--addr", c.addr}, args[2:]...), &stdout, &stderr, getenv)
	default:
		c.t.Fatalf("unknown command %q", args[0])
	}
	return result{code, stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if strings.Contains(r.stdout+r.stderr, adminToken) {
		t.Errorf("output shows the token:\n%s\n%s", r.stdout, r.stderr)
	}
}

func (r result) modelInfo(t *testing.T) *churnv1.ModelInfo {
	t.Helper()
	info := &churnv1.ModelInfo{}
	if err := protojson.Unmarshal([]byte(r.stdout), info); err != nil {
		t.Fatalf("stdout is not a ModelInfo: %v\n%s", err, r.stdout)
	}
	return info
}

// TestModelLifecycleAgainstChurnd uploads, lists, inspects, activates and rolls back model
// versions on a real in-process churnd, through the same code paths as the command line.
func TestModelLifecycleAgainstChurnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	v2 := write("v2.json", modeltest.WithVersion(t, "cli-test-2", nil))
	v3 := write("v3.json", modeltest.WithVersion(t, "cli-test-3", nil))
	c := cli{t: t, addr: startChurnd(t), env: map[string]string{"CHURN_TOKEN": adminToken}}
	def := embeddedBundle(t)
	defaultVersion := def.Manifest.Version

	// Before any upload: the embedded default is the only version and is active.
	r := c.run("models", "list", "--json")
	r.want(t, 0, nil, nil)
	list := &churnv1.ListModelsResponse{}
	if err := protojson.Unmarshal([]byte(r.stdout), list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	if list.GetActiveVersion() != defaultVersion || len(list.GetModels()) != 1 {
		t.Fatalf("list before uploads: active %q, %d models; want %q and 1", list.GetActiveVersion(), len(list.GetModels()), defaultVersion)
	}

	c.run("upload", v2).want(t, 0, []string{"stored churn-default cli-test-2\n", "status", "READY", "inputs (13):"}, nil)
	// The same bytes again return the stored version; on a terminal with a progress bar, unless
	// --quiet.
	tty := c
	tty.tty = true
	tty.run("upload", v2).want(t, 0, []string{"stored churn-default cli-test-2\n"}, []string{"uploading", "100%"})
	if r := tty.run("upload", "--quiet", v2); r.code != 0 || r.stderr != "" {
		t.Errorf("upload --quiet: exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	// A bundle of several chunks (trailing white space is valid JSON) arrives whole.
	big := append(modeltest.WithVersion(t, "cli-test-big", nil), bytes.Repeat([]byte(" "), 5*uploadChunkBytes/2)...)
	r = tty.run("upload", write("big.json", big))
	r.want(t, 0, []string{"stored churn-default cli-test-big\n", humanBytes(int64(len(big)))}, []string{"100%"})

	r = c.run("upload", v3, "--activate", "--json") // flags after the file work too
	r.want(t, 0, nil, nil)
	if info := r.modelInfo(t); info.GetVersion() != "cli-test-3" || info.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_ACTIVE || info.GetOrigin() != "store" {
		t.Errorf("upload --activate --json = %v %v %q, want cli-test-3 ACTIVE store", info.GetVersion(), info.GetStatus(), info.GetOrigin())
	}

	r = c.run("models", "list")
	r.want(t, 0, []string{"VERSION", "ROC-AUC", "ORIGIN"}, nil)
	rows := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(strings.TrimPrefix(line, "*")); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	for version, want := range map[string][]string{
		defaultVersion: {"  " + defaultVersion, "READY", def.Model.Type, fmt.Sprintf("%.4f", def.Manifest.Training.Metrics.ROCAUC),
			fmt.Sprintf("%.4f", def.Manifest.Training.Metrics.Brier), "embedded"},
		// Stored, no longer loaded: the --model-on-demand 2 versions kept after it were uploaded
		// later.
		"cli-test-2": {"  cli-test-2", "STORED", "store"},
		"cli-test-3": {"* cli-test-3", "ACTIVE", "store"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[version], w) {
				t.Errorf("list row of %s = %q, want it to contain %q", version, rows[version], w)
			}
		}
	}

	c.run("models", "activate", "cli-test-2").want(t, 0, []string{"activated churn-default cli-test-2\n", "ACTIVE"}, nil)

	r = c.run("models", "get", "--json", "cli-test-2")
	r.want(t, 0, nil, nil)
	info := r.modelInfo(t)
	if info.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_ACTIVE || len(info.GetInputs()) != 13 ||
		info.GetEvaluation().GetRows() != 630 || info.GetTiers().GetHigh() <= 0 {
		t.Errorf("get --json cli-test-2: status %v, %d inputs, %d evaluated rows, tiers %v",
			info.GetStatus(), len(info.GetInputs()), info.GetEvaluation().GetRows(), info.GetTiers())
	}
	c.run("models", "get", defaultVersion).want(t, 0, []string{
		"origin        embedded", fmt.Sprintf("roc-auc       %.6f", def.Manifest.Training.Metrics.ROCAUC), "evaluated on  test: 630 rows, 99 positive",
		"categorical  impute   contract, pay_as_you_go\n",
		"live (last 30 days): no outcomes joined to this version's scores\n",
	}, nil)

	// Activations, most recent first: cli-test-2, cli-test-3, ...: rolling back returns to
	// cli-test-3, and rolling back again to cli-test-2.
	c.run("models", "rollback").want(t, 0, []string{"rolled back from cli-test-2 to cli-test-3\n"}, nil)
	r = c.run("models", "rollback", "--json")
	r.want(t, 0, nil, nil)
	if v := r.modelInfo(t).GetVersion(); v != "cli-test-2" {
		t.Errorf("second rollback activated %q, want cli-test-2", v)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"get unknown", []string{"models", "get", "nope-1"}, "churnctl models get: not found (NotFound): version: "},
		{"activate unknown", []string{"models", "activate", "nope-1"}, "churnctl models activate: not found (NotFound): version: "},
		{"corrupt check vector", []string{"upload", write("bad.json", modeltest.WithVersion(t, "cli-test-bad", func(m map[string]any) {
			m["check_vectors"].([]any)[2].(map[string]any)["probability"] = 0.5
		}))}, "churnctl upload: refused (InvalidArgument): "},
		{"other bytes under a stored version", []string{"upload", write("dup.json", modeltest.WithVersion(t, "cli-test-2", func(m map[string]any) {
			m["description"] = "same version, other bytes"
		}))}, "churnctl upload: conflict (AlreadyExists): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.run(tc.args...).want(t, 1, nil, []string{tc.stderr})
		})
	}
	// A refused upload changed nothing.
	r = c.run("models", "list", "--json")
	r.want(t, 0, nil, nil)
	if err := protojson.Unmarshal([]byte(r.stdout), list); err != nil {
		t.Fatal(err)
	}
	if list.GetActiveVersion() != "cli-test-2" || len(list.GetModels()) != 4 {
		t.Errorf("after refusals: active %q, %d models; want cli-test-2 and 4", list.GetActiveVersion(), len(list.GetModels()))
	}

	// Deleting: an old version goes; the rollback target (cli-test-3) and the active one stay.
	c.run("models", "delete", "cli-test-big").want(t, 0, []string{"deleted cli-test-big\n"}, nil)
	c.run("models", "delete", "cli-test-3").want(t, 1, nil, []string{"churnctl models delete: ", "(FailedPrecondition)", "rollback target"})
	c.run("models", "delete", "cli-test-2").want(t, 1, nil, []string{"(FailedPrecondition)", "active version"})
	c.run("models", "delete", "cli-test-big").want(t, 1, nil, []string{"(NotFound)"})
	r = c.run("models", "list", "--json")
	r.want(t, 0, nil, nil)
	if err := protojson.Unmarshal([]byte(r.stdout), list); err != nil {
		t.Fatal(err)
	}
	if len(list.GetModels()) != 3 || !list.GetReplica().GetInSync() || list.GetReplica().GetServedVersion() != "cli-test-2" {
		t.Errorf("after a deletion: %d models, replica %v; want 3, in sync, serving cli-test-2", len(list.GetModels()), list.GetReplica())
	}
}

// TestAdminCallsNeedTheToken checks the refusals without a known token, and that no output shows
// a token.
func TestAdminCallsNeedTheToken(t *testing.T) {
	t.Parallel()
	bundle := writeTemp(t, "v.json", modeltest.WithVersion(t, "cli-test-auth", nil))
	addr := startChurnd(t)
	noToken := cli{t: t, addr: addr}
	wrong := "wrong-token-but-long-enough-0123"
	for _, tc := range []struct {
		name   string
		c      cli
		args   []string
		stderr []string
	}{
		{"list without token", noToken, []string{"models", "list"}, []string{"not authenticated (Unauthenticated)", "no token given"}},
		{"upload without token", noToken, []string{"upload", bundle}, []string{"churnctl upload: not authenticated (Unauthenticated)"}},
		{"rollback without token", noToken, []string{"models", "rollback"}, []string{"Unauthenticated"}},
		{"wrong token by flag", noToken, []string{"models", "activate", "--token", wrong, "x"}, []string{"Unauthenticated"}},
		{"wrong token by env", cli{t: t, addr: addr, env: map[string]string{"CHURN_TOKEN": wrong}}, []string{"models", "list"}, []string{"Unauthenticated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.run(tc.args...)
			r.want(t, 1, nil, tc.stderr)
			if strings.Contains(r.stderr, wrong) {
				t.Errorf("stderr shows the token: %s", r.stderr)
			}
		})
	}
	// A token without the admin role is known but not allowed.
	scoringToken := "cli-test-scoring-token-0123456789"
	addr = startChurnd(t, func(c *config.Config) { c.ScoringTokens = []string{scoringToken} })
	r := cli{t: t, addr: addr, env: map[string]string{"CHURN_TOKEN": scoringToken}}.run("models", "list")
	r.want(t, 1, nil, []string{"churnctl models list: not allowed (PermissionDenied): "})
	if strings.Contains(r.stderr, scoringToken) {
		t.Errorf("stderr shows the token: %s", r.stderr)
	}
	// The flag beats the environment.
	withFlag := cli{t: t, addr: addr, env: map[string]string{"CHURN_TOKEN": wrong}}
	withFlag.run("models", "list", "--token", adminToken).want(t, 0, []string{"* " + embeddedBundle(t).Manifest.Version}, nil)
}

func TestRollbackWithNothingToRollBackTo(t *testing.T) {
	t.Parallel()
	c := cli{t: t, addr: startChurnd(t), env: map[string]string{"CHURN_TOKEN": adminToken}}
	c.run("models", "rollback").want(t, 1, nil, []string{"churnctl models rollback: nothing to roll back to: "})
}

func TestUnreachableChurnd(t *testing.T) {
	t.Parallel()
	c := cli{t: t, addr: "127.0.0.1:1", env: map[string]string{"CHURN_TOKEN": adminToken}}
	c.run("models", "list").want(t, 1, nil, []string{"churnctl models list: churnd unreachable (Unavailable): "})
}

// TestUploadOverTheServersLimit checks the server's own size limit, which can be below the 64 MiB
// that churnctl refuses to send.
func TestUploadOverTheServersLimit(t *testing.T) {
	t.Parallel()
	c := cli{t: t, addr: startChurnd(t, func(c *config.Config) { c.MaxUploadBytes = 4096 }), env: map[string]string{"CHURN_TOKEN": adminToken}}
	bundle := writeTemp(t, "v.json", modeltest.WithVersion(t, "cli-test-size", nil))
	c.run("upload", bundle).want(t, 1, nil, []string{"churnctl upload: too large (ResourceExhausted): metadata.size_bytes: "})
}

// embeddedBundle is the default bundle built into churnd.
func embeddedBundle(t *testing.T) *bundle.Bundle { return modeltest.Default(t) }

// ready lists versions with status READY.
func ready(versions ...string) []*churnv1.ModelInfo {
	out := make([]*churnv1.ModelInfo, len(versions))
	for i, v := range versions {
		out[i] = &churnv1.ModelInfo{Version: v, Status: churnv1.ModelStatus_MODEL_STATUS_READY}
	}
	return out
}
