package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/app"
	"github.com/churnhq/churn/internal/app/apptest"
	"github.com/churnhq/churn/internal/config"
	"github.com/churnhq/churn/models/modeltest"
)

const httpAdminToken = "http-test-admin-token-0123456789"

// httpAPI is a real net/http client of an app's HTTP/JSON API.
type httpAPI struct {
	t     *testing.T
	base  string
	token string
}

func newHTTPAPI(t *testing.T, a *app.App) *httpAPI {
	return &httpAPI{t: t, base: "http://" + a.HTTPAddr().String()}
}

// call sends body (nil for none) and returns the status code and the body.
func (c *httpAPI) call(method, path string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// ok calls and decodes a 200 answer into m.
func (c *httpAPI) ok(method, path, body string, m proto.Message) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	code, out := c.call(method, path, r)
	if code != http.StatusOK {
		c.t.Fatalf("%s %s: HTTP %d %s, want 200", method, path, code, out)
	}
	if err := protojson.Unmarshal(out, m); err != nil {
		c.t.Fatalf("%s %s: %v in %s", method, path, err, out)
	}
}

// failure calls, wants the HTTP code, and decodes the google.rpc.Status of the body.
func (c *httpAPI) failure(method, path string, body io.Reader, wantHTTP int, wantCode codes.Code) *spb.Status {
	c.t.Helper()
	code, out := c.call(method, path, body)
	st := &spb.Status{}
	if err := protojson.Unmarshal(out, st); err != nil {
		c.t.Fatalf("%s %s: the body is no google.rpc.Status: %v in %s", method, path, err, out)
	}
	if code != wantHTTP || codes.Code(st.GetCode()) != wantCode {
		c.t.Fatalf("%s %s: HTTP %d, code %v (%s), want HTTP %d, %v", method, path, code, codes.Code(st.GetCode()), out, wantHTTP, wantCode)
	}
	return st
}

func httpConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.StoreDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	return cfg
}

// The README's requests, over HTTP: a score, the cached score by GET, the watchlist, through the
// same handlers, counted in the same gRPC metrics.
func TestHTTPScoreAndCachedScore(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := apptest.StartWithRegistry(t, httpConfig(t), reg)
	api := newHTTPAPI(t, a)
	body, err := os.ReadFile("../../testdata/requests/complaints.json")
	if err != nil {
		t.Fatal(err)
	}
	scored := &churnv1.ScoreResponse{}
	api.ok("POST", "/v1/score", string(body), scored)
	if scored.GetCustomerId() == "" || scored.GetModel().GetVersion() == "" || scored.GetTier() == churnv1.RiskTier_RISK_TIER_UNSPECIFIED || scored.GetFromCache() {
		t.Fatalf("POST /v1/score = %v", scored)
	}

	cached := &churnv1.ScoreResponse{}
	api.ok("GET", "/v1/scores/"+url.PathEscape(scored.GetCustomerId()), "", cached)
	if !cached.GetFromCache() || cached.GetProbability() != scored.GetProbability() {
		t.Errorf("GET /v1/scores/%s = %v, want the cached score of %v", scored.GetCustomerId(), cached, scored.GetProbability())
	}
	post := &churnv1.ScoreResponse{}
	api.ok("POST", "/v1/scores:get", fmt.Sprintf(`{"customerId": %q}`, scored.GetCustomerId()), post)
	if !proto.Equal(post, cached) {
		t.Errorf("POST /v1/scores:get = %v, want %v", post, cached)
	}

	list := &churnv1.ListAtRiskResponse{}
	api.ok("GET", "/v1/at-risk?minTier=RISK_TIER_LOW&limit=10", "", list)
	if len(list.GetCustomers()) != 1 || list.GetCustomers()[0].GetCustomerId() != scored.GetCustomerId() {
		t.Errorf("GET /v1/at-risk = %v, want the one customer scored", list)
	}

	for method, want := range map[string]float64{"Score": 1, "GetScore": 2, "ListAtRisk": 1} {
		got := counterValue(t, reg, "churn_grpc_server_handled_total", map[string]string{
			"grpc_service": "churn.v1.ScoringService", "grpc_method": method, "grpc_code": "OK", "grpc_type": "unary"})
		if got != want {
			t.Errorf("churn_grpc_server_handled_total{grpc_method=%q,grpc_code=\"OK\"} = %v, want %v", method, got, want)
		}
	}
}

