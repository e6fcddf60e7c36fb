package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/features"
	"github.com/churnhq/churn/internal/modelstore"
)

// invalidArgument is an INVALID_ARGUMENT status whose BadRequest details name the field.
func invalidArgument(field, description string) error {
	return badRequest(fmt.Sprintf("%s: %s", field, description), []features.Violation{{Field: field, Description: description}})
}

func badRequest(msg string, vs []features.Violation) error {
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

// codeOf is the gRPC code an error of the scoring path becomes.
func codeOf(err error) codes.Code {
	if _, ok := featureViolations(err); ok {
		return codes.InvalidArgument
	}
	switch {
	case errors.Is(err, modelstore.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, modelstore.ErrNoActive):
		return codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Internal
}

// toStatus is the one place domain errors become gRPC statuses. A status passes through; an
// unknown error becomes a generic INTERNAL and its cause is logged, never sent.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if vs, ok := featureViolations(err); ok {
		return badRequest(err.Error(), vs)
	}
	code := codeOf(err)
	switch code {
	case codes.NotFound:
		return status.Error(code, "model_version: "+err.Error())
	case codes.FailedPrecondition:
		return status.Error(code, "no model is active; activate one with the model store")
	case codes.Canceled, codes.DeadlineExceeded:
		return status.Error(code, err.Error())
	case codes.Internal:
		if _, isStatus := status.FromError(err); !isStatus {
			s.logger.ErrorContext(ctx, "scoring failed", "err", err)
			return status.Error(codes.Internal, "internal error")
		}
	}
	return err
}

// itemError is the error of one batch or stream item, with the item's index in the message.
func (s *Server) itemError(ctx context.Context, err error, index int) *churnv1.ItemError {
	st := status.Convert(s.toStatus(ctx, err))
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
