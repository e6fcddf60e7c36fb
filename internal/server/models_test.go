package server_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/modelstore"
	"github.com/churnhq/churn/internal/registry"
	"github.com/churnhq/churn/internal/server"
	"github.com/churnhq/churn/models"
	"github.com/churnhq/churn/models/modeltest"
)

const (
	adminToken   = "admin-token-0123456789abcdef"
	scoringToken = "scoring-token-0123456789abcd"
)

type modelEnv struct {
	models  churnv1.ModelServiceClient
	scoring churnv1.ScoringServiceClient
	store   *modelstore.Store
}

// startModelServer runs both services behind the Auth interceptor on bufconn, with a disk model
// store in a temporary directory, as churnd does.
func startModelServer(t testing.TB, maxUpload int64, scoringTokens ...string) *modelEnv {
	t.Helper()
	def, err := model.LoadFS(models.FS, models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	store, err := modelstore.New([]*model.Model{def}, "")
	if err != nil {
		t.Fatal(err)
	}
	disk, err := registry.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(context.Background(), registry.Options{Backend: disk, Store: store, OnDemand: 2, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := server.NewModelService(server.ModelServiceOptions{Registry: app.ModelRegistry(reg), MaxUploadBytes: maxUpload})
	if err != nil {
		t.Fatal(err)
	}
	mem := cache.NewMemory(cache.MemoryOptions{TTL: time.Hour})
	ss, err := server.New(server.Options{Models: store, Loader: reg, Cache: mem, MaxBatch: 10})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := server.NewTokens([]string{adminToken}, scoringTokens)
	if err != nil {
		t.Fatal(err)
	}
	authU, authS := server.Auth(tokens)
	recU, recS := server.Recovery(slogDiscard())
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(recU, authU), grpc.ChainStreamInterceptor(recS, authS))
	churnv1.RegisterModelServiceServer(gs, ms)
	churnv1.RegisterScoringServiceServer(gs, ss)
	conn := serveBufconn(t, gs)
	return &modelEnv{models: churnv1.NewModelServiceClient(conn), scoring: churnv1.NewScoringServiceClient(conn), store: store}
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// upload streams md then data in chunks of 1 KiB, as a client would.
func upload(ctx context.Context, c churnv1.ModelServiceClient, md *churnv1.UploadMetadata, data []byte) (*churnv1.ModelInfo, error) {
	stream, err := c.UploadModel(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Metadata{Metadata: md}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for len(data) > 0 {
		n := min(1024, len(data))
		if err := stream.Send(&churnv1.UploadModelRequest{Part: &churnv1.UploadModelRequest_Chunk{Chunk: data[:n]}}); err != nil {
			if errors.Is(err, io.EOF) { // the server answered early; CloseAndRecv has its status
				break
			}
			return nil, err
		}
		data = data[n:]
	}
	return stream.CloseAndRecv()
}

func TestUploadActivateRollBack(t *testing.T) {
	t.Parallel()
	env := startModelServer(t, 0)
	ctx := withToken(context.Background(), adminToken)
	before := env.store.Active()
	data := modeltest.WithVersion(t, "retrained-2", nil)
	info, err := upload(ctx, env.models, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data), SizeBytes: int64(len(data)), Description: "weekly retrain"}, data)
	if err != nil {
		t.Fatalf("UploadModel: %v", err)
	}
	if info.GetVersion() != "retrained-2" || info.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_READY || info.GetSha256() != modeltest.SHA256(data) ||
		info.GetOrigin() != model.OriginStore || info.GetDescription() != "weekly retrain" || len(info.GetInputs()) == 0 || info.GetEvaluation().GetRocAuc() == 0 {
		t.Fatalf("UploadModel info = %v", info)
	}
	// The same bytes again are the stored version (a retried upload), not an error.
	if again, err := upload(ctx, env.models, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data)}, data); err != nil || again.GetVersion() != "retrained-2" {
		t.Fatalf("second upload = %v, %v", again, err)
	}
	if _, err := env.models.ActivateModel(ctx, &churnv1.ActivateModelRequest{Version: "retrained-2"}); err != nil {
		t.Fatalf("ActivateModel: %v", err)
	}
	resp, err := env.scoring.Score(context.Background(), basicRequest(t))
	if err != nil || resp.GetModel().GetVersion() != "retrained-2" {
		t.Fatalf("Score after activation names %q (%v), want retrained-2", resp.GetModel().GetVersion(), err)
	}
	// A cached score from the model now replaced is marked as such.
	if _, err := env.models.ActivateModel(ctx, &churnv1.ActivateModelRequest{Name: before.Name(), Version: before.Version()}); err != nil {
		t.Fatalf("roll back: %v", err)
	}
	cached, err := env.scoring.GetScore(context.Background(), &churnv1.GetScoreRequest{CustomerId: basicRequest(t).GetCustomerId()})
	if err != nil || !cached.GetFromCache() || !cached.GetModelSuperseded() {
		t.Fatalf("GetScore after roll back = from_cache %v, model_superseded %v (%v); want both", cached.GetFromCache(), cached.GetModelSuperseded(), err)
	}
	list, err := env.models.ListModels(ctx, &churnv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The history: the roll back, the activation, and the version serving before the first
	// activation (recorded then, so that the first roll back has somewhere to go).
	if list.GetActiveVersion() != before.Version() || len(list.GetModels()) != 2 || len(list.GetActivations()) != 3 ||
		list.GetActivations()[0].GetVersion() != before.Version() || list.GetActivations()[1].GetVersion() != "retrained-2" ||
		list.GetActivations()[2].GetVersion() != before.Version() {
		t.Fatalf("ListModels = %v", list)
	}
	got, err := env.models.GetModel(ctx, &churnv1.GetModelRequest{Version: "retrained-2"})
	if err != nil || got.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_READY || got.GetTiers().GetCritical() == 0 {
		t.Fatalf("GetModel = %v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"get unknown", func() error {
			_, err := env.models.GetModel(ctx, &churnv1.GetModelRequest{Version: "nope"})
			return err
		}, codes.NotFound},
		{"activate unknown", func() error {
			_, err := env.models.ActivateModel(ctx, &churnv1.ActivateModelRequest{Version: "nope"})
			return err
		}, codes.NotFound},
		{"activate with the wrong name", func() error {
			_, err := env.models.ActivateModel(ctx, &churnv1.ActivateModelRequest{Name: "other", Version: "retrained-2"})
			return err
		}, codes.NotFound},
		{"activate without version", func() error {
			_, err := env.models.ActivateModel(ctx, &churnv1.ActivateModelRequest{})
			return err
		}, codes.InvalidArgument},
	} {
		if err := tc.call(); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}

// DeleteModel is an admin call that removes an old version and refuses, with
// FAILED_PRECONDITION, the active version and the rollback target. A request naming a stored
// version this replica has not loaded loads it on demand.
func TestDeleteModelAndOnDemandScoring(t *testing.T) {
	t.Parallel()
	env := startModelServer(t, 0, scoringToken)
	admin := withToken(context.Background(), adminToken)
	scoring := withToken(context.Background(), scoringToken)
	before := env.store.Active()
	for _, v := range []string{"old-1", "old-2", "old-3", "new-4"} {
		data := modeltest.WithVersion(t, v, nil)
		if _, err := upload(admin, env.models, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data)}, data); err != nil {
			t.Fatalf("upload %s: %v", v, err)
		}
	}
	if _, err := env.models.ActivateModel(admin, &churnv1.ActivateModelRequest{Version: "new-4"}); err != nil {
		t.Fatal(err)
	}
	// old-1 was pushed out of memory by the later uploads (two stay loaded on demand).
	if info, err := env.models.GetModel(admin, &churnv1.GetModelRequest{Version: "old-1"}); err != nil ||
		info.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_STORED || info.GetName() != before.Name() || info.GetSha256() == "" {
		t.Fatalf("GetModel(old-1) = %v, %v; want it STORED with its name and sha256", info, err)
	}
	req := basicRequest(t)
	req.ModelVersion = "old-1"
	if resp, err := env.scoring.Score(scoring, req); err != nil || resp.GetModel().GetVersion() != "old-1" {
		t.Fatalf("Score naming the stored old-1 = %v, %v; want it loaded on demand", resp, err)
	}
	req.ModelVersion = "never-1"
	if _, err := env.scoring.Score(scoring, req); status.Code(err) != codes.NotFound {
		t.Fatalf("Score naming an unknown version = %v, want NotFound", err)
	}

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		version string
		code    codes.Code
		msg     string
	}{
		{"scoring token", scoring, "old-2", codes.PermissionDenied, ""},
		{"no version", admin, "", codes.InvalidArgument, "version"},
		{"active", admin, "new-4", codes.FailedPrecondition, "active version"},
		{"rollback target", admin, before.Version(), codes.FailedPrecondition, "rollback target"},
		{"never stored", admin, "never-1", codes.NotFound, "not in the model store"},
		{"old version", admin, "old-2", codes.OK, ""},
		{"deleted already", admin, "old-2", codes.NotFound, ""},
	} {
		resp, err := env.models.DeleteModel(tc.ctx, &churnv1.DeleteModelRequest{Version: tc.version})
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: DeleteModel(%q) = %v, want %s mentioning %q", tc.name, tc.version, err, tc.code, tc.msg)
		}
		if err == nil && resp.GetVersion() != tc.version {
			t.Errorf("%s: DeleteModel answered %q", tc.name, resp.GetVersion())
		}
	}
	list, err := env.models.ListModels(admin, &churnv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.GetModels() {
		if m.GetVersion() == "old-2" {
			t.Fatalf("old-2 still listed after its deletion: %v", m)
		}
	}
	if rs := list.GetReplica(); !rs.GetInSync() || rs.GetStoreActiveVersion() != "new-4" || rs.GetServedVersion() != "new-4" || rs.GetSyncedAt() == nil {
		t.Fatalf("ListModels replica = %v; want in sync, serving the store's new-4", rs)
	}
}

