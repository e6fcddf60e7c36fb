package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// dial opens a client connection to churnd. It does not wait for the server: the first call does.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// adminFlags are the flags every ModelService command takes.
type adminFlags struct {
	addr    string
	token   string
	asJSON  bool
	timeout time.Duration
}

// register adds the flags to fs. The token's default is left empty on purpose, so that usage never
// shows a token taken from the environment; resolveToken reads CHURN_TOKEN after parsing.
func (f *adminFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&f.addr, "addr", envOr("CHURN_ADDR", "127.0.0.1:50051"), "churnd gRPC address (env CHURN_ADDR)")
	fs.StringVar(&f.token, "token", "", "admin bearer token (default: env CHURN_TOKEN)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as protobuf JSON")
	fs.DurationVar(&f.timeout, "timeout", timeout, "call timeout")
}

// resolveToken falls back to the environment when --token was not given.
func (f *adminFlags) resolveToken(getenv func(string) string) {
	if f.token == "" {
		f.token = getenv("CHURN_TOKEN")
	}
}

// outgoing returns ctx carrying the bearer token, if any, as the authorization metadata.
func (f *adminFlags) outgoing(ctx context.Context) context.Context {
	if f.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.token)
}

// parseInterleaved parses flags that may come before or after the positional arguments
// ("models get V --json" as well as "models get --json V"); "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" if the argument before rest is one.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// rpcVerb is the first word of the message for a failed call, by status code.
var rpcVerb = map[codes.Code]string{
	codes.InvalidArgument:    "refused",
	codes.Unauthenticated:    "not authenticated",
	codes.PermissionDenied:   "not allowed",
	codes.NotFound:           "not found",
	codes.AlreadyExists:      "conflict",
	codes.ResourceExhausted:  "too large",
	codes.FailedPrecondition: "cannot be done",
	codes.Unavailable:        "churnd unreachable",
	codes.DeadlineExceeded:   "timed out",
	codes.Canceled:           "cancelled",
	codes.Unimplemented:      "not supported by this churnd",
}

// rpcErrorLine renders a failed call as one line, e.g.
// "churnctl upload: refused (InvalidArgument): bundle.check_vectors[2]: ...". BadRequest field
// violations that the message does not already name are appended. The token, when given, is
// masked should the server ever echo it.
func rpcErrorLine(prefix string, err error, token string) string {
	st, ok := status.FromError(err)
	if !ok {
		return redact(fmt.Sprintf("%s: %v", prefix, err), token)
	}
	verb := rpcVerb[st.Code()]
	if verb == "" {
		verb = "failed"
	}
	msg := st.Message()
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if v.GetField() != "" && strings.Contains(msg, v.GetField()) {
				continue
			}
			msg += "; " + v.GetField() + ": " + v.GetDescription()
		}
	}
	if st.Code() == codes.Unauthenticated && token == "" {
		msg += " (no token given: use --token or set CHURN_TOKEN)"
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	return redact(fmt.Sprintf("%s: %s (%s): %s", prefix, verb, st.Code(), msg), token)
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "<token>")
}

// flagExit is the exit code of a flag.Parse error: 0 for -h, 2 otherwise.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// failf prints a one-line failure and returns exit code 1.
func failf(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, format+"\n", args...)
	return 1
}
