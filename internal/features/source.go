package features

import (
	"fmt"
	"strconv"
	"strings"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
	"github.com/churnhq/churn/internal/bundle"
)

// field is a typed field of CustomerFeatures, as a bundle source names it (group.field, proto
// field names). The zero value is no field.
type field uint8

const (
	noField field = iota
	activityDaysSinceLastActive
	activityActiveDays30d
	activityUsage30d
	activityUsagePrev30d
	complaintsCount30d
	complaintsCount90d
	complaintsOpen
	complaintsEscalated90d
	serviceTickets90d
	serviceAvgFirstResponseHours
	serviceP90FirstResponseHours
	serviceAvgResolutionHours
	serviceSLABreaches90d
	accountTenureMonths
	accountMonthlyRevenue
	accountContract
	accountSatisfaction
	numFields // one past the last field
)

// Request paths of the typed fields, as violations name them.
const (
	pathDaysSinceLastActive   = "features.activity.days_since_last_active"
	pathActiveDays30d         = "features.activity.active_days_30d"
	pathUsage30d              = "features.activity.usage_30d"
	pathUsagePrev30d          = "features.activity.usage_prev_30d"
	pathCount30d              = "features.complaints.count_30d"
	pathCount90d              = "features.complaints.count_90d"
	pathOpen                  = "features.complaints.open"
	pathEscalated90d          = "features.complaints.escalated_90d"
	pathTickets90d            = "features.service.tickets_90d"
	pathAvgFirstResponseHours = "features.service.avg_first_response_hours"
	pathP90FirstResponseHours = "features.service.p90_first_response_hours"
	pathAvgResolutionHours    = "features.service.avg_resolution_hours"
	pathSLABreaches90d        = "features.service.sla_breaches_90d"
	pathTenureMonths          = "features.account.tenure_months"
	pathMonthlyRevenue        = "features.account.monthly_revenue"
	pathContract              = "features.account.contract"
	pathSatisfaction          = "features.account.satisfaction"
	pathNumeric               = "features.numeric"
	pathCategorical           = "features.categorical"
)

// pathPrefix is what a bundle source is prefixed with to make its request path.
const pathPrefix = "features."

// path returns the field's request path, e.g. features.complaints.count_30d.
func (fd field) path() string {
	switch fd {
	case activityDaysSinceLastActive:
		return pathDaysSinceLastActive
	case activityActiveDays30d:
		return pathActiveDays30d
	case activityUsage30d:
		return pathUsage30d
	case activityUsagePrev30d:
		return pathUsagePrev30d
	case complaintsCount30d:
		return pathCount30d
	case complaintsCount90d:
		return pathCount90d
	case complaintsOpen:
		return pathOpen
	case complaintsEscalated90d:
		return pathEscalated90d
	case serviceTickets90d:
		return pathTickets90d
	case serviceAvgFirstResponseHours:
		return pathAvgFirstResponseHours
	case serviceP90FirstResponseHours:
		return pathP90FirstResponseHours
	case serviceAvgResolutionHours:
		return pathAvgResolutionHours
	case serviceSLABreaches90d:
		return pathSLABreaches90d
	case accountTenureMonths:
		return pathTenureMonths
	case accountMonthlyRevenue:
		return pathMonthlyRevenue
	case accountContract:
		return pathContract
	case accountSatisfaction:
		return pathSatisfaction
	}
	return ""
}

// fieldOf returns the typed field a bundle source names, or noField.
func fieldOf(source string) field {
	for fd := noField + 1; fd < numFields; fd++ {
		if fd.path()[len(pathPrefix):] == source {
			return fd
		}
	}
	return noField
}

// double returns the pointer of a typed double field of f: nil when f, the field's group or the
// field is absent. It must not be called with accountContract.
func (fd field) double(f *churnv1.CustomerFeatures) *float64 {
	switch fd {
	case activityDaysSinceLastActive, activityActiveDays30d, activityUsage30d, activityUsagePrev30d:
		a := f.GetActivity()
		if a == nil {
			return nil
		}
		switch fd {
		case activityDaysSinceLastActive:
			return a.DaysSinceLastActive
		case activityActiveDays30d:
			return a.ActiveDays_30D
		case activityUsage30d:
			return a.Usage_30D
		default:
			return a.UsagePrev_30D
		}
	case complaintsCount30d, complaintsCount90d, complaintsOpen, complaintsEscalated90d:
		c := f.GetComplaints()
		if c == nil {
			return nil
		}
		switch fd {
		case complaintsCount30d:
			return c.Count_30D
		case complaintsCount90d:
			return c.Count_90D
		case complaintsOpen:
			return c.Open
		default:
			return c.Escalated_90D
		}
	case serviceTickets90d, serviceAvgFirstResponseHours, serviceP90FirstResponseHours, serviceAvgResolutionHours, serviceSLABreaches90d:
		s := f.GetService()
		if s == nil {
			return nil
		}
		switch fd {
		case serviceTickets90d:
			return s.Tickets_90D
		case serviceAvgFirstResponseHours:
			return s.AvgFirstResponseHours
		case serviceP90FirstResponseHours:
			return s.P90FirstResponseHours
		case serviceAvgResolutionHours:
			return s.AvgResolutionHours
		default:
			return s.SlaBreaches_90D
		}
	case accountTenureMonths, accountMonthlyRevenue, accountSatisfaction:
		a := f.GetAccount()
		if a == nil {
			return nil
		}
		switch fd {
		case accountTenureMonths:
			return a.TenureMonths
		case accountMonthlyRevenue:
			return a.MonthlyRevenue
		default:
			return a.Satisfaction
		}
	}
	return nil
}