// Every bad upload is refused with its own code and names what is wrong; the active model and
// the stored versions stay as they were.
func TestBadUploadsChangeNothing(t *testing.T) {
	t.Parallel()
	good := modeltest.WithVersion(t, "candidate-1", nil)
	env := startModelServer(t, int64(len(good))+100)
	admin := withToken(context.Background(), adminToken)
	badChecks := modeltest.WithVersion(t, "candidate-1", modeltest.BreakCheckVector)
	big := append(append([]byte(nil), good...), make([]byte, 200)...)
	before := env.store.Active()

	tests := []struct {
		name  string
		ctx   context.Context
		md    *churnv1.UploadMetadata
		data  []byte
		code  codes.Code
		field string // the BadRequest field, for INVALID_ARGUMENT
	}{
		{"truncated", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good), SizeBytes: int64(len(good))}, good[:len(good)/2], codes.InvalidArgument, "metadata.size_bytes"},
		{"truncated without size", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good[:len(good)/2])}, good[:len(good)/2], codes.InvalidArgument, "bundle"},
		{"wrong sha256", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256([]byte("other"))}, good, codes.InvalidArgument, "metadata.sha256"},
		{"malformed sha256", admin, &churnv1.UploadMetadata{Sha256: "ABC"}, good, codes.InvalidArgument, "metadata.sha256"},
		{"over the size limit, announced", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(big), SizeBytes: int64(len(big))}, big, codes.ResourceExhausted, ""},
		{"over the size limit, streamed", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(big)}, big, codes.ResourceExhausted, ""},
		{"check vectors fail", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(badChecks)}, badChecks, codes.InvalidArgument, "bundle"},
		{"unknown format", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good), Format: "onnx"}, good, codes.InvalidArgument, "metadata.format"},
		{"version differs from the manifest", admin, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good), Version: "other-1"}, good, codes.InvalidArgument, "metadata"},
		{"no token", context.Background(), &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good)}, good, codes.Unauthenticated, ""},
		{"wrong token", withToken(context.Background(), "not-the-admin-token-at-all"), &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good)}, good, codes.Unauthenticated, ""},
		{"scoring token", withToken(context.Background(), scoringToken), &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good)}, good, codes.Unauthenticated, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := upload(tc.ctx, env.models, tc.md, tc.data)
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("UploadModel = %v, want %s", err, tc.code)
			}
			if tc.field != "" {
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							fields = append(fields, v.GetField())
						}
					}
				}
				if len(fields) != 1 || fields[0] != tc.field {
					t.Fatalf("BadRequest fields = %v, want [%s] (%v)", fields, tc.field, err)
				}
			}
			list, err := env.models.ListModels(admin, &churnv1.ListModelsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.GetModels()) != 1 || list.GetActiveVersion() != before.Version() {
				t.Fatalf("after a refused upload: %d models, active %q", len(list.GetModels()), list.GetActiveVersion())
			}
		})
	}
	// The refusals above left the service able to take the good bundle.
	if _, err := upload(admin, env.models, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(good)}, good); err != nil {
		t.Fatalf("good upload after the refusals: %v", err)
	}
}

