package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// testScheduling covers the reads of the time-schedule leader: schedules by type and status
// across spaces, and the unfinished runs of every space.
func testScheduling(t *testing.T, s Store) {
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, sc := range []struct {
		space, typ, status string
	}{
		{"s1", schedule.TypeTime, schedule.StatusActive},   // 1
		{"s2", schedule.TypeTime, schedule.StatusActive},   // 2
		{"s1", schedule.TypeTime, schedule.StatusInactive}, // 3
		{"s1", schedule.TypeAPI, schedule.StatusActive},    // 4
		{"s3", schedule.TypeTime, schedule.StatusActive},   // 5
	} {
		must(t, s.CreateSchedule(c, &schedule.Schedule{ID: int64(i + 1), Space: sc.space, PipelineUUID: "p1", Name: fmt.Sprint("t", i),
			ScheduleType: sc.typ, ScheduleInterval: "@hourly", Status: sc.status, Variables: map[string]any{}, Settings: map[string]any{}, CreatedAt: now, UpdatedAt: now}))
	}
	scheduleIDs := func(f store.ScheduleFilter, pg store.Page) ([]int64, int64) {
		t.Helper()
		list, total, err := s.ListSchedules(c, f, pg)
		must(t, err)
		out := []int64{}
		for _, sc := range list {
			out = append(out, sc.ID)
		}
		return out, total
	}
	activeTime := store.ScheduleFilter{Type: schedule.TypeTime, Status: schedule.StatusActive}
	if got, total := scheduleIDs(activeTime, store.Page{Limit: 10}); total != 3 || fmt.Sprint(got) != "[5 2 1]" {
		t.Fatalf("active time schedules of every space = %d %v, want 3 [5 2 1]", total, got)
	}
	if got, total := scheduleIDs(activeTime, store.Page{Limit: 1, Offset: 1}); total != 3 || fmt.Sprint(got) != "[2]" {
		t.Fatalf("second page = %d %v, want 3 [2]", total, got)
	}
	if got, total := scheduleIDs(store.ScheduleFilter{Space: "s1", Type: schedule.TypeTime}, store.Page{Limit: 10}); total != 2 || fmt.Sprint(got) != "[3 1]" {
		t.Fatalf("time schedules of s1 = %d %v, want 2 [3 1]", total, got)
	}
	if got, total := scheduleIDs(store.ScheduleFilter{}, store.Page{Limit: 10}); total != 5 || len(got) != 5 {
		t.Fatalf("every schedule = %d %v", total, got)
	}
	// The filter reads the current status: an update moves a schedule in or out.
	_, err := s.UpdateSchedule(c, 2, func(sc *schedule.Schedule) error { sc.Status = schedule.StatusInactive; return nil })
	must(t, err)
	_, err = s.UpdateSchedule(c, 3, func(sc *schedule.Schedule) error { sc.Status = schedule.StatusActive; return nil })
	must(t, err)
	if got, total := scheduleIDs(activeTime, store.Page{Limit: 10}); total != 3 || fmt.Sprint(got) != "[5 3 1]" {
		t.Fatalf("after updates = %d %v, want 3 [5 3 1]", total, got)
	}

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		id     int64
		space  string
		status run.Status
		at     time.Duration
	}{
		{1, "s1", run.StatusRunning, 3 * time.Hour},
		{2, "s2", run.StatusInitial, time.Hour},
		{3, "s1", run.StatusCompleted, 0},
		{4, "s3", run.StatusRunning, 2 * time.Hour},
		{5, "s1", run.StatusFailed, time.Hour},
		{6, "s1", run.StatusRunning, time.Hour}, // same date as 2: by id
	} {
		must(t, s.CreateRun(c, newRun(r.id, r.space, "p1", 1, r.status, base.Add(r.at))))
	}
	active := func(limit int) string {
		t.Helper()
		runs, err := s.ActiveRuns(c, limit)
		must(t, err)
		return fmt.Sprint(ids(runs))
	}
	if got := active(10); got != "[2 6 4 1]" {
		t.Fatalf("active runs = %s, want [2 6 4 1] (oldest execution date first, then id)", got)
	}
	if got := active(2); got != "[2 6]" {
		t.Fatalf("two oldest active runs = %s, want [2 6]", got)
	}
	if got := active(0); got != "[2 6 4 1]" {
		t.Fatalf("unbounded active runs = %s", got)
	}
	_, err = s.UpdateRun(c, 6, func(r *run.PipelineRun) error { r.Status = run.StatusCompleted; return nil })
	must(t, err)
	_, err = s.UpdateRun(c, 3, func(r *run.PipelineRun) error { r.Status = run.StatusRunning; return nil })
	must(t, err)
	if got := active(10); got != "[3 2 4 1]" {
		t.Fatalf("after status changes = %s, want [3 2 4 1]", got)
	}
	// A run mirrored from Airflow is advanced by Airflow: executors never see it, whatever
	// its status.
	mirrored := newRun(7, "s1", "p1", 0, run.StatusRunning, base)
	mirrored.Provider, mirrored.ConnectorID, mirrored.ProviderRunID = "airflow", "con_1", "manual__1"
	must(t, s.CreateRun(c, mirrored))
	if got := active(10); got != "[3 2 4 1]" {
		t.Fatalf("with a mirrored running run = %s, want [3 2 4 1]", got)
	}
	if got := active(1); got != "[3]" {
		t.Fatalf("oldest active run with a mirrored one older = %s, want [3]", got)
	}
}