// A customer id with '/' and spaces, escaped in the path, reaches GetScore whole.
func TestHTTPGetScoreEscapedID(t *testing.T) {
	t.Parallel()
	api := newHTTPAPI(t, apptest.Start(t, httpConfig(t)))
	const id = "team a/cust 7"
	api.failure("GET", "/v1/scores/"+url.PathEscape(id), nil, http.StatusNotFound, codes.NotFound)
	api.ok("POST", "/v1/score", fmt.Sprintf(`{"customerId": %q}`, id), &churnv1.ScoreResponse{})
	got := &churnv1.ScoreResponse{}
	api.ok("GET", "/v1/scores/"+url.PathEscape(id), "", got)
	if got.GetCustomerId() != id {
		t.Errorf("GET by the escaped id returned customer %q, want %q", got.GetCustomerId(), id)
	}
}

// Bad input over HTTP is the same INVALID_ARGUMENT as over gRPC, as HTTP 400 with the
// google.rpc.Status JSON and its BadRequest naming the field; malformed JSON and unknown fields
// are refused too, not scored as missing.
func TestHTTPErrorsAreStatusJSON(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	api := newHTTPAPI(t, apptest.StartWithRegistry(t, httpConfig(t), reg))

	st := api.failure("POST", "/v1/score", strings.NewReader(`{"customerId": "c1", "features": {"complaints": {"count30d": -1}}}`), http.StatusBadRequest, codes.InvalidArgument)
	if len(st.GetDetails()) != 1 {
		t.Fatalf("details %v, want one BadRequest", st.GetDetails())
	}
	br := &errdetails.BadRequest{}
	if err := st.GetDetails()[0].UnmarshalTo(br); err != nil {
		t.Fatalf("detail %v: %v", st.GetDetails()[0], err)
	}
	if v := br.GetFieldViolations(); len(v) != 1 || v[0].GetField() != "features.complaints.count_30d" {
		t.Errorf("field violations %v, want features.complaints.count_30d", v)
	}

	for _, body := range []string{`{"customerId": "c1", "featurez": {}}`, `{"customerId": `, `[1]`} {
		st := api.failure("POST", "/v1/score", strings.NewReader(body), http.StatusBadRequest, codes.InvalidArgument)
		if st.GetMessage() == "" {
			t.Errorf("%s: empty message", body)
		}
	}
	api.failure("POST", "/v1/score", strings.NewReader(`{"customerId": "c1", "modelVersion": "no-such-version"}`), http.StatusNotFound, codes.NotFound)
	api.failure("GET", "/v1/no-such-route", nil, http.StatusNotFound, codes.NotFound)

	// Refused before any gRPC call, yet counted.
	for _, c := range []struct {
		method, code string
		want         float64
	}{{"post", "400", 4}, {"post", "404", 1}, {"get", "404", 1}} {
		if got := counterValue(t, reg, "churn_http_api_requests_total", map[string]string{"method": c.method, "code": c.code}); got != c.want {
			t.Errorf("churn_http_api_requests_total{method=%q,code=%q} = %v, want %v", c.method, c.code, got, c.want)
		}
	}
}

