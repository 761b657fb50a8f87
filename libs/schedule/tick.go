package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// A time schedule fires at its ticks: the instants its interval names, computed in the
// schedule's time zone. A tick is also the start of the interval a run covers; the interval
// ends at the next tick.
//
// Daylight-saving changes follow cron's rules (Vixie cron, Airflow):
//   - An interval whose hour field names every hour (@hourly, "*/15 * * * *") follows
//     elapsed time: when clocks go back, 02:00 fires before and after the change.
//   - Any other interval (@daily, @weekly, @monthly, "30 2 * * *") follows the wall clock:
//     each local time fires once (the first time it occurs when clocks go back), and a local
//     time that a change skips fires when the skipped stretch ends (02:30 fires at 03:00 on
//     the night clocks go forward at 02:00). So a daily job runs exactly once every local day.

// Intervals with a meaning of their own.
const (
	IntervalOnce     = "@once"
	IntervalAlwaysOn = "@always_on"
)

// presetSpecs are the cron expressions of the time-driven presets. @weekly starts on Monday,
// as Mage's does, not on Sunday as cron's does.
var presetSpecs = map[string]string{
	"@hourly":  "0 * * * *",
	"@daily":   "0 0 * * *",
	"@weekly":  "0 0 * * 1",
	"@monthly": "0 0 1 * *",
}

// maxLookBack bounds the search for the latest tick: the longest gap between two ticks of a
// valid expression is eight years (29 February across a non-leap century year).
const maxLookBack = 9 * 366 * 24 * time.Hour

// allHours is the hour field of an expression that names every hour.
const allHours = 1<<24 - 1

// Timetable is a schedule's ticks, ready to compute: build it once per schedule version with
// NewTimetable. It is immutable and safe for concurrent use.
type Timetable struct {
	loc   *time.Location
	start time.Time // ticks before it are not due; zero when the schedule has no start time
	spec  *cron.SpecSchedule
	// wall is true when ticks follow the wall clock rather than elapsed time.
	wall bool
	// once is the only tick of an @once schedule; zero otherwise.
	once time.Time
	// never is true for @always_on: its runs are not started by the clock.
	never bool
}

// NewTimetable prepares the ticks of sc. It fails when the interval or the time zone is
// invalid, or when sc has no interval.
//
// @once ticks once: at the start time, or, without one, when the schedule was last enabled
// (or created). @always_on never ticks: its runs are not time-driven.
func NewTimetable(sc *Schedule) (*Timetable, error) {
	loc := time.UTC
	if sc.Timezone != "" {
		l, err := time.LoadLocation(sc.Timezone)
		if err != nil {
			return nil, fmt.Errorf("schedule %d: time zone %q: %w", sc.ID, sc.Timezone, err)
		}
		loc = l
	}
	tt := &Timetable{loc: loc}
	if sc.StartTime != nil {
		// Stores keep milliseconds: compare at the precision a tick reads back with.
		tt.start = sc.StartTime.UTC().Truncate(time.Millisecond)
	}
	switch sc.ScheduleInterval {
	case "":
		return nil, fmt.Errorf("schedule %d: no schedule interval", sc.ID)
	case IntervalAlwaysOn:
		tt.never = true
		return tt, nil
	case IntervalOnce:
		switch {
		case sc.StartTime != nil:
			tt.once = *sc.StartTime
		case sc.LastEnabledAt != nil:
			tt.once = *sc.LastEnabledAt
		default:
			tt.once = sc.CreatedAt
		}
		// The tick must read back equal from a run's execution date.
		tt.once = tt.once.UTC().Truncate(time.Millisecond)
		tt.never = tt.once.IsZero()
		return tt, nil
	}
	expr := sc.ScheduleInterval
	if preset, ok := presetSpecs[expr]; ok {
		expr = preset
	}
	parsed, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %d: schedule interval %q: %w", sc.ID, sc.ScheduleInterval, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %d: schedule interval %q is not a cron expression", sc.ID, sc.ScheduleInterval)
	}
	if spec.Location != time.Local {
		// A CRON_TZ= prefix in the expression names the zone explicitly; it wins. The copy
		// computes in its argument's zone like any other, which next relies on.
		tt.loc = spec.Location
		local := *spec
		local.Location = time.Local
		spec = &local
	}
	tt.spec = spec
	tt.wall = spec.Hour&allHours != allHours
	return tt, nil
}

