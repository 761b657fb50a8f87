package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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
	what := fmt.Sprintf("create run %d", r.ID)
	err = s.g.write(ctx, func(tx *sql.Tx) error {
		_, err := s.inTx(tx).ExecContext(context.WithoutCancel(ctx), `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, append(runColumns(r), doc)...)
		if dup := mapErr(err, what); errors.Is(dup, store.ErrDuplicate) {
			// SQLite undid the statement alone: the command's run exists.
			return declined(dup)
		}
		return err
	})
	if errors.Is(err, store.ErrDuplicate) {
		return err
	}
	return mapErr(err, what)
}

// CreateBlockRuns inserts brs in one transaction; a block run whose (run, block) pair exists
// is skipped, so a retried creation completes what a crashed one began.
func (s *Store) CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error {
	if len(brs) == 0 {
		return nil
	}
	what := fmt.Sprintf("create block runs of run %d", brs[0].PipelineRunID)
	docs := make([][]byte, len(brs))
	for i := range brs {
		doc, err := encode(&brs[i])
		if err != nil {
			return err
		}
		docs[i] = doc
	}
	// Multi-row statements: one parse and one pass over the indexes' pages per chunk, each
	// chunk well under SQLite's limit on bound parameters.
	const chunk = 256
	// Block-run inserts of pipelines with up to this many blocks use prepared statements,
	// one per size.
	const maxCachedBlocks = 16
	err := s.g.write(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(brs); start += chunk {
			part := brs[start:min(start+chunk, len(brs))]
			q := make([]byte, 0, 160+26*len(part))
			q = append(q, `INSERT INTO block_runs (id, space, pipeline_run_id, pipeline_uuid, block_uuid, version, doc, log) VALUES `...)
			args := make([]any, 0, 8*len(part))
			for i := range part {
				br := &part[i]
				if i > 0 {
					q = append(q, ',')
				}
				q = append(q, `(?, ?, ?, ?, ?, ?, ?, ?)`...)
				args = append(args, br.ID, br.Space, br.PipelineRunID, br.PipelineUUID, br.BlockUUID, br.Version, docs[start+i], br.Log)
			}
			q = append(q, ` ON CONFLICT (pipeline_run_id, block_uuid) DO NOTHING`...)
			var err error
			if len(part) <= maxCachedBlocks {
				// A pipeline's size fixes the statement's text: keep it prepared.
				_, err = s.inTx(tx).ExecContext(context.WithoutCancel(ctx), string(q), args...)
			} else {
				_, err = tx.ExecContext(context.WithoutCancel(ctx), string(q), args...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return mapErr(err, what)
}

// GetRun returns the run id, in whichever space it is.
func (s *Store) GetRun(ctx context.Context, id int64) (*run.PipelineRun, error) {
	return getDoc[run.PipelineRun](ctx, s.reader(), fmt.Sprintf("get run %d", id), `SELECT doc FROM pipeline_runs WHERE id = ?`, id)
}

// GetRunByCommand returns the run the command commandID created.
func (s *Store) GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error) {
	return getDoc[run.PipelineRun](ctx, s.reader(), "get run of command "+commandID, `SELECT doc FROM pipeline_runs WHERE command_id = ?`, commandID)
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
	w.add("run_type = ?", f.RunType, f.RunType != "")
	if f.StartedFrom != nil {
		w.add("started_ms >= ?", f.StartedFrom.UnixMilli(), true)
	}
	if f.StartedTo != nil {
		w.add("started_ms <= ?", f.StartedTo.UnixMilli(), true)
	}
	return &w
}

// ListRuns returns a page of runs, newest execution date first, and their total count.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error) {
	w := runFilter(f)
	var total int64
	if err := s.r.QueryRowContext(ctx, countRunsQuery(f, w), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count runs")
	}
	q := listRunsQuery(w, pg, f.OldestFirst)
	if f.ByStart() {
		q = listRunsByStartQuery(w, pg, f.OldestFirst)
	}
	runs, err := listDocs[run.PipelineRun](ctx, s.r, "list runs", q, w.args...)
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
	var was run.PipelineRun
	remember := func(r *run.PipelineRun) error {
		was.Status, was.ExecutionDate = r.Status, r.ExecutionDate
		return fn(r)
	}
	return update(ctx, s, fmt.Sprintf("update run %d", id), `SELECT doc FROM pipeline_runs WHERE id = ?`, []any{id}, remember,
		func(tx *sql.Tx, r *run.PipelineRun) error {
			r.Version++
			r.UpdatedAt = now()
			doc, err := encode(r)
			if err != nil {
				return err
			}
			// Setting status or execution_date rewrites the indexes holding them and fires the
			// counting triggers, even to the same value: only an update that changes them
			// names them.
			if r.Status == was.Status && r.ExecutionDate.UnixMilli() == was.ExecutionDate.UnixMilli() {
				_, err = s.inTx(tx).ExecContext(ctx, `UPDATE pipeline_runs SET version = ?, doc = ? WHERE id = ?`, r.Version, doc, id)
				return err
			}
			_, err = s.inTx(tx).ExecContext(ctx, `UPDATE pipeline_runs SET status = ?, execution_date = ?, version = ?, doc = ? WHERE id = ?`,
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
	if len(runIDs) == 1 {
		// One run's block runs: a fixed statement, read on every advance of a run.
		return listDocs[run.BlockRun](ctx, s.reader(), "block runs of run",
			`SELECT doc FROM block_runs WHERE pipeline_run_id = ? ORDER BY id`, runIDs[0])
	}
	return listDocs[run.BlockRun](ctx, s.r, "block runs of runs",
		`SELECT doc FROM block_runs WHERE pipeline_run_id IN (`+placeholders(len(runIDs))+`) ORDER BY pipeline_run_id, id`, int64Args(runIDs)...)
}

// GetBlockRun returns the block run id with its log.
func (s *Store) GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error) {
	return getBlockRun(ctx, s.reader(), id)
}

func getBlockRun(ctx context.Context, db queryer, id int64) (*run.BlockRun, error) {
	what := fmt.Sprintf("get block run %d", id)
	var raw []byte
	var log string
	if err := db.QueryRowContext(ctx, `SELECT doc, log FROM block_runs WHERE id = ?`, id).Scan(&raw, &log); err != nil {
		return nil, mapErr(err, what)
	}
	var br run.BlockRun
	if err := json.Unmarshal(raw, &br); err != nil {
		return nil, fmt.Errorf("sqlitestore: %s: decode: %w", what, err)
	}
	br.Log = log
	return &br, nil
}

// UpdateBlockRun applies fn to the stored block run and writes the result if fn returns nil.
func (s *Store) UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error) {
	what := fmt.Sprintf("update block run %d", id)
	var br, aborted *run.BlockRun
	var own error // the cycle's own failure, already described
	wctx := context.WithoutCancel(ctx)
	err := s.g.write(ctx, func(tx *sql.Tx) error {
		br, aborted, own = nil, nil, nil
		got, err := getBlockRun(wctx, s.inTx(tx), id)
		if err != nil {
			own = err
			return declinedIf(err)
		}
		if err := fn(got); err != nil {
			aborted, own = got, err
			return declined(err)
		}
		got.Version++
		got.UpdatedAt = now()
		doc, err := encode(got)
		if err != nil {
			own = err
			return declined(err)
		}
		if _, err := s.inTx(tx).ExecContext(wctx, `UPDATE block_runs SET version = ?, doc = ?, log = ? WHERE id = ?`, got.Version, doc, got.Log, id); err != nil {
			own = mapErr(err, what)
			return declinedIf(own)
		}
		br = got
		return nil
	})
	switch {
	case own != nil:
		return aborted, own
	case err != nil:
		return nil, mapErr(err, what)
	}
	return br, nil
}
