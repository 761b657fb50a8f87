package schedule_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/schedule"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func ptr(t time.Time) *time.Time { return &t }

func timetable(t *testing.T, sc schedule.Schedule) *schedule.Timetable {
	t.Helper()
	tt, err := schedule.NewTimetable(&sc)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// ticksFrom lists the n ticks after from, as RFC 3339 in UTC.
func ticksFrom(tt *schedule.Timetable, from time.Time, n int) []string {
	var out []string
	for t, ok := tt.Next(from); ok && len(out) < n; t, ok = tt.Next(t) {
		out = append(out, t.Format(time.RFC3339))
	}
	return out
}

func TestTimetableNext(t *testing.T) {
	t.Parallel()
	from := utc("2026-01-14T10:20:00Z") // a Wednesday
	tests := []struct {
		name     string
		sc       schedule.Schedule
		from     time.Time
		want     []string
		wantNone bool
	}{
		{name: "hourly", sc: schedule.Schedule{ScheduleInterval: "@hourly"}, from: from,
			want: []string{"2026-01-14T11:00:00Z", "2026-01-14T12:00:00Z", "2026-01-14T13:00:00Z"}},
		{name: "daily", sc: schedule.Schedule{ScheduleInterval: "@daily"}, from: from,
			want: []string{"2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"}},
		{name: "weekly starts on Monday", sc: schedule.Schedule{ScheduleInterval: "@weekly"}, from: from,
			want: []string{"2026-01-19T00:00:00Z", "2026-01-26T00:00:00Z"}},
		{name: "monthly", sc: schedule.Schedule{ScheduleInterval: "@monthly"}, from: from,
			want: []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
		{name: "cron", sc: schedule.Schedule{ScheduleInterval: "*/20 10-11 * * 3"}, from: from,
			want: []string{"2026-01-14T10:40:00Z", "2026-01-14T11:00:00Z", "2026-01-14T11:20:00Z", "2026-01-14T11:40:00Z", "2026-01-21T10:00:00Z"}},
		{name: "strictly after a tick", sc: schedule.Schedule{ScheduleInterval: "@hourly"}, from: utc("2026-01-14T11:00:00Z"),
			want: []string{"2026-01-14T12:00:00Z"}},
		{name: "daily in Tokyo", sc: schedule.Schedule{ScheduleInterval: "@daily", Timezone: "Asia/Tokyo"}, from: from,
			want: []string{"2026-01-14T15:00:00Z", "2026-01-15T15:00:00Z"}},
		{name: "hourly in a half-hour zone", sc: schedule.Schedule{ScheduleInterval: "@hourly", Timezone: "Asia/Kolkata"}, from: from,
			want: []string{"2026-01-14T10:30:00Z", "2026-01-14T11:30:00Z"}},
		{name: "CRON_TZ wins over the timezone field", sc: schedule.Schedule{ScheduleInterval: "CRON_TZ=Asia/Tokyo 0 0 * * *", Timezone: "Europe/Paris"}, from: from,
			want: []string{"2026-01-14T15:00:00Z"}},
		{name: "start time skips earlier ticks", sc: schedule.Schedule{ScheduleInterval: "@hourly", StartTime: ptr(utc("2026-01-14T13:30:00Z"))}, from: from,
			want: []string{"2026-01-14T14:00:00Z", "2026-01-14T15:00:00Z"}},
		{name: "a tick at the start time is due", sc: schedule.Schedule{ScheduleInterval: "@hourly", StartTime: ptr(utc("2026-01-14T14:00:00Z"))}, from: from,
			want: []string{"2026-01-14T14:00:00Z", "2026-01-14T15:00:00Z"}},
		{name: "once at the start time", sc: schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(utc("2026-01-14T13:30:00.1234Z"))}, from: from,
			want: []string{"2026-01-14T13:30:00Z"}},
		{name: "once without start time: when enabled", sc: schedule.Schedule{ScheduleInterval: "@once", LastEnabledAt: ptr(utc("2026-01-14T12:00:00Z")), CreatedAt: utc("2026-01-01T00:00:00Z")}, from: from,
			want: []string{"2026-01-14T12:00:00Z"}},
		{name: "once already past", sc: schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(utc("2026-01-14T10:00:00Z"))}, from: from, wantNone: true},
		{name: "always on never ticks", sc: schedule.Schedule{ScheduleInterval: "@always_on"}, from: from, wantNone: true},
		{name: "a date that never comes", sc: schedule.Schedule{ScheduleInterval: "0 0 30 2 *"}, from: from, wantNone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ticksFrom(timetable(t, tc.sc), tc.from, len(tc.want)+1)
			if tc.wantNone {
				if len(got) != 0 {
					t.Fatalf("ticks = %v, want none", got)
				}
				return
			}
			if len(got) > len(tc.want) {
				got = got[:len(tc.want)]
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ticks = %v\nwant    %v", got, tc.want)
			}
		})
	}
}

