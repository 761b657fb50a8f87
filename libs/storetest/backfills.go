package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/backfill"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// BackfillStore is what the suite exercises of backfills, part of Store.
type BackfillStore interface {
	CreateBackfill(ctx context.Context, b *backfill.Backfill) error
	GetBackfill(ctx context.Context, id int64) (*backfill.Backfill, error)
	// ListBackfills orders newest created first.
	ListBackfills(ctx context.Context, f store.BackfillFilter, pg store.Page) ([]backfill.Backfill, int64, error)
	UpdateBackfill(ctx context.Context, id int64, fn func(*backfill.Backfill) error) (*backfill.Backfill, error)
	DeleteBackfill(ctx context.Context, id int64) error
	// BackfillRunCounts counts a backfill's runs by status; statuses without runs are absent.
	BackfillRunCounts(ctx context.Context, id int64) (map[run.Status]int64, error)
}

func newBackfill(id int64, space, pipelineUUID string, created time.Time) *backfill.Backfill {
	start := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 3, 0)
	units := 1
	return &backfill.Backfill{
		ID: id, Space: space, Name: fmt.Sprint("bf", id), PipelineUUID: pipelineUUID, StartDatetime: &start, EndDatetime: &end,
		IntervalType: backfill.IntervalMonth, IntervalUnits: &units, Variables: map[string]any{"k": "v"},
		Settings: map[string]any{backfill.SettingPipelineRunLimit: 2.0}, CreatedAt: created, UpdatedAt: created,
	}
}

