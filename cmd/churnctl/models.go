package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return modelsMain(ctx, args, stdout, stderr, os.Getenv)
}

// modelsUsage lists the subcommands of churnctl models.
const modelsUsage = `usage: churnctl models <list|get VERSION|activate VERSION|rollback|delete VERSION> [--addr host:port] [--token T] [--json]

  list              every stored version (* marks the active one)
  get VERSION       one version: schema, tiers, evaluation, live quality (last 30 days of outcomes)
  activate VERSION  make a stored version the active one
  rollback          activate the most recent earlier active version
  delete VERSION    remove a stored version (not the active one, nor the rollback target)

The token is taken from --token or the env CHURN_TOKEN; it needs the admin role.`

// modelsMain is runModels with an injected environment.
func modelsMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, modelsUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	var want int // positional arguments the subcommand takes
	switch sub {
	case "list", "rollback":
	case "get", "activate", "delete":
		want = 1
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, modelsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "churnctl models: unknown subcommand %q\n\n%s\n", sub, modelsUsage)
		return 2
	}
	prefix := "churnctl models " + sub
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f adminFlags
	f.register(fs, 10*time.Second)
	fs.Usage = func() {
		arg := ""
		if want == 1 {
			arg = " VERSION"
		}
		fmt.Fprintf(stderr, "usage: %s%s [--addr host:port] [--token T] [--json]\n", prefix, arg)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != want {
		if want == 1 {
			fmt.Fprintf(stderr, "%s: want one VERSION, got %d arguments\n", prefix, len(pos))
		} else {
			fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", prefix, pos)
		}
		fs.Usage()
		return 2
	}
	if want == 1 && strings.TrimSpace(pos[0]) == "" {
		fmt.Fprintf(stderr, "%s: VERSION is empty\n", prefix)
		return 2
	}
	f.resolveToken(getenv)

	client, ctx, done, err := f.connect(ctx, stderr)
	if err != nil {
		return failf(stderr, "%s: %v", prefix, err)
	}
	defer done()

	var out proto.Message
	var print func()
	switch sub {
	case "list":
		resp, err := client.ListModels(ctx, &churnv1.ListModelsRequest{})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		out, print = resp, func() { printModelList(stdout, resp) }
	case "get":
		info, err := client.GetModel(ctx, &churnv1.GetModelRequest{Version: pos[0]})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		live := liveQuality(ctx, &f, pos[0])
		out, print = info, func() {
			printModel(stdout, info)
			fmt.Fprintln(stdout)
			fmt.Fprintln(stdout, live)
		}
	case "activate":
		info, err := client.ActivateModel(ctx, &churnv1.ActivateModelRequest{Version: pos[0]})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		out, print = info, func() {
			fmt.Fprintf(stdout, "activated %s %s\n\n", info.GetName(), info.GetVersion())
			printModel(stdout, info)
		}
	case "delete":
		resp, err := client.DeleteModel(ctx, &churnv1.DeleteModelRequest{Version: pos[0]})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		out, print = resp, func() { fmt.Fprintf(stdout, "deleted %s\n", resp.GetVersion()) }
	case "rollback":
		list, err := client.ListModels(ctx, &churnv1.ListModelsRequest{})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		target, err := rollbackTarget(list)
		if err != nil {
			return failf(stderr, "%s: %v", prefix, err)
		}
		info, err := client.ActivateModel(ctx, &churnv1.ActivateModelRequest{Version: target})
		if err != nil {
			return failf(stderr, "%s", rpcErrorLine(prefix, err, f.token))
		}
		from := list.GetActiveVersion()
		out, print = info, func() {
			fmt.Fprintf(stdout, "rolled back from %s to %s\n\n", from, info.GetVersion())
			printModel(stdout, info)
		}
	}
	if f.asJSON {
		return printJSON(stdout, stderr, prefix, out)
	}
	print()
	return 0
}

// errNothingToRollBack says the activation history names no version other than the active one.
var errNothingToRollBack = errors.New("nothing to roll back to")

// rollbackTarget is the most recent activation whose version differs from the active one.
func rollbackTarget(list *churnv1.ListModelsResponse) (string, error) {
	active := list.GetActiveVersion()
	servable := map[string]bool{}
	for _, m := range list.GetModels() {
		st := m.GetStatus()
		servable[m.GetVersion()] = st == churnv1.ModelStatus_MODEL_STATUS_READY || st == churnv1.ModelStatus_MODEL_STATUS_ACTIVE ||
			st == churnv1.ModelStatus_MODEL_STATUS_STORED
	}
	for _, a := range list.GetActivations() {
		// Skip versions this replica cannot serve (failed to load, or no longer stored).
		if v := a.GetVersion(); v != "" && v != active && servable[v] {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: the activation history names no version other than the active one %q; "+
		"activate one by name with 'churnctl models activate VERSION' (see 'churnctl models list')",
		errNothingToRollBack, active)
}

// printModelList prints one row per version, oldest first as the server lists them; "*" marks the
// active version. Failed versions' errors follow the table.
func printModelList(w io.Writer, r *churnv1.ListModelsResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tNAME\tSTATUS\tTYPE\tCREATED\tROC-AUC\tBRIER\tORIGIN")
	for _, m := range r.GetModels() {
		mark := " "
		if m.GetVersion() == r.GetActiveVersion() || m.GetStatus() == churnv1.ModelStatus_MODEL_STATUS_ACTIVE {
			mark = "*"
		}
		ev := m.GetEvaluation()
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, m.GetVersion(), m.GetName(),
			statusName(m.GetStatus()), orDash(m.GetModelType()), shortTime(m.GetCreatedAt().AsTime(), m.GetCreatedAt() != nil),
			metric(ev.GetRocAuc(), ev != nil), metric(ev.GetBrier(), ev != nil), orDash(m.GetOrigin()))
	}
	tw.Flush()
	for _, m := range r.GetModels() {
		if m.GetError() != "" {
			fmt.Fprintf(w, "%s: %s\n", m.GetVersion(), m.GetError())
		}
	}
	if len(r.GetModels()) == 0 {
		fmt.Fprintln(w, "(no models stored)")
	}
	if rs := r.GetReplica(); rs != nil && !rs.GetInSync() {
		fmt.Fprintf(w, "\nthis replica is out of step with the model store: %s\n", rs.GetMessage())
	}
	if rs := r.GetReplica(); rs.GetSyncError() != "" {
		fmt.Fprintf(w, "the last read of the model store failed: %s\n", rs.GetSyncError())
	}
}