// TestTimetableDST checks the ticks around Europe/Paris's changes of 2026: clocks go
// forward at 02:00 on 29 March (CET +1 → CEST +2) and back at 03:00 on 25 October.
func TestTimetableDST(t *testing.T) {
	t.Parallel()
	paris := func(interval string) schedule.Schedule {
		return schedule.Schedule{ScheduleInterval: interval, Timezone: "Europe/Paris"}
	}
	tests := []struct {
		name string
		sc   schedule.Schedule
		from time.Time
		want []string
	}{
		{name: "daily at midnight, spring", sc: paris("@daily"), from: utc("2026-03-27T12:00:00Z"),
			want: []string{"2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"}},
		{name: "daily at midnight, autumn", sc: paris("@daily"), from: utc("2026-10-23T12:00:00Z"),
			want: []string{"2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z"}},
		// Hourly follows elapsed time: the hour clocks skip does not exist, the hour they
		// repeat runs twice.
		{name: "hourly, spring", sc: paris("@hourly"), from: utc("2026-03-28T23:30:00Z"),
			want: []string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		{name: "hourly, autumn", sc: paris("@hourly"), from: utc("2026-10-24T23:30:00Z"),
			want: []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
		// A fixed local time runs once a day: at the end of the skipped hour in spring (03:00
		// CEST), and at its first occurrence only in autumn (02:30 CEST, not 02:30 CET).
		{name: "02:30 daily, spring", sc: paris("30 2 * * *"), from: utc("2026-03-27T12:00:00Z"),
			want: []string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{name: "02:30 daily, autumn", sc: paris("30 2 * * *"), from: utc("2026-10-24T12:00:00Z"),
			want: []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{name: "02:00 and 03:00 in spring collapse onto one tick", sc: paris("0 2,3 * * *"), from: utc("2026-03-28T23:30:00Z"),
			want: []string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}},
		// Lord Howe Island moves its clocks by 30 minutes (+10:30 → +11 on 4 October 2026).
		{name: "daily, 30-minute change", sc: schedule.Schedule{ScheduleInterval: "@daily", Timezone: "Australia/Lord_Howe"}, from: utc("2026-10-02T00:00:00Z"),
			want: []string{"2026-10-02T13:30:00Z", "2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ticksFrom(timetable(t, tc.sc), tc.from, len(tc.want)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ticks = %v\nwant    %v", got, tc.want)
			}
		})
	}

	t.Run("interval lengths across the changes", func(t *testing.T) {
		t.Parallel()
		tt := timetable(t, paris("@daily"))
		for tick, want := range map[string]time.Duration{
			"2026-03-28T23:00:00Z": 23 * time.Hour, // 29 March has 23 hours
			"2026-10-24T22:00:00Z": 25 * time.Hour, // 25 October has 25
			"2026-10-25T23:00:00Z": 24 * time.Hour,
		} {
			start, end, ok := tt.Interval(utc(tick))
			if !ok || !start.Equal(utc(tick)) || end.Sub(start) != want {
				t.Errorf("interval of %s = %s–%s (%v), want %v long", tick, start, end, ok, want)
			}
		}
	})
}

// TestTimetableLatest checks Latest against Next over a year of ticks, DST changes included:
// the latest tick at a tick is that tick, and just before it the tick before.
func TestTimetableLatest(t *testing.T) {
	t.Parallel()
	for _, sc := range []schedule.Schedule{
		{ScheduleInterval: "@hourly", Timezone: "Europe/Paris"},
		{ScheduleInterval: "@daily", Timezone: "America/New_York"},
		{ScheduleInterval: "30 2 * * *", Timezone: "Europe/Paris"},
		{ScheduleInterval: "@weekly", Timezone: "Australia/Lord_Howe"},
		{ScheduleInterval: "@monthly"},
		{ScheduleInterval: "0 0 29 2 *"},
	} {
		t.Run(sc.ScheduleInterval+" "+sc.Timezone, func(t *testing.T) {
			t.Parallel()
			tt := timetable(t, sc)
			from := utc("2026-01-01T00:00:00Z")
			prev, ok := tt.Latest(from)
			if !ok {
				t.Fatal("no tick before 2026")
			}
			for tick, ok := tt.Next(from); ok && tick.Year() < 2029; tick, ok = tt.Next(tick) {
				if !tick.After(prev) {
					t.Fatalf("tick %s does not follow %s", tick, prev)
				}
				if got, ok := tt.Latest(tick); !ok || !got.Equal(tick) {
					t.Fatalf("Latest(%s) = %s %v, want the tick itself", tick, got, ok)
				}
				if got, ok := tt.Latest(tick.Add(-time.Millisecond)); !ok || !got.Equal(prev) {
					t.Fatalf("Latest(just before %s) = %s %v, want %s", tick, got, ok, prev)
				}
				prev = tick
			}
		})
	}

	t.Run("start time", func(t *testing.T) {
		t.Parallel()
		tt := timetable(t, schedule.Schedule{ScheduleInterval: "@daily", StartTime: ptr(utc("2026-01-10T12:00:00Z"))})
		if got, ok := tt.Latest(utc("2026-01-10T23:59:00Z")); ok {
			t.Fatalf("Latest before the first tick after the start = %s, want none", got)
		}
		if got, ok := tt.Latest(utc("2026-01-12T05:00:00Z")); !ok || !got.Equal(utc("2026-01-12T00:00:00Z")) {
			t.Fatalf("Latest = %s %v", got, ok)
		}
	})
	t.Run("once", func(t *testing.T) {
		t.Parallel()
		tt := timetable(t, schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(utc("2026-01-10T12:00:00Z"))})
		if _, ok := tt.Latest(utc("2026-01-10T11:59:59Z")); ok {
			t.Fatal("once is not due before its start time")
		}
		if got, ok := tt.Latest(utc("2027-01-01T00:00:00Z")); !ok || !got.Equal(utc("2026-01-10T12:00:00Z")) {
			t.Fatalf("Latest = %s %v", got, ok)
		}
		if _, _, ok := tt.Interval(utc("2026-01-10T12:00:00Z")); ok {
			t.Fatal("once has no interval end")
		}
	})
	t.Run("always on", func(t *testing.T) {
		t.Parallel()
		if _, ok := timetable(t, schedule.Schedule{ScheduleInterval: "@always_on"}).Latest(utc("2027-01-01T00:00:00Z")); ok {
			t.Fatal("always_on is never due")
		}
	})
}

