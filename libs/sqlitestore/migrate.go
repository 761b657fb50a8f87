package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] brings the schema from version i to i+1. PRAGMA user_version records the
// version a database is at. Never edit a migration that has shipped: add one.
var migrations = []string{
	// 1: the records. Each table keeps the full record as JSON in doc, plus the columns its
	// queries filter, sort and constrain on.
	`
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pipelines (
	space   TEXT NOT NULL,
	uuid    TEXT NOT NULL,
	version INTEGER NOT NULL,
	doc     BLOB NOT NULL,
	PRIMARY KEY (space, uuid)
) WITHOUT ROWID;

CREATE TABLE pipeline_schedules (
	id            INTEGER PRIMARY KEY,
	space         TEXT NOT NULL,
	pipeline_uuid TEXT NOT NULL,
	version       INTEGER NOT NULL,
	doc           BLOB NOT NULL
);
CREATE INDEX schedules_by_pipeline ON pipeline_schedules (space, pipeline_uuid, id DESC);
CREATE INDEX schedules_by_space ON pipeline_schedules (space, id DESC);

CREATE TABLE pipeline_runs (
	id                   INTEGER PRIMARY KEY,
	space                TEXT NOT NULL,
	pipeline_uuid        TEXT NOT NULL,
	pipeline_schedule_id INTEGER NOT NULL,
	command_id           TEXT NOT NULL UNIQUE,
	status               TEXT NOT NULL,
	execution_date       INTEGER NOT NULL, -- unix milliseconds
	version              INTEGER NOT NULL,
	doc                  BLOB NOT NULL
);
CREATE INDEX runs_by_schedule ON pipeline_runs (space, pipeline_schedule_id, execution_date DESC, id DESC);
CREATE INDEX runs_by_pipeline ON pipeline_runs (space, pipeline_uuid, execution_date DESC, id DESC);
CREATE INDEX runs_by_status ON pipeline_runs (space, status, execution_date DESC, id DESC);
CREATE INDEX runs_by_pipeline_status ON pipeline_runs (space, pipeline_uuid, status, execution_date DESC, id DESC);
CREATE INDEX runs_by_space ON pipeline_runs (space, execution_date DESC, id DESC);

CREATE TABLE block_runs (
	id              INTEGER PRIMARY KEY,
	space           TEXT NOT NULL,
	pipeline_run_id INTEGER NOT NULL,
	pipeline_uuid   TEXT NOT NULL,
	block_uuid      TEXT NOT NULL,
	version         INTEGER NOT NULL,
	doc             BLOB NOT NULL,
	log             TEXT NOT NULL DEFAULT '',
	UNIQUE (pipeline_run_id, block_uuid)
);
CREATE INDEX block_runs_by_run ON block_runs (pipeline_run_id, id);
CREATE INDEX block_runs_by_pipeline ON block_runs (space, pipeline_uuid, id DESC);
CREATE INDEX block_runs_by_space ON block_runs (space, id DESC);

CREATE TABLE api_keys (
	hash TEXT PRIMARY KEY,
	doc  BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE commands (
	id  TEXT PRIMARY KEY,
	doc BLOB NOT NULL
) WITHOUT ROWID;
`,
	// 2: list totals kept up to date by triggers, so a page of a list with a million runs
	// costs an index range plus a handful of summed rows, not a count over the range.
	`
CREATE TABLE run_counts (
	space                TEXT NOT NULL,
	pipeline_uuid        TEXT NOT NULL,
	pipeline_schedule_id INTEGER NOT NULL,
	status               TEXT NOT NULL,
	n                    INTEGER NOT NULL,
	PRIMARY KEY (space, pipeline_uuid, pipeline_schedule_id, status)
) WITHOUT ROWID;
CREATE INDEX run_counts_by_schedule ON run_counts (space, pipeline_schedule_id);
CREATE INDEX run_counts_by_status ON run_counts (space, status);

INSERT INTO run_counts (space, pipeline_uuid, pipeline_schedule_id, status, n)
	SELECT space, pipeline_uuid, pipeline_schedule_id, status, count(*) FROM pipeline_runs
	GROUP BY space, pipeline_uuid, pipeline_schedule_id, status;

CREATE TRIGGER run_counts_insert AFTER INSERT ON pipeline_runs BEGIN
	INSERT INTO run_counts (space, pipeline_uuid, pipeline_schedule_id, status, n)
	VALUES (NEW.space, NEW.pipeline_uuid, NEW.pipeline_schedule_id, NEW.status, 1)
	ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER run_counts_status AFTER UPDATE OF status ON pipeline_runs WHEN OLD.status <> NEW.status BEGIN
	UPDATE run_counts SET n = n - 1
	WHERE space = OLD.space AND pipeline_uuid = OLD.pipeline_uuid AND pipeline_schedule_id = OLD.pipeline_schedule_id AND status = OLD.status;
	INSERT INTO run_counts (space, pipeline_uuid, pipeline_schedule_id, status, n)
	VALUES (NEW.space, NEW.pipeline_uuid, NEW.pipeline_schedule_id, NEW.status, 1)
	ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER run_counts_delete AFTER DELETE ON pipeline_runs BEGIN
	UPDATE run_counts SET n = n - 1
	WHERE space = OLD.space AND pipeline_uuid = OLD.pipeline_uuid AND pipeline_schedule_id = OLD.pipeline_schedule_id AND status = OLD.status;
END;

CREATE TABLE block_run_counts (
	space         TEXT NOT NULL,
	pipeline_uuid TEXT NOT NULL,
	n             INTEGER NOT NULL,
	PRIMARY KEY (space, pipeline_uuid)
) WITHOUT ROWID;

INSERT INTO block_run_counts (space, pipeline_uuid, n)
	SELECT space, pipeline_uuid, count(*) FROM block_runs GROUP BY space, pipeline_uuid;

CREATE TRIGGER block_run_counts_insert AFTER INSERT ON block_runs BEGIN
	INSERT INTO block_run_counts (space, pipeline_uuid, n) VALUES (NEW.space, NEW.pipeline_uuid, 1)
	ON CONFLICT DO UPDATE SET n = n + 1;
END;
`,
	// 3: per-pipeline run statistics by day of execution date and status, with the summed
	// duration of completed runs, kept by triggers in the transaction that changes a run.
	`
CREATE TABLE pipeline_stats (
	space         TEXT NOT NULL,
	pipeline_uuid TEXT NOT NULL,
	day           INTEGER NOT NULL, -- days since the Unix epoch, UTC
	status        TEXT NOT NULL,
	n             INTEGER NOT NULL,
	duration_ms   INTEGER NOT NULL,
	PRIMARY KEY (space, pipeline_uuid, day, status)
) WITHOUT ROWID;

INSERT INTO pipeline_stats (space, pipeline_uuid, day, status, n, duration_ms)
	SELECT space, pipeline_uuid, execution_date / 86400000, status, count(*), sum(` + completedMillis("") + `)
	FROM pipeline_runs GROUP BY 1, 2, 3, 4;

CREATE TRIGGER pipeline_stats_insert AFTER INSERT ON pipeline_runs BEGIN
	INSERT INTO pipeline_stats (space, pipeline_uuid, day, status, n, duration_ms)
	VALUES (NEW.space, NEW.pipeline_uuid, NEW.execution_date / 86400000, NEW.status, 1, ` + completedMillis("NEW.") + `)
	ON CONFLICT DO UPDATE SET n = n + 1, duration_ms = duration_ms + excluded.duration_ms;
END;

CREATE TRIGGER pipeline_stats_update AFTER UPDATE OF status, execution_date ON pipeline_runs
WHEN OLD.status <> NEW.status OR OLD.execution_date <> NEW.execution_date BEGIN
	UPDATE pipeline_stats SET n = n - 1, duration_ms = duration_ms - ` + completedMillis("OLD.") + `
	WHERE space = OLD.space AND pipeline_uuid = OLD.pipeline_uuid AND day = OLD.execution_date / 86400000 AND status = OLD.status;
	INSERT INTO pipeline_stats (space, pipeline_uuid, day, status, n, duration_ms)
	VALUES (NEW.space, NEW.pipeline_uuid, NEW.execution_date / 86400000, NEW.status, 1, ` + completedMillis("NEW.") + `)
	ON CONFLICT DO UPDATE SET n = n + 1, duration_ms = duration_ms + excluded.duration_ms;
END;

-- The most recent run of each pipeline, so a page of pipelines finds theirs in one query.
CREATE TABLE pipeline_last_runs (
	space          TEXT NOT NULL,
	pipeline_uuid  TEXT NOT NULL,
	run_id         INTEGER NOT NULL,
	status         TEXT NOT NULL,
	execution_date INTEGER NOT NULL,
	PRIMARY KEY (space, pipeline_uuid)
) WITHOUT ROWID;

INSERT INTO pipeline_last_runs (space, pipeline_uuid, run_id, status, execution_date)
	SELECT space, pipeline_uuid, id, status, execution_date FROM (
		SELECT space, pipeline_uuid, id, status, execution_date,
			row_number() OVER (PARTITION BY space, pipeline_uuid ORDER BY execution_date DESC, id DESC) AS rank
		FROM pipeline_runs) WHERE rank = 1;

CREATE TRIGGER pipeline_last_runs_insert AFTER INSERT ON pipeline_runs BEGIN
	INSERT INTO pipeline_last_runs (space, pipeline_uuid, run_id, status, execution_date)
	VALUES (NEW.space, NEW.pipeline_uuid, NEW.id, NEW.status, NEW.execution_date)
	ON CONFLICT DO UPDATE SET run_id = excluded.run_id, status = excluded.status, execution_date = excluded.execution_date
	WHERE excluded.execution_date > execution_date OR (excluded.execution_date = execution_date AND excluded.run_id > run_id);
END;

CREATE TRIGGER pipeline_last_runs_status AFTER UPDATE OF status ON pipeline_runs BEGIN
	UPDATE pipeline_last_runs SET status = NEW.status
	WHERE space = NEW.space AND pipeline_uuid = NEW.pipeline_uuid AND run_id = NEW.id;
END;

CREATE TRIGGER pipeline_stats_delete AFTER DELETE ON pipeline_runs BEGIN
	UPDATE pipeline_stats SET n = n - 1, duration_ms = duration_ms - ` + completedMillis("OLD.") + `
	WHERE space = OLD.space AND pipeline_uuid = OLD.pipeline_uuid AND day = OLD.execution_date / 86400000 AND status = OLD.status;
END;
`,
	// 4: concurrency gates, one document per limit (a pipeline's run slots, a run's block
	// slots).
	`
CREATE TABLE gates (
	key     TEXT PRIMARY KEY,
	version INTEGER NOT NULL,
	doc     BLOB NOT NULL
) WITHOUT ROWID;
`,
	// 5: what the time-schedule leader and the reconcilers read every few seconds, across all
	// spaces: the active schedules of a type, and the unfinished runs oldest first. The
	// schedule columns are generated from doc, so no write path has to keep them in step and
	// existing rows have them at once. The partial index holds only unfinished runs, a small
	// set however many runs are stored; a query must repeat its WHERE term exactly
	// (activeRunsWhere) for SQLite to use it.
	`
ALTER TABLE pipeline_schedules ADD COLUMN schedule_type TEXT GENERATED ALWAYS AS (json_extract(doc, '$.schedule_type')) VIRTUAL;
ALTER TABLE pipeline_schedules ADD COLUMN status TEXT GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL;
CREATE INDEX schedules_by_type_status ON pipeline_schedules (schedule_type, status, id DESC);

CREATE INDEX runs_active ON pipeline_runs (execution_date, id) WHERE status IN ('initial', 'running');
`,
	// 6: backfills, and the runs of a backfill. backfill_id is generated from the run's
	// document like the schedule columns of migration 5; the run indexes are partial, so runs
	// outside backfills (most) cost them nothing. runs_by_backfill serves the run list of a
	// backfill, runs_by_backfill_status its counts by status.
	`
CREATE TABLE backfills (
	id            INTEGER PRIMARY KEY,
	space         TEXT NOT NULL,
	pipeline_uuid TEXT NOT NULL,
	created_at    INTEGER NOT NULL, -- unix milliseconds
	version       INTEGER NOT NULL,
	doc           BLOB NOT NULL
);
CREATE INDEX backfills_by_pipeline ON backfills (space, pipeline_uuid, created_at DESC, id DESC);
CREATE INDEX backfills_by_space ON backfills (space, created_at DESC, id DESC);

ALTER TABLE pipeline_runs ADD COLUMN backfill_id INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.backfill_id')) VIRTUAL;
CREATE INDEX runs_by_backfill ON pipeline_runs (space, backfill_id, execution_date DESC, id DESC) WHERE backfill_id IS NOT NULL;
CREATE INDEX runs_by_backfill_status ON pipeline_runs (backfill_id, status) WHERE backfill_id IS NOT NULL;
`,
	// 7: tenancy and access. Spaces, users and teams keep their record in doc like the other
	// tables; memberships and watches are pure relations, so their columns are the record.
	// api_keys is rebuilt with the columns a user's key list needs (its keys oldest first,
	// revocation by public id); keys stored before keys had users were all admin keys, so they
	// go to the bootstrap admin user (access.BootstrapAdminID, written out: a migration never
	// changes), with a public id derived from their hash (stable, and saying nothing about the
	// key: the hash is of 256 random bits). Their documents were written with Go's field names
	// and are rewritten with the JSON names.
	`
CREATE TABLE spaces (
	slug TEXT PRIMARY KEY,
	doc  BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
	id       TEXT PRIMARY KEY,
	username TEXT NOT NULL UNIQUE,
	doc      BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE memberships (
	space      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at INTEGER NOT NULL, -- unix milliseconds
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (space, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_by_user ON memberships (user_id, space);

CREATE TABLE teams (
	id      TEXT PRIMARY KEY,
	space   TEXT NOT NULL,
	name    TEXT NOT NULL,
	version INTEGER NOT NULL,
	doc     BLOB NOT NULL,
	UNIQUE (space, name)
) WITHOUT ROWID;

CREATE TABLE watches (
	space         TEXT NOT NULL,
	user_id       TEXT NOT NULL,
	pipeline_uuid TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	PRIMARY KEY (space, user_id, pipeline_uuid)
) WITHOUT ROWID;

CREATE TABLE api_keys_v7 (
	hash       TEXT PRIMARY KEY,
	id         TEXT UNIQUE,
	user_id    TEXT NOT NULL,
	created_at INTEGER NOT NULL, -- unix milliseconds
	doc        BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO api_keys_v7 (hash, id, user_id, created_at, doc)
	SELECT hash, 'key_' || substr(hash, 1, 16), 'usr_admin',
		coalesce(CAST(round((julianday(json_extract(doc, '$.CreatedAt')) - 2440587.5) * 86400000.0) AS INTEGER), 0),
		json_object('hash', hash, 'id', 'key_' || substr(hash, 1, 16), 'user_id', 'usr_admin',
			'name', coalesce(json_extract(doc, '$.Name'), ''), 'principal', coalesce(json_extract(doc, '$.Principal'), ''),
			'admin', json(CASE WHEN json_extract(doc, '$.Admin') THEN 'true' ELSE 'false' END),
			'created_at', coalesce(json_extract(doc, '$.CreatedAt'), '0001-01-01T00:00:00Z'))
	FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v7 RENAME TO api_keys;
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
`,
	// Orchestration lists. The pipeline columns the orchestration list filters on are
	// generated from doc (records stored before providers existed read as native and active),
	// with an index per filter that keeps uuid order within a space; the optional ones are
	// partial, so pipelines without a team, connector or criticality cost them nothing.
	// Owners (a list) and the searchable text (uuid, name, description, provider id, lower
	// case) are kept by triggers in small side tables, so that filtering on them reads those
	// rows rather than every pipeline document of the space. A run's start time (unix
	// milliseconds) and run type are generated columns: the start index serves a pipeline's
	// runs in a started window, newest start first, and the run type index a pipeline's runs
	// of one type.
	`
ALTER TABLE pipelines ADD COLUMN provider TEXT GENERATED ALWAYS AS (coalesce(nullif(json_extract(doc, '$.provider'), ''), 'native')) VIRTUAL;
ALTER TABLE pipelines ADD COLUMN state TEXT GENERATED ALWAYS AS (coalesce(nullif(json_extract(doc, '$.state'), ''), 'active')) VIRTUAL;
ALTER TABLE pipelines ADD COLUMN team_id TEXT GENERATED ALWAYS AS (nullif(json_extract(doc, '$.team_id'), '')) VIRTUAL;
ALTER TABLE pipelines ADD COLUMN connector_id TEXT GENERATED ALWAYS AS (nullif(json_extract(doc, '$.connector_id'), '')) VIRTUAL;
ALTER TABLE pipelines ADD COLUMN criticality TEXT GENERATED ALWAYS AS (nullif(json_extract(doc, '$.criticality'), '')) VIRTUAL;
CREATE INDEX pipelines_by_provider ON pipelines (space, provider, uuid);
CREATE INDEX pipelines_by_state ON pipelines (space, state, uuid);
CREATE INDEX pipelines_by_team ON pipelines (space, team_id, uuid) WHERE team_id IS NOT NULL;
CREATE INDEX pipelines_by_connector ON pipelines (space, connector_id, uuid) WHERE connector_id IS NOT NULL;
CREATE INDEX pipelines_by_criticality ON pipelines (space, criticality, uuid) WHERE criticality IS NOT NULL;

CREATE TABLE pipeline_owners (
	space TEXT NOT NULL,
	owner TEXT NOT NULL,
	uuid  TEXT NOT NULL,
	PRIMARY KEY (space, owner, uuid)
) WITHOUT ROWID;
CREATE INDEX pipeline_owners_by_pipeline ON pipeline_owners (space, uuid);

CREATE TABLE pipeline_search (
	space TEXT NOT NULL,
	uuid  TEXT NOT NULL,
	text  TEXT NOT NULL,
	PRIMARY KEY (space, uuid)
) WITHOUT ROWID;

INSERT OR IGNORE INTO pipeline_owners (space, owner, uuid)
	SELECT p.space, o.value, p.uuid FROM pipelines p, json_each(p.doc, '$.owners') o WHERE o.type = 'text';
INSERT INTO pipeline_search (space, uuid, text) SELECT space, uuid, ` + pipelineSearchText("") + ` FROM pipelines;

CREATE TRIGGER pipeline_terms_insert AFTER INSERT ON pipelines BEGIN
	INSERT OR IGNORE INTO pipeline_owners (space, owner, uuid)
		SELECT NEW.space, value, NEW.uuid FROM json_each(NEW.doc, '$.owners') WHERE type = 'text';
	INSERT INTO pipeline_search (space, uuid, text) VALUES (NEW.space, NEW.uuid, ` + pipelineSearchText("NEW.") + `);
END;

CREATE TRIGGER pipeline_terms_update AFTER UPDATE OF doc ON pipelines BEGIN
	DELETE FROM pipeline_owners WHERE space = OLD.space AND uuid = OLD.uuid;
	INSERT OR IGNORE INTO pipeline_owners (space, owner, uuid)
		SELECT NEW.space, value, NEW.uuid FROM json_each(NEW.doc, '$.owners') WHERE type = 'text';
	UPDATE pipeline_search SET text = ` + pipelineSearchText("NEW.") + ` WHERE space = NEW.space AND uuid = NEW.uuid;
END;

CREATE TRIGGER pipeline_terms_delete AFTER DELETE ON pipelines BEGIN
	DELETE FROM pipeline_owners WHERE space = OLD.space AND uuid = OLD.uuid;
	DELETE FROM pipeline_search WHERE space = OLD.space AND uuid = OLD.uuid;
END;

ALTER TABLE pipeline_runs ADD COLUMN started_ms INTEGER GENERATED ALWAYS AS (CAST(round((julianday(json_extract(doc, '$.started_at')) - 2440587.5) * 86400000.0) AS INTEGER)) VIRTUAL;
ALTER TABLE pipeline_runs ADD COLUMN run_type TEXT GENERATED ALWAYS AS (json_extract(doc, '$.run_type')) VIRTUAL;
CREATE INDEX runs_by_pipeline_started ON pipeline_runs (space, pipeline_uuid, started_ms DESC, id DESC) WHERE started_ms IS NOT NULL;
CREATE INDEX runs_by_pipeline_type ON pipeline_runs (space, pipeline_uuid, run_type, execution_date DESC, id DESC);
`,
	// Comments on runs and task runs, listed per target oldest first. The id is derived from
	// the create command's id, so a redelivered create finds its comment instead of adding one.
	`
CREATE TABLE comments (
	id          TEXT PRIMARY KEY,
	space       TEXT NOT NULL,
	target_type TEXT NOT NULL,
	target_id   INTEGER NOT NULL,
	created_at  INTEGER NOT NULL, -- unix milliseconds
	version     INTEGER NOT NULL,
	doc         BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX comments_by_target ON comments (space, target_type, target_id, created_at, id);
`,
	// webhook subscriptions and their deliveries (webhooks.go).
	migrationWebhooks,
	// connectors and their sync jobs (connectors.go).
	migrationConnectors,
}

// completedMillis is the SQL expression of a completed run's duration in milliseconds (0 for
// other statuses), read from the row's JSON document; row is "NEW.", "OLD." or "".
func completedMillis(row string) string {
	return `(CASE WHEN ` + row + `status = 'completed' THEN coalesce(CAST(round((julianday(json_extract(` + row + `doc, '$.completed_at')) - julianday(json_extract(` + row + `doc, '$.started_at'))) * 86400000.0) AS INTEGER), 0) ELSE 0 END)`
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the migrations a database lacks, up to version upTo, each in its own
// transaction together with the version bump, so a crash leaves a whole version or none.
func migrate(ctx context.Context, db *sql.DB, upTo int) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlitestore: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("sqlitestore: database schema version %d is newer than this build's %d: upgrade runyard", v, len(migrations))
	}
	for ; v < upTo; v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlitestore: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlitestore: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlitestore: migrate to %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlitestore: migrate to %d: %w", v+1, err)
		}
	}
	return nil
}