// Bodies over their limit are refused before they are decoded: 413 with RESOURCE_EXHAUSTED,
// whether the client said its length or not.
func TestHTTPBodyLimit(t *testing.T) {
	t.Parallel()
	cfg := httpConfig(t)
	cfg.MaxRecvBytes = 1024 // bodies up to 2 KiB but uploads
	api := newHTTPAPI(t, apptest.Start(t, cfg))
	big := fmt.Sprintf(`{"customerId": "c1", "modelVersion": %q}`, strings.Repeat("v", 4096))
	api.failure("POST", "/v1/score", strings.NewReader(big), http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
	// No Content-Length: the reader is cut while it is decoded.
	api.failure("POST", "/v1/score", io.MultiReader(strings.NewReader(big)), http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
}

// An upload's body is bounded by --max-upload-bytes in base64 (plus room for the JSON around
// it), also while it streams to the server: over it, 413 and nothing stored.
func TestHTTPUploadBodyLimit(t *testing.T) {
	t.Parallel()
	cfg := httpConfig(t)
	cfg.MaxUploadBytes, cfg.AdminTokens = 1024, []string{httpAdminToken}
	api := newHTTPAPI(t, apptest.Start(t, cfg))
	api.token = httpAdminToken
	huge := fmt.Sprintf("{\"metadata\": {\"sha256\": %q}}\n{\"chunk\": %q}\n", strings.Repeat("0", 64), strings.Repeat("A", 2<<20))
	api.failure("POST", "/v1/models:upload", io.MultiReader(strings.NewReader(huge)), http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
	// Within the body limit but over --max-upload-bytes once decoded: the gRPC service refuses it.
	bundle := modeltest.WithVersion(t, "http-too-big", nil)
	upload := fmt.Sprintf("{\"metadata\": {\"sha256\": %q}}\n{\"chunk\": %q}\n", modeltest.SHA256(bundle), base64.StdEncoding.EncodeToString(bundle))
	api.failure("POST", "/v1/models:upload", strings.NewReader(upload), http.StatusTooManyRequests, codes.ResourceExhausted)
	list := &churnv1.ListModelsResponse{}
	api.ok("GET", "/v1/models", "", list)
	for _, m := range list.GetModels() {
		if m.GetVersion() == "http-too-big" {
			t.Errorf("a refused upload was stored: %v", m)
		}
	}
}

// ModelService over HTTP: the bearer token of the Authorization header is the one the gRPC auth
// interceptor checks; an upload is one body of JSON messages (metadata, then the bundle's bytes
// in base64); activation and listing follow.
func TestHTTPModelServiceAuthAndUpload(t *testing.T) {
	t.Parallel()
	cfg := httpConfig(t)
	cfg.AdminTokens = []string{httpAdminToken}
	reg := prometheus.NewRegistry()
	api := newHTTPAPI(t, apptest.StartWithRegistry(t, cfg, reg))

	api.failure("GET", "/v1/models", nil, http.StatusUnauthorized, codes.Unauthenticated)
	api.token = "not-the-admin-token-0123456789"
	api.failure("GET", "/v1/models", nil, http.StatusUnauthorized, codes.Unauthenticated)
	api.token = httpAdminToken

	bundle := modeltest.WithVersion(t, "http-upload-1", nil)
	upload := fmt.Sprintf("{\"metadata\": {\"sha256\": %q}}\n{\"chunk\": %q}\n", modeltest.SHA256(bundle), base64.StdEncoding.EncodeToString(bundle))
	info := &churnv1.ModelInfo{}
	api.ok("POST", "/v1/models:upload", upload, info)
	if info.GetVersion() != "http-upload-1" {
		t.Fatalf("upload answered %v", info)
	}
	// A corrupt upload is refused with the same status as over gRPC.
	bad := fmt.Sprintf("{\"metadata\": {\"sha256\": %q}}\n{\"chunk\": %q}\n", strings.Repeat("0", 64), base64.StdEncoding.EncodeToString(bundle))
	api.failure("POST", "/v1/models:upload", strings.NewReader(bad), http.StatusBadRequest, codes.InvalidArgument)

	api.ok("POST", "/v1/models:activate", `{"version": "http-upload-1"}`, info)
	if info.GetStatus() != churnv1.ModelStatus_MODEL_STATUS_ACTIVE {
		t.Errorf("activate answered %v", info)
	}
	list := &churnv1.ListModelsResponse{}
	api.ok("GET", "/v1/models", "", list)
	if list.GetActiveVersion() != "http-upload-1" {
		t.Errorf("GET /v1/models: active %q, want http-upload-1", list.GetActiveVersion())
	}
	api.ok("GET", "/v1/models/http-upload-1", "", info)
	api.failure("DELETE", "/v1/models/http-upload-1", nil, http.StatusBadRequest, codes.FailedPrecondition)

	got := counterValue(t, reg, "churn_grpc_server_handled_total", map[string]string{
		"grpc_service": "churn.v1.ModelService", "grpc_method": "ListModels", "grpc_code": "Unauthenticated", "grpc_type": "unary"})
	if got != 2 {
		t.Errorf("refused ListModels counted %v times, want 2", got)
	}
}

// ScoreStream over HTTP: newline-delimited requests in, one result per line out, in order; a
// bad item gets its error and the stream goes on.
func TestHTTPScoreStream(t *testing.T) {
	t.Parallel()
	api := newHTTPAPI(t, apptest.Start(t, httpConfig(t)))
	body := `{"customerId": "s1"}` + "\n" + `{"customerId": ""}` + "\n" + `{"customerId": "s3"}` + "\n"
	code, out := api.call("POST", "/v1/score:stream", strings.NewReader(body))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, out)
	}
	var ids []string
	var errCodes []int32
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var line struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %s: %v", sc.Text(), err)
		}
		r := &churnv1.ScoreResponse{}
		if err := protojson.Unmarshal(line.Result, r); err != nil {
			t.Fatalf("line %s: %v", sc.Text(), err)
		}
		ids = append(ids, r.GetCustomerId())
		errCodes = append(errCodes, r.GetError().GetCode())
	}
	if fmt.Sprint(ids) != "[s1  s3]" || fmt.Sprint(errCodes) != fmt.Sprint([]int32{0, int32(codes.InvalidArgument), 0}) {
		t.Errorf("stream answered ids %q, error codes %v", ids, errCodes)
	}
}

