package backfill

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/validation"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

func starts(t *testing.T, ivs []Interval) []string {
	t.Helper()
	out := make([]string, len(ivs))
	for i, iv := range ivs {
		out[i] = iv.Start.Format(time.RFC3339)
	}
	return out
}

func TestIntervals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, end time.Time
		typ        string
		units      int
		want       []string
		lastEnd    string
	}{
		{"days, end inclusive", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 5, 0, 0, 0), IntervalDay, 1,
			[]string{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"}, "2026-01-06T00:00:00Z"},
		{"end between dates", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 4, 23, 59, 59), IntervalDay, 2,
			[]string{"2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"}, "2026-01-05T00:00:00Z"},
		{"start equals end", utc(2026, 3, 1, 12, 0, 0), utc(2026, 3, 1, 12, 0, 0), IntervalHour, 1,
			[]string{"2026-03-01T12:00:00Z"}, "2026-03-01T13:00:00Z"},
		{"month ends clamp without drifting", utc(2026, 1, 31, 6, 0, 0), utc(2026, 5, 31, 6, 0, 0), IntervalMonth, 1,
			[]string{"2026-01-31T06:00:00Z", "2026-02-28T06:00:00Z", "2026-03-31T06:00:00Z", "2026-04-30T06:00:00Z", "2026-05-31T06:00:00Z"}, "2026-06-30T06:00:00Z"},
		{"leap February", utc(2028, 1, 31, 0, 0, 0), utc(2028, 3, 1, 0, 0, 0), IntervalMonth, 1,
			[]string{"2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z"}, "2028-03-31T00:00:00Z"},
		{"months by units across a year", utc(2026, 11, 30, 0, 0, 0), utc(2027, 6, 1, 0, 0, 0), IntervalMonth, 3,
			[]string{"2026-11-30T00:00:00Z", "2027-02-28T00:00:00Z", "2027-05-30T00:00:00Z"}, "2027-08-30T00:00:00Z"},
		{"years from February 29", utc(2024, 2, 29, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0), IntervalYear, 2,
			[]string{"2024-02-29T00:00:00Z", "2026-02-28T00:00:00Z", "2028-02-29T00:00:00Z"}, "2030-02-28T00:00:00Z"},
		{"weeks", utc(2026, 1, 5, 0, 0, 0), utc(2026, 1, 26, 0, 0, 0), IntervalWeek, 1,
			[]string{"2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-19T00:00:00Z", "2026-01-26T00:00:00Z"}, "2026-02-02T00:00:00Z"},
		{"minutes by units", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 45, 0), IntervalMinute, 15,
			[]string{"2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"}, "2026-01-01T01:00:00Z"},
		{"custom seconds", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 100), IntervalCustom, 45,
			[]string{"2026-01-01T00:00:00Z", "2026-01-01T00:00:45Z", "2026-01-01T00:01:30Z"}, "2026-01-01T00:02:15Z"},
		{"seconds", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 2), IntervalSecond, 1,
			[]string{"2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"}, "2026-01-01T00:00:03Z"},
		{"zone converted to UTC", time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)), utc(2026, 1, 2, 0, 0, 0), IntervalDay, 1,
			[]string{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"}, "2026-01-03T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ivs, err := Intervals(tc.start, tc.end, tc.typ, tc.units)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(starts(t, ivs), " "); got != strings.Join(tc.want, " ") {
				t.Fatalf("dates\n got %s\nwant %s", got, strings.Join(tc.want, " "))
			}
			for i := 1; i < len(ivs); i++ {
				if !ivs[i-1].End.Equal(ivs[i].Start) {
					t.Fatalf("interval %d ends at %s, the next starts at %s", i-1, ivs[i-1].End, ivs[i].Start)
				}
			}
			if last := ivs[len(ivs)-1].End.Format(time.RFC3339); last != tc.lastEnd {
				t.Fatalf("last interval ends at %s, want %s", last, tc.lastEnd)
			}
		})
	}
}

func TestIntervalsCap(t *testing.T) {
	start := utc(2026, 1, 1, 0, 0, 0)
	ivs, err := Intervals(start, start.Add((MaxDates-1)*time.Minute), IntervalMinute, 1)
	if err != nil || len(ivs) != MaxDates {
		t.Fatalf("%d dates: %d (%v)", MaxDates, len(ivs), err)
	}
	if _, err := Intervals(start, start.Add(MaxDates*time.Minute), IntervalMinute, 1); err == nil || !strings.Contains(err.Error(), "more than 10000") {
		t.Fatalf("%d dates: %v, want an error", MaxDates+1, err)
	}
	// A huge step is one date, not an overflow that wraps around.
	ivs, err = Intervals(start, utc(2300, 1, 1, 0, 0, 0), IntervalCustom, 1<<62)
	if err != nil || len(ivs) != 1 {
		t.Fatalf("huge custom step: %v (%v), want one date", starts(t, ivs), err)
	}
	for _, bad := range []struct {
		typ   string
		units int
		end   time.Time
	}{{IntervalDay, 0, start}, {"fortnight", 1, start}, {IntervalDay, 1, start.Add(-time.Second)}} {
		if _, err := Intervals(start, bad.end, bad.typ, bad.units); err == nil {
			t.Errorf("Intervals(%s, %d, end %s) accepted", bad.typ, bad.units, bad.end)
		}
	}
}

