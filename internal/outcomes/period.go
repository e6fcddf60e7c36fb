package outcomes

import (
	"time"

	churnv1 "github.com/churnhq/churn/api/churn/v1"
)

// MaxPeriods bounds the periods one report covers.
const MaxPeriods = 1000

// dayOf is the UTC day (days since 1970-01-01) of t.
func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// dayStart is the first instant of a UTC day.
func dayStart(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// periodStart is the first instant of the period of length p holding t: the UTC day, the ISO week
// (Monday) or the calendar month.
func periodStart(p churnv1.Period, t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case churnv1.Period_PERIOD_WEEK:
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		return day.AddDate(0, 0, -back)
	case churnv1.Period_PERIOD_MONTH:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return day
}

// periodEnd is the first instant after the period starting at start.
func periodEnd(p churnv1.Period, start time.Time) time.Time {
	switch p {
	case churnv1.Period_PERIOD_WEEK:
		return start.AddDate(0, 0, 7)
	case churnv1.Period_PERIOD_MONTH:
		return start.AddDate(0, 1, 0)
	}
	return start.AddDate(0, 0, 1)
}

// span is one reporting period: [start, end) and its days [first, last].
type span struct {
	start, end  time.Time
	first, last int64
}

// periods splits [from, to) into the periods of length p that overlap it; p UNSPECIFIED is one
// span of the whole range's days. It refuses a range with from >= to or of more than MaxPeriods.
func periods(p churnv1.Period, from, to time.Time) ([]span, *FieldError) {
	if !from.Before(to) {
		return nil, fieldErr("to", "must be after from")
	}
	if p == churnv1.Period_PERIOD_UNSPECIFIED {
		days := dayOf(to.Add(-time.Nanosecond)) - dayOf(from) + 1
		if days > MaxPeriods*31 {
			return nil, fieldErr("to", "the range is %d days long; at most %d", days, MaxPeriods*31)
		}
		return []span{{start: from.UTC(), end: to.UTC(), first: dayOf(from), last: dayOf(to.Add(-time.Nanosecond))}}, nil
	}
	var out []span
	for s := periodStart(p, from); s.Before(to); s = periodEnd(p, s) {
		if len(out) == MaxPeriods {
			return nil, fieldErr("to", "the range holds more than %d periods", MaxPeriods)
		}
		e := periodEnd(p, s)
		out = append(out, span{start: s, end: e, first: dayOf(s), last: dayOf(e) - 1})
	}
	return out, nil
}

// validPeriod checks a Period enum value.
func validPeriod(field string, p churnv1.Period) *FieldError {
	if _, ok := churnv1.Period_name[int32(p)]; !ok {
		return fieldErr(field, "unknown period %d", int32(p))
	}
	return nil
}