func TestAuthRoles(t *testing.T) {
	t.Parallel()
	env := startModelServer(t, 0, scoringToken)
	req := basicRequest(t)
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		score, adm codes.Code
	}{
		{"no token", context.Background(), codes.Unauthenticated, codes.Unauthenticated},
		{"unknown token", withToken(context.Background(), "0123456789abcdef0123"), codes.Unauthenticated, codes.Unauthenticated},
		{"scoring token", withToken(context.Background(), scoringToken), codes.OK, codes.PermissionDenied},
		{"admin token", withToken(context.Background(), adminToken), codes.OK, codes.OK},
		{"basic scheme", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+adminToken), codes.Unauthenticated, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := env.scoring.Score(tc.ctx, req); status.Code(err) != tc.score {
				t.Errorf("Score: %v, want %s", err, tc.score)
			}
			if _, err := env.models.ListModels(tc.ctx, &churnv1.ListModelsRequest{}); status.Code(err) != tc.adm {
				t.Errorf("ListModels: %v, want %s", err, tc.adm)
			}
		})
	}
}

func TestModelServiceDisabledWithoutAdminTokens(t *testing.T) {
	t.Parallel()
	tokens, err := server.NewTokens(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	authU, _ := server.Auth(tokens)
	_, err = authU(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/churn.v1.ModelService/ListModels"},
		func(context.Context, any) (any, error) { return nil, nil })
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no admin token is configured") {
		t.Fatalf("ListModels without admin tokens = %v", err)
	}
	if _, err := authU(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/churn.v1.ScoringService/Score"},
		func(context.Context, any) (any, error) { return "ok", nil }); err != nil {
		t.Fatalf("Score without scoring tokens must stay open: %v", err)
	}
	if _, err := server.NewTokens([]string{"short"}, nil); err == nil {
		t.Fatal("a 5-byte admin token was accepted")
	}
	if _, err := server.NewTokens([]string{adminToken}, []string{adminToken}); err == nil || !strings.Contains(err.Error(), "one role") {
		t.Fatalf("a token listed as admin and scoring = %v, want an error", err)
	}
}