func fields(t *testing.T, err error) []string {
	t.Helper()
	var ve validation.Errors
	if err == nil {
		return nil
	}
	if !errors.As(err, &ve) {
		t.Fatalf("not a validation error: %v", err)
	}
	out := make([]string, len(ve))
	for i, fe := range ve {
		out[i] = fe.Field
	}
	return out
}

func TestValidate(t *testing.T) {
	one, zero := 1, 0
	start, end := utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 5, 0, 0, 0)
	valid := func() *Backfill {
		s, e, u := start, end, 1
		return &Backfill{Name: "b", StartDatetime: &s, EndDatetime: &e, IntervalType: IntervalDay, IntervalUnits: &u}
	}
	for _, tc := range []struct {
		name     string
		change   func(b *Backfill)
		forStart bool
		want     string
	}{
		{"valid", func(*Backfill) {}, true, ""},
		{"a draft without range or interval", func(b *Backfill) { b.StartDatetime, b.EndDatetime, b.IntervalType, b.IntervalUnits = nil, nil, "", nil }, false, ""},
		{"a start needs range and interval", func(b *Backfill) { b.StartDatetime, b.EndDatetime, b.IntervalType, b.IntervalUnits = nil, nil, "", nil }, true,
			"backfill.start_datetime backfill.end_datetime backfill.interval_type backfill.interval_units"},
		{"name", func(b *Backfill) { b.Name = "" }, false, "backfill.name"},
		{"long name", func(b *Backfill) { b.Name = strings.Repeat("n", MaxNameLength+1) }, false, "backfill.name"},
		{"end before start", func(b *Backfill) { e := start.Add(-time.Hour); b.EndDatetime = &e }, false, "backfill.end_datetime"},
		{"units below 1", func(b *Backfill) { b.IntervalUnits = &zero }, false, "backfill.interval_units"},
		{"unknown interval type", func(b *Backfill) { b.IntervalType = "fortnight" }, false, "backfill.interval_type"},
		{"too many dates", func(b *Backfill) { b.IntervalType, b.IntervalUnits = IntervalSecond, &one }, false, "backfill.end_datetime"},
		{"run limit", func(b *Backfill) { b.Settings = map[string]any{SettingPipelineRunLimit: 1.5} }, false, "backfill.settings.pipeline_run_limit"},
		{"run limit type", func(b *Backfill) { b.Settings = map[string]any{SettingPipelineRunLimit: "2"} }, false, "backfill.settings.pipeline_run_limit"},
		{"several at once", func(b *Backfill) { b.Name, b.IntervalUnits, b.IntervalType = "", &zero, "x" }, false,
			"backfill.name backfill.interval_type backfill.interval_units"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			tc.change(b)
			b.Normalize()
			if got := strings.Join(fields(t, b.Validate("backfill", tc.forStart)), " "); got != tc.want {
				t.Fatalf("fields %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunVariables(t *testing.T) {
	b := &Backfill{Variables: map[string]any{"k": "v", "ds": "overridden"}}
	v := b.RunVariables(Interval{Start: utc(2026, 1, 2, 3, 0, 0), End: utc(2026, 1, 3, 3, 0, 0)})
	want := map[string]any{"k": "v", "ds": "2026-01-02", "hr": "03", "execution_date": "2026-01-02T03:00:00Z",
		"interval_start_datetime": "2026-01-02T03:00:00Z", "interval_end_datetime": "2026-01-03T03:00:00Z", "interval_seconds": int64(86400)}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %v, want %v", k, v[k], w)
		}
	}
	if len(v) != len(want) {
		t.Errorf("variables %v", v)
	}
}

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		counts map[run.Status]int64
		total  int64
		want   Status
		done   bool
	}{
		{map[run.Status]int64{run.StatusCompleted: 5}, 5, StatusCompleted, true},
		{map[run.Status]int64{run.StatusCompleted: 4}, 5, StatusNone, false}, // a run not created yet
		{map[run.Status]int64{run.StatusCompleted: 4, run.StatusRunning: 1}, 5, StatusNone, false},
		{map[run.Status]int64{run.StatusCompleted: 3, run.StatusFailed: 1, run.StatusCancelled: 1}, 5, StatusFailed, true},
		{map[run.Status]int64{run.StatusFailed: 1, run.StatusInitial: 1}, 2, StatusNone, false},
		{map[run.Status]int64{run.StatusCompleted: 1, run.StatusCancelled: 1}, 2, StatusCancelled, true},
		{map[run.Status]int64{}, 0, StatusNone, false},
	} {
		got, done := Outcome(tc.counts, tc.total)
		if got != tc.want || done != tc.done {
			t.Errorf("Outcome(%v, %d) = %q %v, want %q %v", tc.counts, tc.total, got, done, tc.want, tc.done)
		}
	}
}
