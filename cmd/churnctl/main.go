// Command churnctl is the command-line tool of churn: it trains model bundles and calls a running
// churnd. Each subcommand lives in its own file and has the signature of command.run.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/churnhq/churn/internal/buildinfo"
)

// command is one subcommand. run gets the arguments after the subcommand's name and returns the
// process exit code: 0 on success, 1 on failure, 2 on bad usage.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"train":  {"train a model bundle from a CSV and a dataset spec", runTrain},
	"score":  {"score a customer with a running churnd", runScore},
	"upload": {"upload a model bundle to churnd (admin), optionally activating it", runUpload},
	"models": {"list, inspect, activate or roll back model versions (admin)", runModels},

	"evaluate": {"evaluate a model bundle on a CSV: metrics, lift, tiers, segments as text, JSON or HTML", runEvaluate},
	"replay":   {"score a labelled CSV through churnd and record its labels as outcomes: live figures to check against evaluate", runReplay},
	"import":   {"import an XGBoost, LightGBM or scikit-learn model into a bundle, verified against its own predictions", runImport},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, buildinfo.Read().String("churnctl"))
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "churnctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: churnctl <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'churnctl <command> -h' for the flags of a command, 'churnctl --version' for the version.")
}