// Scores keep succeeding while the active model flips between two versions, and every response
// names one of them: the swap is atomic.
func TestActivationUnderLoadFailsNoCall(t *testing.T) {
	t.Parallel()
	env := startModelServer(t, 0)
	admin := withToken(context.Background(), adminToken)
	data := modeltest.WithVersion(t, "flip-b", nil)
	if _, err := upload(admin, env.models, &churnv1.UploadMetadata{Sha256: modeltest.SHA256(data)}, data); err != nil {
		t.Fatal(err)
	}
	first := env.store.Active()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var calls, failures atomic.Int64
	var seen sync.Map
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := basicRequest(t)
			for ctx.Err() == nil {
				resp, err := env.scoring.Score(context.Background(), req)
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				seen.Store(resp.GetModel().GetVersion(), true)
			}
		}()
	}
	for i := range 20 {
		v := "flip-b"
		if i%2 == 1 {
			v = first.Version()
		}
		if _, err := env.models.ActivateModel(admin, &churnv1.ActivateModelRequest{Version: v}); err != nil {
			t.Fatal(err)
		}
		// Let the callers score with this version before the next flip.
		for c0, deadline := calls.Load(), time.Now().Add(5*time.Second); calls.Load() < c0+8 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
	}
	cancel()
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d calls failed during activations", failures.Load(), calls.Load())
	}
	versions := 0
	seen.Range(func(k, _ any) bool {
		versions++
		if k != "flip-b" && k != first.Version() {
			t.Errorf("a response named version %v", k)
		}
		return true
	})
	if calls.Load() == 0 || versions != 2 {
		t.Fatalf("%d calls answered by %d versions during the flips; want calls from both versions", calls.Load(), versions)
	}
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	admin, scoring, err := server.ParseTokens(strings.NewReader("# tokens\n\nadmin " + adminToken + "\n  scoring " + scoringToken + "  \n"))
	if err != nil || len(admin) != 1 || admin[0] != adminToken || len(scoring) != 1 || scoring[0] != scoringToken {
		t.Fatalf("ParseTokens = %v, %v, %v", admin, scoring, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"admin\n", "line 1"},
		{"# c\nroot " + adminToken + "\n", `line 2: unknown role "root"`},
		{"admin short\n", "line 1: the admin token is 5 bytes long"},
		{"admin a b\n", "line 1: want"},
		// A token under two roles, or twice under one, parses no more than NewTokens takes it.
		{"admin " + adminToken + "\n\nscoring " + adminToken + "\n", "line 3: the token of line 1 is listed again"},
		{"scoring " + scoringToken + "\nscoring " + scoringToken + "\n", "line 2: the token of line 1 is listed again"},
	} {
		if _, _, err := server.ParseTokens(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTokens(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add("admin " + adminToken + "\nscoring " + scoringToken + "\n")
	f.Add("# only a comment\n")
	f.Add("admin\tx\n")
	f.Fuzz(func(t *testing.T, in string) {
		admin, scoring, err := server.ParseTokens(strings.NewReader(in))
		if err != nil {
			return
		}
		if _, err := server.NewTokens(admin, scoring); err != nil {
			t.Fatalf("ParseTokens accepted %q but NewTokens refuses its tokens: %v", in, err)
		}
	})
}
