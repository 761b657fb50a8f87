package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// CreateRun inserts r; a run with the same command id is ErrDuplicate.
func (s *Store) CreateRun(ctx context.Context, r *run.PipelineRun) error {
	doc, err := encode(r)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, append(runColumns(r), doc)...)
	return mapErr(err, fmt.Sprintf("create run %d", r.ID))
}

// CreateBlockRuns inserts brs in one transaction; a block run whose (run, block) pair exists
// is skipped, so a retried creation completes what a crashed one began.
func (s *Store) CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error {
	if len(brs) == 0 {
		return nil
	}
	what := fmt.Sprintf("create block runs of run %d", brs[0].PipelineRunID)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO block_runs (id, space, pipeline_run_id, pipeline_uuid, block_uuid, version, doc, log)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline_run_id, block_uuid) DO NOTHING`)
	if err != nil {
		return mapErr(err, what)
	}
	defer stmt.Close()
	for i := range brs {
		br := &brs[i]
		doc, err := encode(br)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, br.ID, br.Space, br.PipelineRunID, br.PipelineUUID, br.BlockUUID, br.Version, doc, br.Log); err != nil {
			return mapErr(err, what)
		}
	}
	return mapErr(tx.Commit(), what)
}

// GetRun returns the run id, in whichever space it is.
func (s *Store) GetRun(ctx context.Context, id int64) (*run.PipelineRun, error) {
	return getDoc[run.PipelineRun](ctx, s.r, fmt.Sprintf("get run %d", id), `SELECT doc FROM pipeline_runs WHERE id = ?`, id)
}

// GetRunByCommand returns the run the command commandID created.
func (s *Store) GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error) {
	return getDoc[run.PipelineRun](ctx, s.r, "get run of command "+commandID, `SELECT doc FROM pipeline_runs WHERE command_id = ?`, commandID)
}

// runFilter is the WHERE clause of a run filter on pipeline_runs, or on run_counts, whose
// columns have the same names.
func runFilter(f store.RunFilter) *where {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("pipeline_schedule_id = ?", f.ScheduleID, f.ScheduleID != 0)
	w.add("pipeline_uuid = ?", f.PipelineUUID, f.PipelineUUID != "")
	w.add("status = ?", string(f.Status), f.Status != "")
	w.add("backfill_id = ?", f.BackfillID, f.BackfillID != 0)
	return &w
}

// ListRuns returns a page of runs, newest execution date first, and their total count.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error) {
	w := runFilter(f)
	var total int64
	if err := s.r.QueryRowContext(ctx, countRunsQuery(f, w), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count runs")
	}
	runs, err := listDocs[run.PipelineRun](ctx, s.r, "list runs", listRunsQuery(w, pg, f.OldestFirst), w.args...)
	return runs, total, err
}

func listRunsQuery(w *where, pg store.Page, oldestFirst bool) string {
	order := ` ORDER BY execution_date DESC, id DESC`
	if oldestFirst {
		order = ` ORDER BY execution_date, id`
	}
	return `SELECT doc FROM pipeline_runs` + w.String() + order + limitClause(pg)
}

// UpdateRun applies fn to the stored run and writes the result if fn returns nil.
func (s *Store) UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error) {
	return update(ctx, s, fmt.Sprintf("update run %d", id), `SELECT doc FROM pipeline_runs WHERE id = ?`, []any{id}, fn,
		func(tx *sql.Tx, r *run.PipelineRun) error {
			r.Version++
			r.UpdatedAt = now()
			doc, err := encode(r)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE pipeline_runs SET status = ?, execution_date = ?, version = ?, doc = ? WHERE id = ?`,
				string(r.Status), r.ExecutionDate.UnixMilli(), r.Version, doc, id)
			return err
		})
}

func blockRunFilter(f store.BlockRunFilter) *where {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("pipeline_run_id = ?", f.PipelineRunID, f.PipelineRunID != 0)
	w.add("pipeline_uuid = ?", f.PipelineUUID, f.PipelineUUID != "")
	return &w
}

// ListBlockRuns returns a page of block runs, newest first, and their total count.
func (s *Store) ListBlockRuns(ctx context.Context, f store.BlockRunFilter, pg store.Page) ([]run.BlockRun, int64, error) {
	w := blockRunFilter(f)
	var total int64
	var err error
	if f.PipelineRunID != 0 {
		// A run has at most a few hundred block runs: counting them is cheap.
		err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM block_runs`+w.String(), w.args...).Scan(&total)
	} else {
		cw := blockRunFilter(store.BlockRunFilter{Space: f.Space, PipelineUUID: f.PipelineUUID})
		err = s.r.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM block_run_counts`+cw.String(), cw.args...).Scan(&total)
	}
	if err != nil {
		return nil, 0, mapErr(err, "count block runs")
	}
	brs, err := listDocs[run.BlockRun](ctx, s.r, "list block runs", `SELECT doc FROM block_runs`+w.String()+` ORDER BY id DESC`+limitClause(pg), w.args...)
	return brs, total, err
}

// BlockRunsOf returns the block runs of the given runs, by run and then oldest first, without
// logs.
func (s *Store) BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error) {
	if len(runIDs) == 0 {
		return []run.BlockRun{}, nil
	}
	return listDocs[run.BlockRun](ctx, s.r, "block runs of runs",
		`SELECT doc FROM block_runs WHERE pipeline_run_id IN (`+placeholders(len(runIDs))+`) ORDER BY pipeline_run_id, id`, int64Args(runIDs)...)
}

// GetBlockRun returns the block run id with its log.
func (s *Store) GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error) {
	return getBlockRun(ctx, s.r, id)
}

func getBlockRun(ctx context.Context, db queryer, id int64) (*run.BlockRun, error) {
	what := fmt.Sprintf("get block run %d", id)
	br, err := getDoc[run.BlockRun](ctx, db, what, `SELECT doc FROM block_runs WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, `SELECT log FROM block_runs WHERE id = ?`, id).Scan(&br.Log); err != nil {
		return nil, mapErr(err, what)
	}
	return br, nil
}

// UpdateBlockRun applies fn to the stored block run and writes the result if fn returns nil.
func (s *Store) UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error) {
	what := fmt.Sprintf("update block run %d", id)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	br, err := getBlockRun(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(br); err != nil {
		return br, err
	}
	br.Version++
	br.UpdatedAt = now()
	doc, err := encode(br)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE block_runs SET version = ?, doc = ?, log = ? WHERE id = ?`, br.Version, doc, br.Log, id); err != nil {
		return nil, mapErr(err, what)
	}
	return br, mapErr(tx.Commit(), what)
}
