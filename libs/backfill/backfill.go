// Package backfill defines backfills (Mage's): one run of a pipeline per date of a range, to
// compute the past. It holds the record, the rules that make one valid, the dates it covers and
// the variables each of its runs gets, and the rule that says when it is over.
package backfill

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/validation"
)

// Status is a backfill's status. The empty status is Mage's null: created, not started.
type Status string

// Statuses: (none) → initial (start asked) → running (runs being created and run) →
// completed | failed | cancelled.
const (
	StatusNone      Status = ""
	StatusInitial   Status = "initial"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Started reports whether a start was asked for: the definition is then frozen.
func (s Status) Started() bool { return s != StatusNone }

// Terminal reports whether nothing more happens to a backfill in status s.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Interval types, Mage's names. Custom steps by interval_units seconds.
const (
	IntervalSecond = "second"
	IntervalMinute = "minute"
	IntervalHour   = "hour"
	IntervalDay    = "day"
	IntervalWeek   = "week"
	IntervalMonth  = "month"
	IntervalYear   = "year"
	IntervalCustom = "custom"
)

// IntervalTypes lists the valid interval types.
var IntervalTypes = []string{IntervalSecond, IntervalMinute, IntervalHour, IntervalDay, IntervalWeek, IntervalMonth, IntervalYear, IntervalCustom}

// MaxDates bounds the runs of one backfill: a start publishes one command per date, and a
// range that makes more is almost always a wrong interval rather than an intent.
const MaxDates = 10000

// MaxNameLength bounds a backfill's name.
const MaxNameLength = 255

// Backfill is one backfill of a pipeline.
type Backfill struct {
	ID           int64  `json:"id" bson:"_id"`
	Space        string `json:"space" bson:"space"`
	Name         string `json:"name" bson:"name"`
	PipelineUUID string `json:"pipeline_uuid" bson:"pipeline_uuid"`
	// PipelineScheduleID is the hidden schedule the backfill's runs belong to, made when it
	// starts; nil before.
	PipelineScheduleID *int64     `json:"pipeline_schedule_id" bson:"pipeline_schedule_id"`
	StartDatetime      *time.Time `json:"start_datetime" bson:"start_datetime"`
	EndDatetime        *time.Time `json:"end_datetime" bson:"end_datetime"`
	// IntervalType is one of IntervalTypes; empty until set.
	IntervalType string `json:"interval_type" bson:"interval_type"`
	// IntervalUnits is how many interval types make one step; nil until set.
	IntervalUnits *int           `json:"interval_units" bson:"interval_units"`
	Variables     map[string]any `json:"variables" bson:"variables"`
	// Settings: pipeline_run_limit caps the backfill's concurrently running runs. All of them
	// become the hidden schedule's settings, so the schedule settings runs honour apply.
	Settings    map[string]any `json:"settings" bson:"settings"`
	Status      Status         `json:"status" bson:"status"`
	StartedAt   *time.Time     `json:"started_at" bson:"started_at"`
	CompletedAt *time.Time     `json:"completed_at" bson:"completed_at"`
	// TotalRunCount is the number of runs the backfill makes, fixed when it starts; the
	// backfill is over when that many of its runs have finished.
	TotalRunCount int64     `json:"total_run_count" bson:"total_run_count"`
	CreatedAt     time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt     time.Time `json:"updated_at" bson:"updated_at"`
	Version       int64     `json:"version" bson:"version"`
}

// SettingPipelineRunLimit is the setting that caps the backfill's running runs.
const SettingPipelineRunLimit = "pipeline_run_limit"

// Normalize fills defaults: empty maps, a trimmed name, dates at the precision stores keep
// (milliseconds), so that a run's execution date reads back equal to the date it was made for.
func (b *Backfill) Normalize() {
	b.Name = strings.TrimSpace(b.Name)
	b.IntervalType = strings.TrimSpace(b.IntervalType)
	if b.Variables == nil {
		b.Variables = map[string]any{}
	}
	if b.Settings == nil {
		b.Settings = map[string]any{}
	}
	for _, t := range []**time.Time{&b.StartDatetime, &b.EndDatetime} {
		if *t != nil {
			v := (*t).UTC().Truncate(time.Millisecond)
			*t = &v
		}
	}
}

// Validate reports every problem with the backfill's fields; field paths start at prefix
// ("backfill"). Fields not set yet are fine, unless forStart: a start needs the range and
// the interval.
func (b *Backfill) Validate(prefix string, forStart bool) error {
	var errs validation.Errors
	f := func(name string) string { return prefix + "." + name }
	if b.Name == "" {
		errs.Add(f("name"), "is required")
	} else if len(b.Name) > MaxNameLength {
		errs.Add(f("name"), "must be at most %d characters", MaxNameLength)
	}
	if forStart {
		if b.StartDatetime == nil {
			errs.Add(f("start_datetime"), "is required to start the backfill")
		}
		if b.EndDatetime == nil {
			errs.Add(f("end_datetime"), "is required to start the backfill")
		}
		if b.IntervalType == "" {
			errs.Add(f("interval_type"), "is required to start the backfill: one of %s", strings.Join(IntervalTypes, ", "))
		}
		if b.IntervalUnits == nil {
			errs.Add(f("interval_units"), "is required to start the backfill")
		}
	}
	typeOK := b.IntervalType == "" || slices.Contains(IntervalTypes, b.IntervalType)
	if !typeOK {
		errs.Add(f("interval_type"), "must be one of %s, not %q", strings.Join(IntervalTypes, ", "), b.IntervalType)
	}
	unitsOK := b.IntervalUnits == nil || *b.IntervalUnits >= 1
	if !unitsOK {
		errs.Add(f("interval_units"), "must be a whole number, 1 or more")
	}
	rangeOK := b.StartDatetime == nil || b.EndDatetime == nil || !b.EndDatetime.Before(*b.StartDatetime)
	if !rangeOK {
		errs.Add(f("end_datetime"), "must not be before start_datetime")
	}
	if v, ok := b.Settings[SettingPipelineRunLimit]; ok && v != nil {
		if n, isNum := v.(float64); !isNum || n < 0 || n != float64(int64(n)) {
			errs.Add(f("settings."+SettingPipelineRunLimit), "must be a whole number, 0 (no limit) or more")
		}
	}
	// The count is checked only on a range and interval that are otherwise right, so that
	// one mistake is reported once.
	if typeOK && unitsOK && rangeOK && b.IntervalType != "" && b.IntervalUnits != nil && b.StartDatetime != nil && b.EndDatetime != nil {
		if _, err := b.Intervals(); err != nil {
			errs.Add(f("end_datetime"), "%v", err)
		}
	}
	return errs.Err()
}

// Interval is the span one run of a backfill covers: from its execution date to the next date.
type Interval struct {
	Start time.Time
	End   time.Time
}

// Seconds is the interval's length in whole seconds.
func (iv Interval) Seconds() int64 { return int64(iv.End.Sub(iv.Start) / time.Second) }

// Intervals returns the backfill's run intervals, oldest first: one per date from the start,
// stepping by the interval, while the date is not after the end (the end is inclusive).
func (b *Backfill) Intervals() ([]Interval, error) {
	if b.StartDatetime == nil || b.EndDatetime == nil || b.IntervalType == "" || b.IntervalUnits == nil {
		return nil, fmt.Errorf("backfill %d: the range and the interval are required", b.ID)
	}
	return Intervals(*b.StartDatetime, *b.EndDatetime, b.IntervalType, *b.IntervalUnits)
}

// Intervals returns one interval per date start, start+step, … not after end (inclusive), in
// UTC, where a step is units of typ. The n-th date is computed from start, not from the date
// before it, so that month and year steps do not drift: a date past the end of a shorter month
// falls on that month's last day (Jan 31 + 1 month is Feb 28, + 2 months Mar 31), as Mage's
// relativedelta does. More than MaxDates dates is an error.
func Intervals(start, end time.Time, typ string, units int) ([]Interval, error) {
	if units < 1 {
		return nil, fmt.Errorf("interval_units must be 1 or more, not %d", units)
	}
	if !slices.Contains(IntervalTypes, typ) {
		return nil, fmt.Errorf("unknown interval_type %q", typ)
	}
	start, end = start.UTC(), end.UTC()
	if end.Before(start) {
		return nil, fmt.Errorf("end_datetime %s is before start_datetime %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	var out []Interval
	at := DateAt(start, typ, units, 0)
	for i := 1; !at.After(end); i++ {
		if len(out) == MaxDates {
			return nil, fmt.Errorf("the range makes more than %d dates at %d %s: narrow it or take a longer interval", MaxDates, units, typ)
		}
		next := DateAt(start, typ, units, i)
		out = append(out, Interval{Start: at, End: next})
		at = next
	}
	return out, nil
}

// DateAt is the i-th date of a backfill from start stepping by units of typ (date 0 is
// start). Month and year steps are calendar steps that keep start's day of month, clamped to
// the last day of shorter months; the others are fixed durations (UTC has no daylight saving,
// so a day is always 24 hours).
func DateAt(start time.Time, typ string, units, i int) time.Time {
	if i == 0 {
		return start
	}
	n := units * i
	if units > maxSteps || i > maxSteps || n > maxSteps {
		// Beyond 10,000 years, and guards the arithmetic below against overflow.
		return farFuture
	}
	switch typ {
	case IntervalMonth, IntervalYear:
		months := n
		if typ == IntervalYear {
			months = 12 * n
		}
		y, m, d := start.Date()
		first := time.Date(y, m+time.Month(months), 1, start.Hour(), start.Minute(), start.Second(), start.Nanosecond(), time.UTC)
		if last := daysIn(first.Year(), first.Month()); d > last {
			d = last
		}
		return first.AddDate(0, 0, d-1)
	case IntervalWeek:
		return start.AddDate(0, 0, 7*n)
	case IntervalDay:
		return start.AddDate(0, 0, n)
	}
	d := step(typ)
	if int64(n) > math.MaxInt64/int64(d) {
		// Past what a Duration holds (292 years): later than any end a range can have.
		return farFuture
	}
	return start.Add(time.Duration(n) * d)
}

// maxSteps is more units of any interval type than 10,000 years hold, except seconds, which
// the Duration check below bounds.
const maxSteps = 10000 * 366 * 24 * 60

// farFuture stands for a date too far to compute as a duration from the start.
var farFuture = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

func step(typ string) time.Duration {
	switch typ {
	case IntervalMinute:
		return time.Minute
	case IntervalHour:
		return time.Hour
	}
	return time.Second // second and custom (a number of seconds)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Run variable names: Mage's, also what the scheduler gives time-schedule runs.
const (
	VarExecutionDate   = "execution_date"
	VarDS              = "ds"
	VarHR              = "hr"
	VarIntervalStart   = "interval_start_datetime"
	VarIntervalEnd     = "interval_end_datetime"
	VarIntervalSeconds = "interval_seconds"
)

// RunVariables are the variables of the backfill's run for iv: the backfill's variables, then
// the date's own, which win.
func (b *Backfill) RunVariables(iv Interval) map[string]any {
	v := make(map[string]any, len(b.Variables)+6)
	maps.Copy(v, b.Variables)
	v[VarExecutionDate] = iv.Start.Format(time.RFC3339)
	v[VarDS] = iv.Start.Format("2006-01-02")
	v[VarHR] = iv.Start.Format("15")
	v[VarIntervalStart] = iv.Start.Format(time.RFC3339)
	v[VarIntervalEnd] = iv.End.Format(time.RFC3339)
	v[VarIntervalSeconds] = iv.Seconds()
	return v
}

// Outcome says whether a backfill of total runs whose runs are counted by status in counts is
// over, and with which status: completed when every run completed, failed when every run
// finished and one failed, cancelled when every run finished, none failed and one was
// cancelled (on its own, or skipped by a limit).
func Outcome(counts map[run.Status]int64, total int64) (Status, bool) {
	done := counts[run.StatusCompleted] + counts[run.StatusFailed] + counts[run.StatusCancelled]
	switch {
	case total <= 0 || done < total:
		return StatusNone, false
	case counts[run.StatusFailed] > 0:
		return StatusFailed, true
	case counts[run.StatusCancelled] > 0:
		return StatusCancelled, true
	}
	return StatusCompleted, true
}
