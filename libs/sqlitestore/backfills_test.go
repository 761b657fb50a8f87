package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// TestBackfillColumnCoversOlderRuns writes backfill runs into a database of the schema before
// backfills (5), then opens it with this build: the generated backfill_id column and its
// indexes cover rows written before they existed.
func TestBackfillColumnCoversOlderRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	old, err := openAt(ctx, filepath.Join(dir, FileName), 5)
	if err != nil {
		t.Fatal(err)
	}
	bf := int64(4)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, st := range []run.Status{run.StatusCompleted, run.StatusFailed, run.StatusCompleted} {
		r := &run.PipelineRun{ID: int64(i + 1), Space: "s", PipelineUUID: "p", PipelineScheduleID: 9, CommandID: string(rune('a' + i)),
			Status: st, ExecutionDate: at.AddDate(0, 0, i), RunType: run.TypeBackfill, BackfillID: &bf}
		if i == 2 {
			r.BackfillID, r.RunType = nil, run.TypeAPI
		}
		doc, err := encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.w.ExecContext(ctx, `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append(runColumns(r), doc)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir)
	runs, total, err := s.ListRuns(ctx, store.RunFilter{Space: "s", BackfillID: bf}, store.Page{Limit: 10})
	if err != nil || total != 2 || len(runs) != 2 || runs[0].ID != 2 || runs[1].ID != 1 {
		t.Fatalf("runs of backfill %d after migration: %d %v (%v), want runs 2 and 1", bf, total, ids(runs), err)
	}
	counts, err := s.BackfillRunCounts(ctx, bf)
	if err != nil || len(counts) != 2 || counts[run.StatusCompleted] != 1 || counts[run.StatusFailed] != 1 {
		t.Fatalf("run counts of backfill %d after migration: %v (%v)", bf, counts, err)
	}
}

func ids(runs []run.PipelineRun) []int64 {
	out := make([]int64, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}