// counterValue is the value of the counter with exactly these labels in reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// An HTTP call is traced like a gRPC one: its W3C traceparent header becomes the span's parent,
// and the span carries the model version.
func TestHTTPCallContinuesTheCallersTrace(t *testing.T) {
	t.Parallel()
	coll, endpoint := startCollector(t, "grpc")
	cfg := httpConfig(t)
	cfg.OTLPEndpoint, cfg.OTLPProtocol = endpoint, "grpc"
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, err := http.NewRequest("POST", "http://"+a.HTTPAddr().String()+"/v1/score", strings.NewReader(`{"customerId": "traced-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/score: %s", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	coll.mu.Lock()
	defer coll.mu.Unlock()
	for _, s := range coll.spans {
		if s.GetName() == "churn.v1.ScoringService/Score" && hex.EncodeToString(s.GetTraceId()) == traceID {
			for _, kv := range s.GetAttributes() {
				if kv.GetKey() == "churn.model.version" && kv.GetValue().GetStringValue() != "" {
					return
				}
			}
			t.Fatalf("the HTTP call's span has no model version: %v", s)
		}
	}
	t.Fatalf("no Score span in the HTTP caller's trace among %d spans", len(coll.spans))
}

// OutcomeService over HTTP: an outcome recorded for a scored customer joins its score, a retried
// batch counts once, a bad outcome is refused in its own result naming the field, and the live
// figures read back by POST /v1/outcomes:performance count the churner.
func TestHTTPOutcomes(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t, httpConfig(t))
	api := newHTTPAPI(t, a)
	body, err := os.ReadFile("../../testdata/requests/complaints.json")
	if err != nil {
		t.Fatal(err)
	}
	scored := &churnv1.ScoreResponse{}
	api.ok("POST", "/v1/score", string(body), scored)

	when := time.Now().UTC().Format(time.RFC3339Nano) // after the score: an outcome joins the last score before it
	batch := fmt.Sprintf(`{"outcomes": [
		{"customerId": %q, "type": "OUTCOME_TYPE_CHURNED", "occurredAt": %q, "idempotencyKey": "http-1"},
		{"customerId": "", "type": "OUTCOME_TYPE_CHURNED", "occurredAt": %q}]}`, scored.GetCustomerId(), when, when)
	first := &churnv1.RecordOutcomesResponse{}
	api.ok("POST", "/v1/outcomes", batch, first)
	if len(first.GetResults()) != 2 || first.GetResults()[0].GetError() != nil || first.GetResults()[0].GetDuplicate() ||
		first.GetResults()[0].GetScoredBy().GetVersion() != scored.GetModel().GetVersion() {
		t.Fatalf("POST /v1/outcomes = %v, want the first recorded and joined to %v", first, scored.GetModel())
	}
	if e := first.GetResults()[1].GetError(); codes.Code(e.GetCode()) != codes.InvalidArgument || len(e.GetFieldViolations()) == 0 ||
		e.GetFieldViolations()[0].GetField() != "outcomes[1].customer_id" {
		t.Errorf("the outcome without a customer id: %v, want INVALID_ARGUMENT naming outcomes[1].customer_id", e)
	}
	again := &churnv1.RecordOutcomesResponse{}
	api.ok("POST", "/v1/outcomes", batch, again)
	if !again.GetResults()[0].GetDuplicate() {
		t.Errorf("the retried outcome: %v, want duplicate", again.GetResults()[0])
	}

	perf := &churnv1.ModelPerformance{}
	api.ok("POST", "/v1/outcomes:performance", fmt.Sprintf(`{"from": %q, "to": %q, "period": "PERIOD_DAY"}`,
		time.Now().UTC().Add(-48*time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)), perf)
	var churned int64
	for _, row := range perf.GetRows() {
		churned += row.GetChurned()
	}
	if churned != 1 {
		t.Errorf("POST /v1/outcomes:performance = %v, want 1 churner over the rows", perf)
	}
}

// A streamed body that goes over its limit, or holds a malformed message, ends the stream with an
// error line (RESOURCE_EXHAUSTED, INVALID_ARGUMENT) after the results before it, rather than
// looking like a good body that ended there.
func TestHTTPScoreStreamBadBody(t *testing.T) {
	t.Parallel()
	cfg := httpConfig(t)
	cfg.MaxRecvBytes = 1024 // the gateway's body limit is twice that
	reg := prometheus.NewRegistry()
	api := newHTTPAPI(t, apptest.StartWithRegistry(t, cfg, reg))
	for _, tc := range []struct {
		name string
		body io.Reader
		want codes.Code
	}{
		// No Content-Length (a reader of unknown size): chunked, so the limit is met while reading.
		{"over the limit", io.MultiReader(strings.NewReader(strings.Repeat(`{"customerId": "s"}`+"\n", 200))), codes.ResourceExhausted},
		{"malformed", strings.NewReader(`{"customerId": "a"}` + "\n" + `{bad json` + "\n" + `{"customerId": "b"}` + "\n"), codes.InvalidArgument},
	} {
		resp, err := http.Post(api.base+"/v1/score:stream", "application/json", tc.body)
		if err != nil && tc.want == codes.ResourceExhausted {
			// The server closes the connection of a body over its limit (net/http's rule), and a
			// client still sending may see that before the answer: an error, not a success.
			t.Logf("%s: %v", tc.name, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil && tc.want != codes.ResourceExhausted {
			t.Fatalf("%s: reading the answer: %v", tc.name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var last struct {
			Error *struct {
				Code int32 `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Error == nil || codes.Code(last.Error.Code) != tc.want {
			t.Errorf("%s: the stream's last line is %s (%v), want an error with code %v", tc.name, lines[len(lines)-1], err, tc.want)
		}
	}
	// A body refused on its Content-Length alone is counted too.
	api.failure("POST", "/v1/score", strings.NewReader(strings.Repeat(" ", 4096)), http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
	if got := counterValue(t, reg, "churn_http_api_requests_total", map[string]string{"method": "post", "code": "413"}); got != 1 {
		t.Errorf("churn_http_api_requests_total{code=413} = %v, want 1", got)
	}
}
