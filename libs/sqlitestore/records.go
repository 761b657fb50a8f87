package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// CreatePipeline inserts p; a pipeline with the same uuid in the space is ErrDuplicate.
func (s *Store) CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error {
	doc, err := encode(p)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO pipelines (space, uuid, version, doc) VALUES (?, ?, ?, ?)`, p.Space, p.UUID, p.Version, doc)
	return mapErr(err, "create pipeline "+p.UUID)
}

// GetPipeline returns the pipeline uuid of space.
func (s *Store) GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error) {
	return getDoc[pipeline.Pipeline](ctx, s.reader(), "get pipeline "+uuid, `SELECT doc FROM pipelines WHERE space = ? AND uuid = ?`, space, uuid)
}

// ListPipelines returns a page of the space's pipelines by uuid, and their total count.
func (s *Store) ListPipelines(ctx context.Context, space string, pg store.Page) ([]pipeline.Pipeline, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pipelines WHERE space = ?`, space).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count pipelines")
	}
	ps, err := listDocs[pipeline.Pipeline](ctx, s.r, "list pipelines", `SELECT doc FROM pipelines WHERE space = ? ORDER BY uuid`+limitClause(pg), space)
	return ps, total, err
}

// UpdatePipeline applies fn to the stored pipeline and writes the result if fn returns nil.
func (s *Store) UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error) {
	return update(ctx, s, "update pipeline "+uuid, `SELECT doc FROM pipelines WHERE space = ? AND uuid = ?`, []any{space, uuid}, fn,
		func(tx *sql.Tx, p *pipeline.Pipeline) error {
			p.Version++
			p.UpdatedAt = now()
			doc, err := encode(p)
			if err != nil {
				return err
			}
			_, err = s.inTx(tx).ExecContext(ctx, `UPDATE pipelines SET version = ?, doc = ? WHERE space = ? AND uuid = ?`, p.Version, doc, space, uuid)
			return err
		})
}

// DeletePipeline removes the pipeline uuid of space.
func (s *Store) DeletePipeline(ctx context.Context, space, uuid string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM pipelines WHERE space = ? AND uuid = ?`, space, uuid))("delete pipeline " + uuid)
}

func deleted(res sql.Result, err error) func(what string) error {
	return func(what string) error {
		if err != nil {
			return mapErr(err, what)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return mapErr(sql.ErrNoRows, what)
		}
		return nil
	}
}

func now() time.Time { return store.Now() }

// CreateSchedule inserts sc, whose ID the caller allocated.
func (s *Store) CreateSchedule(ctx context.Context, sc *schedule.Schedule) error {
	doc, err := encode(sc)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO pipeline_schedules (id, space, pipeline_uuid, version, doc) VALUES (?, ?, ?, ?, ?)`,
		sc.ID, sc.Space, sc.PipelineUUID, sc.Version, doc)
	return mapErr(err, fmt.Sprintf("create schedule %d", sc.ID))
}

// GetSchedule returns the schedule id, in whichever space it is.
func (s *Store) GetSchedule(ctx context.Context, id int64) (*schedule.Schedule, error) {
	return getDoc[schedule.Schedule](ctx, s.reader(), fmt.Sprintf("get schedule %d", id), `SELECT doc FROM pipeline_schedules WHERE id = ?`, id)
}

// GetSchedules returns the schedules among ids that exist, by id.
func (s *Store) GetSchedules(ctx context.Context, ids []int64) (map[int64]*schedule.Schedule, error) {
	m := make(map[int64]*schedule.Schedule, len(ids))
	if len(ids) == 0 {
		return m, nil
	}
	scs, err := listDocs[schedule.Schedule](ctx, s.r, "get schedules", `SELECT doc FROM pipeline_schedules WHERE id IN (`+placeholders(len(ids))+`)`, int64Args(ids)...)
	if err != nil {
		return nil, err
	}
	for i := range scs {
		m[scs[i].ID] = &scs[i]
	}
	return m, nil
}

// ListSchedules returns a page of schedules, newest first, and their total count.
func (s *Store) ListSchedules(ctx context.Context, f store.ScheduleFilter, pg store.Page) ([]schedule.Schedule, int64, error) {
	w := scheduleFilter(f)
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pipeline_schedules`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count schedules")
	}
	scs, err := listDocs[schedule.Schedule](ctx, s.r, "list schedules", listSchedulesQuery(w, pg), w.args...)
	return scs, total, err
}

// UpdateSchedule applies fn to the stored schedule and writes the result if fn returns nil.
func (s *Store) UpdateSchedule(ctx context.Context, id int64, fn func(*schedule.Schedule) error) (*schedule.Schedule, error) {
	return update(ctx, s, fmt.Sprintf("update schedule %d", id), `SELECT doc FROM pipeline_schedules WHERE id = ?`, []any{id}, fn,
		func(tx *sql.Tx, sc *schedule.Schedule) error {
			sc.Version++
			sc.UpdatedAt = now()
			doc, err := encode(sc)
			if err != nil {
				return err
			}
			_, err = s.inTx(tx).ExecContext(ctx, `UPDATE pipeline_schedules SET version = ?, doc = ? WHERE id = ?`, sc.Version, doc, id)
			return err
		})
}

// DeleteSchedule removes the schedule id. Its runs stay.
func (s *Store) DeleteSchedule(ctx context.Context, id int64) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM pipeline_schedules WHERE id = ?`, id))(fmt.Sprintf("delete schedule %d", id))
}

func placeholders(n int) string {
	b := make([]byte, 0, 2*n)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

func int64Args(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

// PutAPIKey stores k, replacing a key with the same hash.
func (s *Store) PutAPIKey(ctx context.Context, k store.APIKey) error {
	doc, err := encode(k)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO api_keys (hash, id, user_id, created_at, doc) VALUES (?, NULLIF(?, ''), ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET id = excluded.id, user_id = excluded.user_id, created_at = excluded.created_at, doc = excluded.doc`,
		k.Hash, k.ID, k.UserID, k.CreatedAt.UnixMilli(), doc)
	return mapErr(err, "put api key "+k.Name)
}

// GetAPIKey returns the key whose hash is hash.
func (s *Store) GetAPIKey(ctx context.Context, hash string) (*store.APIKey, error) {
	return getDoc[store.APIKey](ctx, s.reader(), "get api key", `SELECT doc FROM api_keys WHERE hash = ?`, hash)
}

// CountAPIKeys returns how many API keys exist.
func (s *Store) CountAPIKeys(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM api_keys`).Scan(&n)
	return n, mapErr(err, "count api keys")
}

// SaveOutcome records a command's outcome; the first outcome of a command stands.
func (s *Store) SaveOutcome(ctx context.Context, o store.CommandOutcome) error {
	doc, err := encode(o)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO commands (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, o.ID, doc)
	return mapErr(err, "save outcome of command "+o.ID)
}

// GetOutcome returns the recorded outcome of command id.
func (s *Store) GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error) {
	return getDoc[store.CommandOutcome](ctx, s.reader(), "get outcome of command "+id, `SELECT doc FROM commands WHERE id = ?`, id)
}

// runColumns are the columns of pipeline_runs besides doc, in insert order.
func runColumns(r *run.PipelineRun) []any {
	return []any{r.ID, r.Space, r.PipelineUUID, r.PipelineScheduleID, r.CommandID, string(r.Status), r.ExecutionDate.UnixMilli(), r.Version}
}
