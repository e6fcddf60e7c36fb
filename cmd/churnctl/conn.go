package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// connFlags say how to reach churnd: its address and whether to speak TLS.
type connFlags struct {
	addr   string
	tls    bool
	caFile string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envOr("CHURN_ADDR", "127.0.0.1:50051"), "churnd gRPC address (env CHURN_ADDR)")
	fs.BoolVar(&c.tls, "tls", envOr("CHURN_TLS", "") == "true", "speak TLS to churnd, verified against the system roots or --tls-ca-file (env CHURN_TLS=true)")
	fs.StringVar(&c.caFile, "tls-ca-file", envOr("CHURN_TLS_CA_FILE", ""), "PEM CA certificate(s) that sign churnd's certificate; implies --tls (env CHURN_TLS_CA_FILE)")
}

// dial opens a client connection to churnd. It does not wait for the server: the first call does.
func (c *connFlags) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	switch {
	case c.caFile != "":
		tc, err := credentials.NewClientTLSFromFile(c.caFile, "")
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: %w", err)
		}
		creds = tc
	case c.tls:
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
}

// plaintextTokenWarning warns, on stderr, when a bearer token is about to cross the network in
// clear text: over plaintext gRPC to an address that is not loopback.
func (c *connFlags) plaintextTokenWarning(token string, stderr io.Writer) {
	if token == "" || c.tls || c.caFile != "" {
		return
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		host = c.addr
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return
	}
	fmt.Fprintf(stderr, "churnctl: warning: sending the bearer token to %s without TLS; use --tls unless a TLS tunnel carries the connection\n", c.addr)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// adminFlags are the flags every ModelService command takes.
type adminFlags struct {
	connFlags
	token   string
	asJSON  bool
	timeout time.Duration
}

// register adds the flags to fs. The token's default is left empty on purpose, so that usage never
// shows a token taken from the environment; resolveToken reads CHURN_TOKEN after parsing.
func (f *adminFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	f.connFlags.register(fs)
	fs.StringVar(&f.token, "token", "", "admin bearer token (default: env CHURN_TOKEN)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as protobuf JSON")
	fs.DurationVar(&f.timeout, "timeout", timeout, "call timeout")
}

// connect warns when the token would cross the network in clear text, dials churnd, and returns
// a ModelService client with a context that carries the token and the call timeout; done closes
// the connection and ends the context.
func (f *adminFlags) connect(ctx context.Context, stderr io.Writer) (_ churnv1.ModelServiceClient, _ context.Context, done func(), _ error) {
	f.plaintextTokenWarning(f.token, stderr)
	conn, err := f.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(f.outgoing(ctx), f.timeout)
	return churnv1.NewModelServiceClient(conn), ctx, func() { cancel(); conn.Close() }, nil
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