// printModel prints one version: identity, schema, tiers and evaluation.
func printModel(w io.Writer, m *churnv1.ModelInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	kv("name", m.GetName())
	kv("version", m.GetVersion())
	kv("status", statusName(m.GetStatus()))
	kv("error", m.GetError())
	kv("origin", m.GetOrigin())
	kv("type", m.GetModelType())
	kv("format", m.GetFormat())
	kv("description", m.GetDescription())
	if m.GetCreatedAt() != nil {
		kv("created", m.GetCreatedAt().AsTime().UTC().Format(time.RFC3339))
	}
	if m.GetStoredAt() != nil {
		kv("stored", m.GetStoredAt().AsTime().UTC().Format(time.RFC3339))
	}
	kv("sha256", m.GetSha256())
	if m.GetSizeBytes() > 0 {
		kv("size", humanBytes(m.GetSizeBytes()))
	}
	if t := m.GetTiers(); t != nil {
		kv("tiers", fmt.Sprintf("MEDIUM >= %s, HIGH >= %s, CRITICAL >= %s", num(t.GetMedium()), num(t.GetHigh()), num(t.GetCritical())))
	}
	if e := m.GetEvaluation(); e != nil {
		kv("trainer", e.GetTrainer())
		kv("evaluated on", fmt.Sprintf("%s: %d rows, %d positive", orDash(e.GetSplit()), e.GetRows(), e.GetPositives()))
		kv("roc-auc", num(e.GetRocAuc()))
		kv("pr-auc", num(e.GetPrAuc()))
		kv("log loss", num(e.GetLogLoss()))
		kv("brier", num(e.GetBrier()))
	}
	tw.Flush()
	if len(m.GetInputs()) == 0 {
		return
	}
	fmt.Fprintf(w, "\ninputs (%d):\n", len(m.GetInputs()))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tTYPE\tMISSING\tCATEGORIES")
	for _, in := range m.GetInputs() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.GetName(), in.GetSource(), in.GetType(), orDash(in.GetMissing()),
			orDash(strings.Join(in.GetCategories(), ", ")))
	}
	tw.Flush()
}

// liveWindow is the trailing window of the live figures models get prints, in UTC days.
const liveWindow = 30

// liveQuality is the line models get prints about a version's live quality: the outcomes of the
// last liveWindow UTC days joined to its scores (OutcomeService.GetModelPerformance, on a
// connection of its own). A failure is reported in the line, never fails the command.
func liveQuality(ctx context.Context, f *adminFlags, version string) string {
	conn, err := f.dial()
	if err != nil {
		return fmt.Sprintf("live (last %d days): unavailable: %v", liveWindow, err)
	}
	defer conn.Close()
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	perf, err := churnv1.NewOutcomeServiceClient(conn).GetModelPerformance(ctx, &churnv1.GetModelPerformanceRequest{
		Version: version, From: timestamppb.New(today.AddDate(0, 0, 1-liveWindow)), To: timestamppb.New(today.AddDate(0, 0, 1)),
	})
	if err != nil {
		return fmt.Sprintf("live (last %d days): unavailable: %s", liveWindow, strings.TrimPrefix(rpcErrorLine("", err, f.token), ": "))
	}
	var b strings.Builder
	for _, r := range perf.GetRows() {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "live (last %d days, outcomes joined to %s's scores): %d customers, %d churned (%.1f%%), mean predicted %.4f, roc-auc %.4f (±%.4f), brier %.4f, lift@10%% %.2f",
			liveWindow, r.GetModel().GetName(), r.GetCustomers(), r.GetChurned(), 100*r.GetObservedChurnRate(), r.GetMeanPredicted(),
			r.GetRocAuc(), r.GetRocAucErrorBound(), r.GetBrier(), r.GetLiftTop_10())
	}
	if b.Len() == 0 {
		return fmt.Sprintf("live (last %d days): no outcomes joined to this version's scores", liveWindow)
	}
	return b.String()
}

func statusName(s churnv1.ModelStatus) string {
	return strings.TrimPrefix(s.String(), "MODEL_STATUS_")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortTime(t time.Time, ok bool) string {
	if !ok {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func metric(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// humanBytes renders a size in IEC units, e.g. "12.3 KiB (12595 bytes)".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