// setDouble stores x in a typed double field of f, creating its group. It must not be called
// with accountContract or noField.
func (fd field) setDouble(f *churnv1.CustomerFeatures, x float64) {
	p := &x
	switch fd {
	case activityDaysSinceLastActive, activityActiveDays30d, activityUsage30d, activityUsagePrev30d:
		if f.Activity == nil {
			f.Activity = &churnv1.Activity{}
		}
		a := f.Activity
		switch fd {
		case activityDaysSinceLastActive:
			a.DaysSinceLastActive = p
		case activityActiveDays30d:
			a.ActiveDays_30D = p
		case activityUsage30d:
			a.Usage_30D = p
		default:
			a.UsagePrev_30D = p
		}
	case complaintsCount30d, complaintsCount90d, complaintsOpen, complaintsEscalated90d:
		if f.Complaints == nil {
			f.Complaints = &churnv1.Complaints{}
		}
		c := f.Complaints
		switch fd {
		case complaintsCount30d:
			c.Count_30D = p
		case complaintsCount90d:
			c.Count_90D = p
		case complaintsOpen:
			c.Open = p
		default:
			c.Escalated_90D = p
		}
	case serviceTickets90d, serviceAvgFirstResponseHours, serviceP90FirstResponseHours, serviceAvgResolutionHours, serviceSLABreaches90d:
		if f.Service == nil {
			f.Service = &churnv1.ServiceResponse{}
		}
		s := f.Service
		switch fd {
		case serviceTickets90d:
			s.Tickets_90D = p
		case serviceAvgFirstResponseHours:
			s.AvgFirstResponseHours = p
		case serviceP90FirstResponseHours:
			s.P90FirstResponseHours = p
		case serviceAvgResolutionHours:
			s.AvgResolutionHours = p
		default:
			s.SlaBreaches_90D = p
		}
	case accountTenureMonths, accountMonthlyRevenue, accountSatisfaction:
		if f.Account == nil {
			f.Account = &churnv1.Account{}
		}
		a := f.Account
		switch fd {
		case accountTenureMonths:
			a.TenureMonths = p
		case accountMonthlyRevenue:
			a.MonthlyRevenue = p
		default:
			a.Satisfaction = p
		}
	}
}

// Set stores value in f under a bundle source name: a typed field such as complaints.count_30d
// or account.contract, or numeric.<key> / categorical.<key>. Numeric values are parsed with
// strconv.ParseFloat. It does not validate the value (Validate does); it is how command-line
// tools build a request from source=value pairs.
func Set(f *churnv1.CustomerFeatures, source, value string) error {
	if f == nil {
		return fmt.Errorf("set %s: nil CustomerFeatures", source)
	}
	typ, err := bundle.SourceType(source)
	if err != nil {
		return err
	}
	var x float64
	if typ == bundle.TypeNumeric {
		x, err = strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("source %s is numeric: %q is not a number", source, value)
		}
	}
	if key, ok := strings.CutPrefix(source, bundle.NumericPrefix); ok {
		if f.Numeric == nil {
			f.Numeric = map[string]float64{}
		}
		f.Numeric[key] = x
		return nil
	}
	if key, ok := strings.CutPrefix(source, bundle.CategoricalPrefix); ok {
		if f.Categorical == nil {
			f.Categorical = map[string]string{}
		}
		f.Categorical[key] = value
		return nil
	}
	switch fd := fieldOf(source); fd {
	case noField:
		return fmt.Errorf("source %s is not a field this build knows", source)
	case accountContract:
		if f.Account == nil {
			f.Account = &churnv1.Account{}
		}
		f.Account.Contract = &value
	default:
		fd.setDouble(f, x)
	}
	return nil
}
