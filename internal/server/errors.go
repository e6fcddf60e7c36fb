package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/cache"
	"github.com/churnhq/churn/internal/model"
	"github.com/churnhq/churn/internal/outcomes"
	"github.com/churnhq/churn/internal/registry"
)

// versionSyntax is what a model version (and name) must look like, for the errors that refuse one.
const versionSyntax = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// errNoActiveModel is the error of a Score with no model version while no model is active.
var errNoActiveModel = status.Error(codes.FailedPrecondition, "no model is active; activate one with ModelService.ActivateModel")

// versionNotLoaded is the NOT_FOUND of a request that names, in field, a version this replica
// has neither loaded nor can load from the model store.
func versionNotLoaded(field, version string) error {
	return status.Errorf(codes.NotFound, "%s: model version %q is neither loaded on this replica nor stored; ModelService.ListModels lists the versions", field, version)
}

// invalidArgument is an INVALID_ARGUMENT status whose BadRequest details name the field.
func invalidArgument(field, description string) error {
	return badRequest(fmt.Sprintf("%s: %s", field, description), []model.Violation{{Field: field, Description: description}})
}

func badRequest(msg string, vs []model.Violation) error {
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(vs))}
	for i, v := range vs {
		br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description}
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// toStatus is the one place errors become gRPC statuses, for both services. The domain packages
// return Go errors (model, the score cache, the registry), matched here by errors.Is and As; a
// status passes through; anything else becomes a generic INTERNAL, its cause logged, never sent.
func toStatus(ctx context.Context, logger *slog.Logger, err error) error {
	var ve *model.ValidationError
	var fe *outcomes.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return badRequest(err.Error(), ve.Violations)
	case errors.As(err, &fe): // the outcome store's
		return invalidArgument(fe.Field, fe.Description)
	case errors.Is(err, context.Canceled): // the caller went away: no store or cache is down
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, outcomes.ErrUnavailable) && errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the outcome store did not answer in time; retry later (a retried outcome counts once)")
	case errors.Is(err, outcomes.ErrUnavailable):
		logger.WarnContext(ctx, "outcome store unavailable", "err", err)
		return status.Error(codes.Unavailable, "the outcome store is unreachable; retry later (a retried outcome counts once)")
	case errors.Is(err, model.ErrUnscorable): // counted and logged where it happens (Server.unscorable)
		return status.Error(codes.Internal, err.Error()+": the model's fault, not the request's; report it to the model's owner")

	// The score cache.
	case errors.Is(err, cache.ErrNotFound):
		return status.Error(codes.NotFound, "customer_id: no cached score for this customer; call Score")
	case errors.Is(err, cache.ErrBadPageToken):
		return invalidArgument("page_token", "is not a token this service issued")
	case errors.Is(err, cache.ErrUnavailable) && errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the score cache did not answer in time; retry later, or call Score")
	case errors.Is(err, cache.ErrUnavailable):
		return status.Error(codes.Unavailable, "the score cache is unreachable; retry later, or call Score")

	// The model registry.
	case errors.Is(err, registry.ErrChecksum):
		return invalidArgument("metadata.sha256", err.Error())
	case errors.Is(err, registry.ErrMetadata):
		return invalidArgument("metadata", err.Error())
	case errors.Is(err, model.ErrInvalid):
		return invalidArgument("bundle", err.Error())
	case errors.Is(err, registry.ErrExists):
		return status.Error(codes.AlreadyExists, "version: "+err.Error())
	case errors.Is(err, registry.ErrNotFound):
		return status.Error(codes.NotFound, "version: "+err.Error())
	case errors.Is(err, registry.ErrFailed):
		return status.Error(codes.FailedPrecondition, "version: "+err.Error())
	case errors.Is(err, registry.ErrNotStored):
		return status.Error(codes.FailedPrecondition, "version: "+err.Error())
	case errors.Is(err, registry.ErrProtected):
		return status.Error(codes.FailedPrecondition, "version: "+err.Error()+"; activate another version first")
	case errors.Is(err, registry.ErrNotLoaded):
		return status.Error(codes.FailedPrecondition, "model_version: "+err.Error())
	case errors.Is(err, registry.ErrUnavailable):
		logger.WarnContext(ctx, "model store unavailable", "err", err)
		return status.Error(codes.Unavailable, "the model store is unavailable; a write whose answer was lost may have been applied: list the models before retrying")

	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	logger.ErrorContext(ctx, "call failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// toStatus is the package's toStatus with the server's logger.
func (s *Server) toStatus(ctx context.Context, err error) error { return toStatus(ctx, s.logger, err) }

// itemError is the error of one batch or stream item, with the item's index in the message, and
// counts it by rpc and code.
func (s *Server) itemError(ctx context.Context, rpc string, err error, index int) *churnv1.ItemError {
	st := status.Convert(s.toStatus(ctx, err))
	s.metrics.errors.WithLabelValues(rpc, st.Code().String()).Inc()
	ie := &churnv1.ItemError{Code: int32(st.Code()), Message: fmt.Sprintf("requests[%d]: %s", index, st.Message())}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				ie.FieldViolations = append(ie.FieldViolations, &churnv1.FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return ie
}