// Location is the time zone the ticks are computed in.
func (tt *Timetable) Location() *time.Location { return tt.loc }

// Next returns the first tick after t (strictly), in UTC, and false when there is none.
// Ticks before the start time are skipped.
func (tt *Timetable) Next(t time.Time) (time.Time, bool) {
	if !tt.start.IsZero() && t.Before(tt.start) {
		// The first candidate is the start time itself.
		t = tt.start.Add(-time.Nanosecond)
	}
	switch {
	case tt.never:
		return time.Time{}, false
	case !tt.once.IsZero():
		if tt.once.After(t) {
			return tt.once, true
		}
		return time.Time{}, false
	}
	n := tt.next(t)
	return n, !n.IsZero()
}

// next is the first tick after t, ignoring the start time; zero when there is none.
func (tt *Timetable) next(t time.Time) time.Time {
	if !tt.wall {
		// robfig/cron computes in the zone of its argument, by elapsed time.
		return utc(tt.spec.Next(t.In(tt.loc)))
	}
	// Walk the wall clock as if it were UTC, where no local time is skipped or repeated,
	// and map each candidate back to an instant of the zone.
	w := wallClock(t.In(tt.loc))
	for {
		w = tt.spec.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if at := instant(w, tt.loc); at.After(t) {
			return at.UTC()
		}
		// The candidate maps to t or before: it is the second occurrence of a repeated local
		// time, or a skipped time collapsed onto a tick already passed.
	}
}

// Latest returns the latest tick at or before now, in UTC, and false when there is none
// (no tick yet, or every tick so far is before the start time).
func (tt *Timetable) Latest(now time.Time) (time.Time, bool) {
	switch {
	case tt.never:
		return time.Time{}, false
	case !tt.once.IsZero():
		if !tt.once.After(now) && !tt.once.Before(tt.start) {
			return tt.once, true
		}
		return time.Time{}, false
	}
	// Cron computes forwards only: scan ever wider windows ending at now. A window with no
	// tick is cheap to scan, and dense schedules are settled by the first, one-hour window.
	for w := time.Hour; ; w *= 2 {
		from := now.Add(-w)
		floor := !tt.start.IsZero() && !from.After(tt.start)
		if floor {
			from = tt.start.Add(-time.Nanosecond)
		}
		var last time.Time
		for t := tt.next(from); !t.IsZero() && !t.After(now); t = tt.next(t) {
			last = t
		}
		if !last.IsZero() {
			return last, true
		}
		if floor || w > maxLookBack {
			return time.Time{}, false
		}
	}
}

// Between returns the ticks in (after, now], oldest first, at most limit of them (the
// oldest, so that a caller working through a backlog in bounded passes proceeds in order).
func (tt *Timetable) Between(after, now time.Time, limit int) []time.Time {
	var out []time.Time
	for t, ok := tt.Next(after); ok && !t.After(now) && len(out) < limit; t, ok = tt.Next(t) {
		out = append(out, t)
	}
	return out
}

// Interval returns the interval the run of tick covers: it starts at the tick and ends at
// the next tick. ok is false when there is no next tick (@once, or an expression that never
// matches again); end is then zero.
func (tt *Timetable) Interval(tick time.Time) (start, end time.Time, ok bool) {
	start = tick.UTC()
	if !tt.once.IsZero() || tt.never {
		return start, time.Time{}, false
	}
	end = tt.next(start)
	return start, end, !end.IsZero()
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// wallClock is t's wall clock with UTC as its zone.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant returns the first instant at which the clocks of loc read w (a wall clock held in
// UTC fields): the earlier of the two when clocks went back over w, and the end of the skipped
// stretch when clocks went forward over w. Go's time.Date leaves both choices unspecified.
func instant(w time.Time, loc *time.Location) time.Time {
	// Real zones change offset at most once in a few days, so the offsets a day and a half
	// either side are the only candidates.
	_, before := w.Add(-36 * time.Hour).In(loc).Zone()
	_, after := w.Add(36 * time.Hour).In(loc).Zone()
	var first time.Time
	for _, off := range [2]int{before, after} {
		at := w.Add(-time.Duration(off) * time.Second).In(loc)
		if wallClock(at).Equal(w) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if !first.IsZero() {
		return first
	}
	// Skipped: read w with the offset before the change, which lands inside the new offset's
	// period; that period starts where the skipped stretch ends.
	start, _ := w.Add(-time.Duration(before) * time.Second).In(loc).ZoneBounds()
	return start
}
