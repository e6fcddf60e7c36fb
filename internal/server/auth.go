package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"strings"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Roles a bearer token can have.
const (
	RoleAdmin   = "admin"   // ModelService, and scoring
	RoleScoring = "scoring" // ScoringService only
)

// MinTokenLen is the shortest token accepted: 16 bytes of a random token are 128 bits or less of
// entropy depending on its alphabet; anything shorter is a password, not a token.
const MinTokenLen = 16

// Tokens are the bearer tokens churnd accepts, each with its role. Tokens are kept as SHA-256
// digests and every check compares the presented token's digest with all of them in constant
// time, so neither the comparison nor the token's length leaks through timing.
type Tokens struct {
	digests [][sha256.Size]byte
	roles   []string
	admin   bool // some token has the admin role
	scoring bool // some token has the scoring role: scoring calls then need a token
}

// NewTokens makes a token set from role → tokens.
func NewTokens(admin, scoring []string) (*Tokens, error) {
	t := &Tokens{}
	for _, e := range []struct {
		role   string
		tokens []string
	}{{RoleAdmin, admin}, {RoleScoring, scoring}} {
		for _, tok := range e.tokens {
			if err := t.add(e.role, tok); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

func (t *Tokens) add(role, tok string) error {
	if err := checkToken(role, tok); err != nil {
		return err
	}
	d := sha256.Sum256([]byte(tok))
	for i := range t.digests {
		if t.digests[i] == d {
			return fmt.Errorf("a token is listed twice (roles %s and %s): a token has one role", t.roles[i], role)
		}
	}
	switch role {
	case RoleAdmin:
		t.admin = true
	case RoleScoring:
		t.scoring = true
	}
	t.digests = append(t.digests, d)
	t.roles = append(t.roles, role)
	return nil
}

// checkToken is the one check of a token and its role, for NewTokens and ParseTokens alike. Its
// errors never quote the token.
func checkToken(role, tok string) error {
	if role != RoleAdmin && role != RoleScoring {
		return fmt.Errorf("unknown role %q (want %s or %s)", role, RoleAdmin, RoleScoring)
	}
	if len(tok) < MinTokenLen {
		return fmt.Errorf("the %s token is %d bytes long, at least %d are needed", role, len(tok), MinTokenLen)
	}
	if strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
		return fmt.Errorf("the %s token contains white space", role)
	}
	return nil
}

// ParseTokens reads a tokens file: one "<role> <token>" per line, role admin or scoring; blank
// lines and lines starting with # are ignored. A token listed twice is refused (a token has one
// role), so that what parses here NewTokens accepts. Errors name the line, never the token.
func ParseTokens(r io.Reader) (admin, scoring []string, err error) {
	seen := map[[sha256.Size]byte]int{} // token digest → line
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, nil, fmt.Errorf("line %d: want \"<role> <token>\", got %d fields", line, len(fields))
		}
		role, tok := fields[0], fields[1]
		if err := checkToken(role, tok); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		d := sha256.Sum256([]byte(tok))
		if first, ok := seen[d]; ok {
			return nil, nil, fmt.Errorf("line %d: the token of line %d is listed again: a token has one role", line, first)
		}
		seen[d] = line
		if role == RoleAdmin {
			admin = append(admin, tok)
		} else {
			scoring = append(scoring, tok)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return admin, scoring, nil
}

// role returns the role of a presented token, or "" when it is unknown. It looks at every token.
func (t *Tokens) role(tok string) string {
	d := sha256.Sum256([]byte(tok))
	role := ""
	for i := range t.digests {
		if subtle.ConstantTimeCompare(d[:], t.digests[i][:]) == 1 {
			role = t.roles[i]
		}
	}
	return role
}

var modelServicePrefix = "/" + churnv1.ModelService_ServiceDesc.ServiceName + "/"
var scoringServicePrefix = "/" + churnv1.ScoringService_ServiceDesc.ServiceName + "/"
var outcomeServicePrefix = "/" + churnv1.OutcomeService_ServiceDesc.ServiceName + "/"

// authorize decides a call: ModelService needs the admin role; ScoringService and OutcomeService
// need a scoring or admin token once scoring tokens are configured; health and reflection stay open.
func (t *Tokens) authorize(ctx context.Context, method string) error {
	var need string
	switch {
	case strings.HasPrefix(method, modelServicePrefix):
		need = RoleAdmin
		if !t.admin {
			return status.Error(codes.Unauthenticated, "ModelService is disabled: no admin token is configured (--admin-tokens or --tokens-file)")
		}
	case (strings.HasPrefix(method, scoringServicePrefix) || strings.HasPrefix(method, outcomeServicePrefix)) && t.scoring:
		need = RoleScoring
	default:
		return nil
	}
	tok, ok := bearer(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, `missing credentials: send the metadata "authorization: Bearer <token>"`)
	}
	role := t.role(tok)
	switch {
	case role == "":
		return status.Error(codes.Unauthenticated, "the bearer token is not valid")
	case role == RoleAdmin, role == need:
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "the token's role %q may not call %s", role, method)
}

// bearer returns the token of the authorization metadata. It copies that key's values only, not
// the call's whole metadata as FromIncomingContext does: that copy was half of what auth cost a
// call (the CPU profile of BenchmarkScoreGRPC, docs/PERFORMANCE.md "Views (issue 16)").
func bearer(ctx context.Context) (string, bool) {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		if scheme, tok, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") && tok != "" {
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}

// Auth returns the interceptors that enforce t; they run last in the chain, after recovery, so
// refusals are logged and counted like any other status.
func Auth(t *Tokens) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := t.authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := t.authorize(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	return unary, stream
}
