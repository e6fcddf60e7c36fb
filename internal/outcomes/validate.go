package outcomes

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// Limits of an outcome's strings, in bytes.
const (
	MaxCustomerIDLen = 128
	MaxKeyLen        = 128
	MaxContractLen   = 64
)

// ClockSkew is how far in the future an outcome's occurred_at may be: the caller's clock may run
// a little ahead of this replica's.
const ClockSkew = time.Minute

// FieldError is a refused input: Field is its path within the item or request (for example
// "occurred_at"), Description says what is wrong.
type FieldError struct {
	Field, Description string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Description }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Description: fmt.Sprintf(format, args...)}
}

// validateID checks a customer id or key: 1..max bytes of UTF-8 without control characters.
func validateID(field, s string, max int) *FieldError {
	switch {
	case s == "":
		return fieldErr(field, "must not be empty")
	case len(s) > max:
		return fieldErr(field, "must be at most %d bytes, got %d", max, len(s))
	case !utf8.ValidString(s):
		return fieldErr(field, "must be valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fieldErr(field, "must not contain control characters")
	}
	return nil
}

// validate checks one outcome against the clock: now is this replica's time, oldest the first
// instant of the oldest day kept.
func validate(o *churnv1.Outcome, now, oldest time.Time) *FieldError {
	if o == nil {
		return fieldErr("outcome", "must be set")
	}
	if err := validateID("customer_id", o.GetCustomerId(), MaxCustomerIDLen); err != nil {
		return err
	}
	switch o.GetType() {
	case churnv1.OutcomeType_OUTCOME_TYPE_CHURNED, churnv1.OutcomeType_OUTCOME_TYPE_RETAINED, churnv1.OutcomeType_OUTCOME_TYPE_WON_BACK:
	case churnv1.OutcomeType_OUTCOME_TYPE_UNSPECIFIED:
		return fieldErr("type", "must be set: CHURNED, RETAINED or WON_BACK")
	default:
		return fieldErr("type", "unknown outcome type %d", int32(o.GetType()))
	}
	ts := o.GetOccurredAt()
	if ts == nil {
		return fieldErr("occurred_at", "must be set")
	}
	if err := ts.CheckValid(); err != nil {
		return fieldErr("occurred_at", "is not a valid timestamp: %v", err)
	}
	at := ts.AsTime()
	if at.After(now.Add(ClockSkew)) {
		return fieldErr("occurred_at", "%s is in the future (now %s)", at.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if at.Before(oldest) {
		return fieldErr("occurred_at", "%s is before %s, the oldest day kept (--outcome-retention-days)", at.Format(time.RFC3339), oldest.Format(time.RFC3339))
	}
	r := o.GetReason()
	if _, known := churnv1.OutcomeReason_name[int32(r)]; !known {
		return fieldErr("reason", "unknown outcome reason %d", int32(r))
	}
	if r != churnv1.OutcomeReason_OUTCOME_REASON_UNSPECIFIED && o.GetType() != churnv1.OutcomeType_OUTCOME_TYPE_CHURNED {
		return fieldErr("reason", "is for CHURNED outcomes only, got %s", o.GetType())
	}
	if o.MonthlyRevenue != nil {
		v := o.GetMonthlyRevenue()
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fieldErr("monthly_revenue", "must be a finite number >= 0, got %v", v)
		}
	}
	if k := o.GetIdempotencyKey(); k != "" {
		if err := validateID("idempotency_key", k, MaxKeyLen); err != nil {
			return err
		}
	}
	if c := o.GetContract(); c != "" {
		if err := validateID("contract", c, MaxContractLen); err != nil {
			return err
		}
	}
	return nil
}