// testBackfills covers backfill records and the reads of a backfill's runs: the run list
// filtered by backfill and the counts by status.
func testBackfills(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range []string{"p1", "p2", "p1"} {
		must(t, s.CreateBackfill(c, newBackfill(int64(i+1), "s1", p, base.Add(time.Duration(i)*time.Minute))))
	}
	must(t, s.CreateBackfill(c, newBackfill(4, "s2", "p1", base.Add(time.Hour))))
	wantErr(t, s.CreateBackfill(c, newBackfill(1, "s1", "p1", base)), store.ErrDuplicate)

	b, err := s.GetBackfill(c, 1)
	must(t, err)
	if b.Name != "bf1" || b.PipelineUUID != "p1" || b.Status != backfill.StatusNone || b.PipelineScheduleID != nil ||
		b.StartDatetime == nil || !b.StartDatetime.Equal(time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)) ||
		b.IntervalUnits == nil || *b.IntervalUnits != 1 || b.Variables["k"] != "v" || b.Settings[backfill.SettingPipelineRunLimit] != 2.0 {
		t.Fatalf("backfill read back wrong: %+v", b)
	}
	// What a start derives from the stored record must not depend on the store.
	ivs, err := b.Intervals()
	must(t, err)
	if len(ivs) != 4 || !ivs[1].Start.Equal(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("intervals of the stored backfill: %v", ivs)
	}
	_, err = s.GetBackfill(c, 99)
	wantErr(t, err, store.ErrNotFound)

	backfillIDs := func(f store.BackfillFilter, pg store.Page) ([]int64, int64) {
		t.Helper()
		list, total, err := s.ListBackfills(c, f, pg)
		must(t, err)
		out := []int64{}
		for _, b := range list {
			out = append(out, b.ID)
		}
		return out, total
	}
	if got, total := backfillIDs(store.BackfillFilter{Space: "s1"}, store.Page{Limit: 2}); total != 3 || fmt.Sprint(got) != "[3 2]" {
		t.Fatalf("backfills of s1 = %d %v, want 3 [3 2]", total, got)
	}
	if got, total := backfillIDs(store.BackfillFilter{Space: "s1", PipelineUUID: "p1"}, store.Page{Limit: 10, Offset: 1}); total != 2 || fmt.Sprint(got) != "[1]" {
		t.Fatalf("backfills of s1/p1 from 1 = %d %v, want 2 [1]", total, got)
	}

	// Concurrent closures must all apply.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateBackfill(c, 2, func(b *backfill.Backfill) error { b.Variables[fmt.Sprint("w", i)] = true; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sid := int64(7)
	up, err := s.UpdateBackfill(c, 2, func(b *backfill.Backfill) error {
		b.Status, b.StartedAt, b.PipelineScheduleID, b.TotalRunCount = backfill.StatusRunning, &now, &sid, 4
		return nil
	})
	must(t, err)
	if up.Version != 7 || len(up.Variables) != 7 || up.Status != backfill.StatusRunning {
		t.Fatalf("after 7 updates: %+v", up)
	}
	sentinel := errors.New("refused")
	_, err = s.UpdateBackfill(c, 2, func(b *backfill.Backfill) error { b.Name = "lost"; return sentinel })
	wantErr(t, err, sentinel)
	b, err = s.GetBackfill(c, 2)
	must(t, err)
	if b.Name != "bf2" || b.PipelineScheduleID == nil || *b.PipelineScheduleID != 7 || b.StartedAt == nil || !b.StartedAt.Equal(now) || b.TotalRunCount != 4 {
		t.Fatalf("backfill after updates: %+v", b)
	}
	_, err = s.UpdateBackfill(c, 99, func(*backfill.Backfill) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	// Runs of backfill 2 (one in another space must not count for s1's list), and runs of
	// no backfill.
	bf := func(id int64) *int64 { return &id }
	for i, st := range []run.Status{run.StatusCompleted, run.StatusCompleted, run.StatusRunning, run.StatusFailed, run.StatusInitial} {
		r := newRun(int64(i+1), "s1", "p2", 7, st, base.Add(time.Duration(i)*time.Hour))
		r.BackfillID, r.RunType = bf(2), run.TypeBackfill
		must(t, s.CreateRun(c, r))
	}
	other := newRun(6, "s1", "p2", 7, run.StatusCompleted, base)
	must(t, s.CreateRun(c, other))
	alien := newRun(7, "s2", "p2", 7, run.StatusCompleted, base)
	alien.BackfillID = bf(2)
	must(t, s.CreateRun(c, alien))

	runs, total, err := s.ListRuns(c, store.RunFilter{Space: "s1", BackfillID: 2}, store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 5 || fmt.Sprint(ids(runs)) != "[4 3]" {
		t.Fatalf("runs of backfill 2 = %d %v, want 5 [4 3]", total, ids(runs))
	}
	runs, total, err = s.ListRuns(c, store.RunFilter{Space: "s1", BackfillID: 2, Status: run.StatusCompleted}, store.Page{Limit: 10})
	must(t, err)
	if total != 2 || fmt.Sprint(ids(runs)) != "[2 1]" {
		t.Fatalf("completed runs of backfill 2 = %d %v, want 2 [2 1]", total, ids(runs))
	}
	if runs[0].BackfillID == nil || *runs[0].BackfillID != 2 || runs[0].RunType != run.TypeBackfill {
		t.Fatalf("backfill run read back wrong: %+v", runs[0])
	}

	counts, err := s.BackfillRunCounts(c, 2)
	must(t, err)
	want := map[run.Status]int64{run.StatusCompleted: 3, run.StatusRunning: 1, run.StatusFailed: 1, run.StatusInitial: 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("run counts of backfill 2 = %v, want %v", counts, want)
	}
	// Counts follow status changes.
	_, err = s.UpdateRun(c, 5, func(r *run.PipelineRun) error { r.Status = run.StatusCancelled; return nil })
	must(t, err)
	_, err = s.UpdateRun(c, 3, func(r *run.PipelineRun) error { r.Status = run.StatusCompleted; return nil })
	must(t, err)
	counts, err = s.BackfillRunCounts(c, 2)
	must(t, err)
	want = map[run.Status]int64{run.StatusCompleted: 4, run.StatusFailed: 1, run.StatusCancelled: 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("run counts of backfill 2 after updates = %v, want %v", counts, want)
	}
	if counts, err := s.BackfillRunCounts(c, 1); err != nil || len(counts) != 0 {
		t.Fatalf("run counts of a backfill without runs = %v (%v), want none", counts, err)
	}

	must(t, s.DeleteBackfill(c, 1))
	_, err = s.GetBackfill(c, 1)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteBackfill(c, 1), store.ErrNotFound)
	if _, total := backfillIDs(store.BackfillFilter{Space: "s1"}, store.Page{Limit: 10}); total != 2 {
		t.Fatalf("backfills of s1 after a delete: %d, want 2", total)
	}
}
