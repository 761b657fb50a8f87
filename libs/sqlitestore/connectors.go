package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// migrationConnectors adds connectors (names unique in a space) and their sync jobs, listed
// newest first per connector and per space.
const migrationConnectors = `
CREATE TABLE connectors (
	id      TEXT PRIMARY KEY,
	space   TEXT NOT NULL,
	name    TEXT NOT NULL,
	version INTEGER NOT NULL,
	doc     BLOB NOT NULL,
	UNIQUE (space, name)
) WITHOUT ROWID;

CREATE TABLE sync_jobs (
	id           TEXT PRIMARY KEY,
	space        TEXT NOT NULL,
	connector_id TEXT NOT NULL,
	status       TEXT NOT NULL,
	created_at   INTEGER NOT NULL, -- unix milliseconds
	version      INTEGER NOT NULL,
	doc          BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX sync_jobs_by_connector ON sync_jobs (connector_id, created_at DESC, id DESC);
CREATE INDEX sync_jobs_by_space ON sync_jobs (space, created_at DESC, id DESC);
`

// CreateConnector inserts c; an id in use, or a name another connector of the space has, is
// ErrDuplicate.
func (s *Store) CreateConnector(ctx context.Context, c *connector.Connector) error {
	doc, err := encode(c)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO connectors (id, space, name, version, doc) VALUES (?, ?, ?, ?, ?)`, c.ID, c.Space, c.Name, c.Version, doc)
	return mapErr(err, "create connector "+c.ID)
}

// GetConnector returns the connector id of space.
func (s *Store) GetConnector(ctx context.Context, space, id string) (*connector.Connector, error) {
	return getDoc[connector.Connector](ctx, s.r, "get connector "+id, `SELECT doc FROM connectors WHERE id = ? AND space = ?`, id, space)
}

// ListConnectors returns a page of connectors by space and name, and their count; an empty
// Space lists every space's.
func (s *Store) ListConnectors(ctx context.Context, f connector.ConnectorFilter, pg store.Page) ([]connector.Connector, int64, error) {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("json_extract(doc, '$.type') = ?", f.Type, f.Type != "")
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM connectors`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count connectors")
	}
	cs, err := listDocs[connector.Connector](ctx, s.r, "list connectors", `SELECT doc FROM connectors`+w.String()+` ORDER BY space, name`+limitClause(pg), w.args...)
	return cs, total, err
}

// UpdateConnector applies fn to the stored connector and writes the result if fn returns
// nil; a new name another connector of the space has is ErrDuplicate.
func (s *Store) UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error) {
	return update(ctx, s, "update connector "+id, `SELECT doc FROM connectors WHERE id = ? AND space = ?`, []any{id, space}, fn,
		func(tx *sql.Tx, c *connector.Connector) error {
			c.Version++
			c.UpdatedAt = now()
			doc, err := encode(c)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE connectors SET name = ?, version = ?, doc = ? WHERE id = ?`, c.Name, c.Version, doc, id)
			return err
		})
}

// DeleteConnector removes the connector id of space and its sync jobs. The pipelines and
// runs it mirrored stay.
func (s *Store) DeleteConnector(ctx context.Context, space, id string) error {
	what := "delete connector " + id
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, what)
	}
	defer func() { _ = tx.Rollback() }()
	if err := deleted(tx.ExecContext(ctx, `DELETE FROM connectors WHERE id = ? AND space = ?`, id, space))(what); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sync_jobs WHERE connector_id = ?`, id); err != nil {
		return mapErr(err, what)
	}
	return mapErr(tx.Commit(), what)
}

// CreateSyncJob inserts j; an id in use is ErrDuplicate.
func (s *Store) CreateSyncJob(ctx context.Context, j *connector.SyncJob) error {
	doc, err := encode(j)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO sync_jobs (id, space, connector_id, status, created_at, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Space, j.ConnectorID, j.Status, j.CreatedAt.UnixMilli(), j.Version, doc)
	return mapErr(err, "create sync job "+j.ID)
}

// GetSyncJob returns the sync job id of space.
func (s *Store) GetSyncJob(ctx context.Context, space, id string) (*connector.SyncJob, error) {
	return getDoc[connector.SyncJob](ctx, s.r, "get sync job "+id, `SELECT doc FROM sync_jobs WHERE id = ? AND space = ?`, id, space)
}

// ListSyncJobs returns a page of sync jobs, newest first, and their count.
func (s *Store) ListSyncJobs(ctx context.Context, f connector.SyncJobFilter, pg store.Page) ([]connector.SyncJob, int64, error) {
	var w where
	w.add("space = ?", f.Space, f.Space != "")
	w.add("connector_id = ?", f.ConnectorID, f.ConnectorID != "")
	w.add("status = ?", f.Status, f.Status != "")
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sync_jobs`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count sync jobs")
	}
	js, err := listDocs[connector.SyncJob](ctx, s.r, "list sync jobs", `SELECT doc FROM sync_jobs`+w.String()+` ORDER BY created_at DESC, id DESC`+limitClause(pg), w.args...)
	return js, total, err
}

// UpdateSyncJob applies fn to the stored sync job and writes the result if fn returns nil.
func (s *Store) UpdateSyncJob(ctx context.Context, space, id string, fn func(*connector.SyncJob) error) (*connector.SyncJob, error) {
	return update(ctx, s, "update sync job "+id, `SELECT doc FROM sync_jobs WHERE id = ? AND space = ?`, []any{id, space}, fn,
		func(tx *sql.Tx, j *connector.SyncJob) error {
			j.Version++
			j.UpdatedAt = now()
			doc, err := encode(j)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE sync_jobs SET status = ?, version = ?, doc = ? WHERE id = ?`, j.Status, j.Version, doc, id)
			return err
		})
}

