package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/runyard/runyard/libs/backfill"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// countRunsQuery counts the runs f selects. The totals kept in run_counts have no backfill
// column, so the runs of a backfill are counted over the index runs_by_backfill (or
// runs_by_backfill_status): a backfill has at most backfill.MaxDates runs, so counting them
// is an index range of bounded size. Nor has it run types or start times: those counts are
// index ranges too (runsByTypeOrStartCounted).
func countRunsQuery(f store.RunFilter, w *where) string {
	if f.BackfillID != 0 || runsByTypeOrStartCounted(f) {
		return `SELECT count(*) FROM pipeline_runs` + w.String()
	}
	return `SELECT coalesce(sum(n), 0) FROM run_counts` + w.String()
}

// CreateBackfill inserts b, whose ID the caller allocated.
func (s *Store) CreateBackfill(ctx context.Context, b *backfill.Backfill) error {
	doc, err := encode(b)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO backfills (id, space, pipeline_uuid, created_at, version, doc) VALUES (?, ?, ?, ?, ?, ?)`,
		b.ID, b.Space, b.PipelineUUID, b.CreatedAt.UnixMilli(), b.Version, doc)
	return mapErr(err, fmt.Sprintf("create backfill %d", b.ID))
}

// GetBackfill returns the backfill id, in whichever space it is.
func (s *Store) GetBackfill(ctx context.Context, id int64) (*backfill.Backfill, error) {
	return getDoc[backfill.Backfill](ctx, s.r, fmt.Sprintf("get backfill %d", id), `SELECT doc FROM backfills WHERE id = ?`, id)
}

func backfillFilter(f store.BackfillFilter) *where {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("pipeline_uuid = ?", f.PipelineUUID, f.PipelineUUID != "")
	return &w
}

func listBackfillsQuery(w *where, pg store.Page) string {
	return `SELECT doc FROM backfills` + w.String() + ` ORDER BY created_at DESC, id DESC` + limitClause(pg)
}

// ListBackfills returns a page of backfills, newest first, and their total count.
func (s *Store) ListBackfills(ctx context.Context, f store.BackfillFilter, pg store.Page) ([]backfill.Backfill, int64, error) {
	w := backfillFilter(f)
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM backfills`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count backfills")
	}
	bs, err := listDocs[backfill.Backfill](ctx, s.r, "list backfills", listBackfillsQuery(w, pg), w.args...)
	return bs, total, err
}

// UpdateBackfill applies fn to the stored backfill and writes the result if fn returns nil.
func (s *Store) UpdateBackfill(ctx context.Context, id int64, fn func(*backfill.Backfill) error) (*backfill.Backfill, error) {
	return update(ctx, s, fmt.Sprintf("update backfill %d", id), `SELECT doc FROM backfills WHERE id = ?`, []any{id}, fn,
		func(tx *sql.Tx, b *backfill.Backfill) error {
			b.Version++
			b.UpdatedAt = now()
			doc, err := encode(b)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE backfills SET version = ?, doc = ? WHERE id = ?`, b.Version, doc, id)
			return err
		})
}

// DeleteBackfill removes the backfill id. Its runs stay, with their backfill id.
func (s *Store) DeleteBackfill(ctx context.Context, id int64) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM backfills WHERE id = ?`, id))(fmt.Sprintf("delete backfill %d", id))
}

// backfillRunCountsQuery groups a backfill's runs by status over runs_by_backfill_status.
const backfillRunCountsQuery = `SELECT status, count(*) FROM pipeline_runs WHERE backfill_id = ? GROUP BY status`

// BackfillRunCounts returns how many runs of backfill id are in each status; statuses
// without runs are absent.
func (s *Store) BackfillRunCounts(ctx context.Context, id int64) (map[run.Status]int64, error) {
	what := fmt.Sprintf("count runs of backfill %d", id)
	rows, err := s.r.QueryContext(ctx, backfillRunCountsQuery, id)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer rows.Close()
	out := map[run.Status]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, mapErr(err, what)
		}
		out[run.Status(st)] = n
	}
	return out, mapErr(rows.Err(), what)
}