func TestTimetableBetween(t *testing.T) {
	t.Parallel()
	tt := timetable(t, schedule.Schedule{ScheduleInterval: "@hourly", StartTime: ptr(utc("2026-01-01T02:00:00Z"))})
	got := tt.Between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T05:00:00Z"), 10)
	want := []time.Time{utc("2026-01-01T02:00:00Z"), utc("2026-01-01T03:00:00Z"), utc("2026-01-01T04:00:00Z"), utc("2026-01-01T05:00:00Z")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Between = %v, want %v (after excluded, now included, none before the start)", got, want)
	}
	if got := tt.Between(utc("2026-01-01T02:00:00Z"), utc("2026-01-01T05:00:00Z"), 2); fmt.Sprint(got) != fmt.Sprint(want[1:3]) {
		t.Fatalf("bounded Between = %v, want the oldest two %v", got, want[1:3])
	}
	if got := tt.Between(utc("2026-01-01T05:00:00Z"), utc("2026-01-01T05:59:59Z"), 10); len(got) != 0 {
		t.Fatalf("Between with no tick = %v", got)
	}
}

func TestNewTimetableErrors(t *testing.T) {
	t.Parallel()
	for _, sc := range []schedule.Schedule{
		{ScheduleInterval: ""},
		{ScheduleInterval: "@fortnightly"},
		{ScheduleInterval: "61 * * * *"},
		{ScheduleInterval: "@daily", Timezone: "Mars/Olympus_Mons"},
	} {
		if _, err := schedule.NewTimetable(&sc); err == nil {
			t.Errorf("NewTimetable(%q, %q) succeeded", sc.ScheduleInterval, sc.Timezone)
		}
	}
}

func TestTimetableSeconds(t *testing.T) {
	t.Parallel()
	tt, err := schedule.NewTimetable(&schedule.Schedule{ID: 1, ScheduleType: schedule.TypeTime, ScheduleInterval: "* * * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 500_000_000, time.UTC)
	next, ok := tt.Next(at)
	if !ok || !next.Equal(time.Date(2026, 3, 1, 10, 0, 1, 0, time.UTC)) {
		t.Fatalf("Next(%s) = %s, want the next second", at, next)
	}
	latest, ok := tt.Latest(at)
	if !ok || !latest.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("Latest(%s) = %s, want the current second", at, latest)
	}
	if got := tt.Between(at.Add(-10*time.Second), at, 100); len(got) != 10 {
		t.Fatalf("Between over 10 s = %d ticks, want 10", len(got))
	}
}