// UpsertProviderPipeline creates or updates a pipeline mirrored from a connector; see
// connector.UpsertPipeline.
func (s *Store) UpsertProviderPipeline(ctx context.Context, p *pipeline.Pipeline) (connector.Outcome, error) {
	return connector.UpsertPipeline(ctx, s, p)
}

// UpsertProviderRun creates or updates a run mirrored from a connector, keyed by its command
// id; see connector.UpsertRun.
func (s *Store) UpsertProviderRun(ctx context.Context, r *run.PipelineRun) (connector.Outcome, error) {
	return connector.UpsertRun(ctx, s, r)
}

// UpsertProviderBlockRuns creates or updates the mirrored block runs of a run; see
// connector.UpsertBlockRuns.
func (s *Store) UpsertProviderBlockRuns(ctx context.Context, runID int64, brs []run.BlockRun) (connector.Counts, error) {
	return connector.UpsertBlockRuns(ctx, s, runID, brs)
}

// inChunk bounds the ids of one IN list, well under SQLite's limit on bound parameters.
const inChunk = 500

// GetRunsByCommands returns the stored runs of the given command ids, in no particular order;
// ids without a run are left out. A sync reads a page of runs with it in one query.
func (s *Store) GetRunsByCommands(ctx context.Context, commandIDs ...string) ([]run.PipelineRun, error) {
	return runsByCommands(ctx, s.r, commandIDs)
}

