package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Exit codes of the top level and of -h on each subcommand: help is no failure.
func TestHelpAndVersionExitZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"--version"}, {"version"}, {"score", "--help"}, {"score", "-h"}, {"upload", "-h"}, {"models", "list", "-h"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("churnctl %s: exit %d, want 0\n%s", strings.Join(args, " "), code, stderr.String())
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"--version"}, &stdout, &bytes.Buffer{})
	if !strings.HasPrefix(stdout.String(), "churnctl ") {
		t.Errorf("--version printed %q", stdout.String())
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"score", "stray"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "unexpected arguments") {
		t.Errorf("score with a stray argument: exit %d, %q; want 2 naming it", code, stderr.String())
	}
}

// Every --json output is one style: protojson with jsonOptions, indented by encoding/json, so
// the same message prints the same bytes whichever subcommand prints it.
func TestPrintJSONIsOneStableStyle(t *testing.T) {
	t.Parallel()
	for _, m := range []proto.Message{
		&churnv1.ScoreResponse{CustomerId: "c1", Probability: 0.25, Tier: churnv1.RiskTier_RISK_TIER_MEDIUM, ScoredAt: timestamppb.New(time.Unix(1700000000, 0))},
		&churnv1.ListModelsResponse{ActiveVersion: "v1", Models: []*churnv1.ModelInfo{{Version: "v1", SizeBytes: 12}}},
	} {
		var out bytes.Buffer
		if code := printJSON(&out, &bytes.Buffer{}, "test", m); code != 0 {
			t.Fatalf("printJSON: exit %d", code)
		}
		var canon bytes.Buffer
		if err := json.Indent(&canon, bytes.TrimSpace(out.Bytes()), "", "  "); err != nil {
			t.Fatal(err)
		}
		if canon.String()+"\n" != out.String() {
			t.Errorf("output is not two-space indented JSON:\n%s", out.String())
		}
		back := m.ProtoReflect().New().Interface()
		if err := protojson.Unmarshal(out.Bytes(), back); err != nil || !proto.Equal(back, m) {
			t.Errorf("output does not read back (%v):\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), `"fromCache": false`) && m.ProtoReflect().Descriptor().Name() == "ScoreResponse" {
			t.Errorf("zero values are not written out:\n%s", out.String())
		}
	}
}
