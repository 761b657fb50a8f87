package sqlitestore

import (
	"context"
	"database/sql"

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
