package sqlitestore

import (
	"context"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// activeRunsWhere selects unfinished runs. It repeats the WHERE term of the partial index
// runs_active (migration 5) word for word: SQLite uses a partial index only for a query whose
// WHERE clause contains the index's own term, and a bound parameter would not.
const activeRunsWhere = ` WHERE status IN ('initial', 'running')`

// activeRunsQuery lists unfinished native runs, oldest execution date first, from
// runs_active. Runs mirrored from a provider (provider set) are advanced by their provider,
// never by an executor, so they are left out.
func activeRunsQuery(limit int) string {
	return `SELECT doc FROM pipeline_runs` + activeRunsWhere + ` AND coalesce(json_extract(doc, '$.provider'), '') = ''` +
		` ORDER BY execution_date, id` + limitClause(store.Page{Limit: limit})
}

// ActiveRuns returns up to limit native runs whose status is initial or running, in every
// space, oldest execution date first; limit ≤ 0 returns them all.
func (s *Store) ActiveRuns(ctx context.Context, limit int) ([]run.PipelineRun, error) {
	return listDocs[run.PipelineRun](ctx, s.r, "list active runs", activeRunsQuery(limit))
}

// scheduleFilter is the WHERE clause of a schedule filter. Type and status are columns
// generated from the document (migration 5).
func scheduleFilter(f store.ScheduleFilter) *where {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("pipeline_uuid = ?", f.PipelineUUID, f.PipelineUUID != "")
	w.add("schedule_type = ?", f.Type, f.Type != "")
	w.add("status = ?", f.Status, f.Status != "")
	return &w
}

func listSchedulesQuery(w *where, pg store.Page) string {
	return `SELECT doc FROM pipeline_schedules` + w.String() + ` ORDER BY id DESC` + limitClause(pg)
}