func runsByCommands(ctx context.Context, db queryer, commandIDs []string) ([]run.PipelineRun, error) {
	out := []run.PipelineRun{}
	for start := 0; start < len(commandIDs); start += inChunk {
		part := commandIDs[start:min(start+inChunk, len(commandIDs))]
		rs, err := listDocs[run.PipelineRun](ctx, db, "runs of commands",
			`SELECT doc FROM pipeline_runs WHERE command_id IN (`+placeholders(len(part))+`)`, stringArgs(part)...)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func blockRunsOfRuns(ctx context.Context, db queryer, runIDs []int64) ([]run.BlockRun, error) {
	var out []run.BlockRun
	for start := 0; start < len(runIDs); start += inChunk {
		part := runIDs[start:min(start+inChunk, len(runIDs))]
		brs, err := listDocs[run.BlockRun](ctx, db, "block runs of runs",
			`SELECT doc FROM block_runs WHERE pipeline_run_id IN (`+placeholders(len(part))+`)`, int64Args(part)...)
		if err != nil {
			return nil, err
		}
		out = append(out, brs...)
	}
	return out, nil
}

// errStaleSnapshot says the records a batch was planned from changed before its write.
var errStaleSnapshot = errors.New("sqlitestore: the stored runs changed while the batch was planned")

// UpsertProviderRuns creates or updates a batch of mirrored runs with their block runs (see
// connector.RunUpsert) in one write transaction. The batch is planned outside the writer,
// from the readers' view of the stored runs and block runs, so that the comparisons do not
// hold up other writes, and a batch with nothing to write takes no transaction at all. The
// transaction checks that the records planned from kept their versions (planning again
// otherwise), reserves ids for the new records with one counter update per sequence, and
// writes the runs, their block runs and, through the counting triggers, the pipeline
// statistics together.
func (s *Store) UpsertProviderRuns(ctx context.Context, items []connector.RunUpsert) error {
	if len(items) == 0 {
		return nil
	}
	what := fmt.Sprintf("upsert %d provider runs", len(items))
	wctx := context.WithoutCancel(ctx)
	commandIDs := connector.CommandIDs(items)
	for range maxPlans {
		stored, err := runsByCommands(ctx, s.r, commandIDs)
		if err != nil {
			return err
		}
		runIDs := connector.BlockRunsToRead(items, stored)
		blocks, err := blockRunsOfRuns(ctx, s.r, runIDs)
		if err != nil {
			return err
		}
		p, err := connector.PlanRuns(items, stored, blocks, now())
		if err != nil {
			return err
		}
		if len(p.NewRuns)+len(p.ChangedRuns)+len(p.NewBlockRuns)+len(p.ChangedBlockRuns) == 0 {
			p.Apply(items, nil)
			return nil
		}
		err = s.g.write(ctx, func(tx *sql.Tx) error {
			if err := sameVersions(wctx, tx, commandIDs, stored, runIDs, blocks); err != nil {
				return err
			}
			return writeRunBatch(wctx, tx, p)
		})
		switch {
		case errors.Is(err, errStaleSnapshot):
			continue
		case err != nil:
			return mapErr(err, what)
		}
		p.Apply(items, nil)
		return nil
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, store.ErrConflict)
}

// maxPlans bounds how often a batch is planned again because its records changed meanwhile.
const maxPlans = 5

// sameVersions checks inside tx that the runs of commandIDs are still those of stored, and
// the block runs of runIDs those of blocks, at the same versions (every write of a run or
// block run advances its version column). Nothing is written before it: its failure is
// declined.
func sameVersions(ctx context.Context, tx *sql.Tx, commandIDs []string, stored []run.PipelineRun, runIDs []int64, blocks []run.BlockRun) error {
	want := make(map[int64]int64, len(stored))
	for i := range stored {
		want[stored[i].ID] = stored[i].Version
	}
	if err := versionsMatch(ctx, tx, `SELECT id, version FROM pipeline_runs WHERE command_id IN (`, stringArgs(commandIDs), want); err != nil {
		return err
	}
	want = make(map[int64]int64, len(blocks))
	for i := range blocks {
		want[blocks[i].ID] = blocks[i].Version
	}
	return versionsMatch(ctx, tx, `SELECT id, version FROM block_runs WHERE pipeline_run_id IN (`, int64Args(runIDs), want)
}

// versionsMatch runs q (ending in an open IN list) over args in chunks and checks that it
// selects exactly the ids of want, at their versions.
func versionsMatch(ctx context.Context, tx *sql.Tx, q string, args []any, want map[int64]int64) error {
	found := 0
	for start := 0; start < len(args); start += inChunk {
		part := args[start:min(start+inChunk, len(args))]
		rows, err := tx.QueryContext(ctx, q+placeholders(len(part))+`)`, part...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, version int64
			if err := rows.Scan(&id, &version); err != nil {
				_ = rows.Close()
				return err
			}
			if v, ok := want[id]; !ok || v != version {
				_ = rows.Close()
				return declined(errStaleSnapshot)
			}
			found++
		}
		err = rows.Err()
		_ = rows.Close()
		if err != nil {
			return err
		}
	}
	if found != len(want) {
		return declined(errStaleSnapshot)
	}
	return nil
}

// writeRunBatch writes a planned batch inside tx.
func writeRunBatch(ctx context.Context, tx *sql.Tx, p *connector.RunBatch) error {
	var lastRun, lastBlock int64
	var err error
	if n := len(p.NewRuns); n > 0 {
		if lastRun, err = nextIDsTx(ctx, tx, connector.SeqPipelineRuns, int64(n)); err != nil {
			return err
		}
	}
	if n := len(p.NewBlockRuns); n > 0 {
		if lastBlock, err = nextIDsTx(ctx, tx, connector.SeqBlockRuns, int64(n)); err != nil {
			return err
		}
	}
	p.AssignIDs(lastRun, lastBlock)
	// Multi-row inserts: one parse per chunk (with the counting triggers compiled into it)
	// instead of one per record.
	const chunk = 256
	for start := 0; start < len(p.NewRuns); start += chunk {
		part := p.NewRuns[start:min(start+chunk, len(p.NewRuns))]
		q := make([]byte, 0, 160+28*len(part))
		q = append(q, `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc) VALUES `...)
		args := make([]any, 0, 9*len(part))
		for i, w := range part {
			doc, err := encode(w.Run)
			if err != nil {
				return err
			}
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, `(?, ?, ?, ?, ?, ?, ?, ?, ?)`...)
			args = append(append(args, runColumns(w.Run)...), doc)
		}
		if _, err := tx.ExecContext(ctx, string(q), args...); err != nil {
			return err
		}
	}
	for _, w := range p.ChangedRuns {
		doc, err := encode(w.Run)
		if err != nil {
			return err
		}
		// As UpdateRun: only a change of status or execution date names those columns, so
		// that the indexes and counting triggers are left alone otherwise.
		if w.Run.Status == w.Was.Status && w.Run.ExecutionDate.UnixMilli() == w.Was.ExecutionDate.UnixMilli() {
			_, err = tx.ExecContext(ctx, `UPDATE pipeline_runs SET version = ?, doc = ? WHERE id = ?`, w.Run.Version, doc, w.Run.ID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE pipeline_runs SET status = ?, execution_date = ?, version = ?, doc = ? WHERE id = ?`,
				string(w.Run.Status), w.Run.ExecutionDate.UnixMilli(), w.Run.Version, doc, w.Run.ID)
		}
		if err != nil {
			return err
		}
	}
	for start := 0; start < len(p.NewBlockRuns); start += chunk {
		part := p.NewBlockRuns[start:min(start+chunk, len(p.NewBlockRuns))]
		q := make([]byte, 0, 160+26*len(part))
		q = append(q, `INSERT INTO block_runs (id, space, pipeline_run_id, pipeline_uuid, block_uuid, version, doc, log) VALUES `...)
		args := make([]any, 0, 8*len(part))
		for i, w := range part {
			br := w.BlockRun
			doc, err := encode(br)
			if err != nil {
				return err
			}
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, `(?, ?, ?, ?, ?, ?, ?, ?)`...)
			args = append(args, br.ID, br.Space, br.PipelineRunID, br.PipelineUUID, br.BlockUUID, br.Version, doc, br.Log)
		}
		if _, err := tx.ExecContext(ctx, string(q), args...); err != nil {
			return err
		}
	}
	for _, w := range p.ChangedBlockRuns {
		doc, err := encode(w.BlockRun)
		if err != nil {
			return err
		}
		// The log column is the executor's: a mirrored update leaves it alone.
		if _, err := tx.ExecContext(ctx, `UPDATE block_runs SET version = ?, doc = ? WHERE id = ?`, w.BlockRun.Version, doc, w.BlockRun.ID); err != nil {
			return err
		}
	}
	return nil
}

// nextIDsTx is NextIDs inside a write transaction.
func nextIDsTx(ctx context.Context, tx *sql.Tx, name string, n int64) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value RETURNING value`,
		name, n).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: allocate %d %s ids: %w", n, name, err)
	}
	return last, nil
}
