package sqlitestore

import (
	"context"
	"time"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// PipelineStats returns the run statistics of the given pipelines of space for runs whose
// execution date is on or after since's day; pipelines without runs get empty stats.
func (s *Store) PipelineStats(ctx context.Context, space string, uuids []string, since time.Time) (map[string]store.PipelineStats, error) {
	out := make(map[string]store.PipelineStats, len(uuids))
	if len(uuids) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(uuids)+2)
	args = append(args, space)
	for _, u := range uuids {
		args = append(args, u)
		out[u] = store.PipelineStats{PipelineUUID: u, Runs: map[run.Status]int64{}}
	}
	args = append(args, store.StatsDay(since))
	rows, err := s.r.QueryContext(ctx, `SELECT pipeline_uuid, status, sum(n), sum(duration_ms) FROM pipeline_stats
		WHERE space = ? AND pipeline_uuid IN (`+placeholders(len(uuids))+`) AND day >= ? GROUP BY pipeline_uuid, status`, args...)
	if err != nil {
		return nil, mapErr(err, "pipeline stats")
	}
	defer rows.Close()
	for rows.Next() {
		var uuid, status string
		var n, ms int64
		if err := rows.Scan(&uuid, &status, &n, &ms); err != nil {
			return nil, mapErr(err, "pipeline stats")
		}
		st := out[uuid]
		if n != 0 {
			st.Runs[run.Status(status)] = n
		}
		if status == string(run.StatusCompleted) {
			st.CompletedSeconds = float64(ms) / 1000
		}
		out[uuid] = st
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "pipeline stats")
	}
	last, err := s.r.QueryContext(ctx, `SELECT pipeline_uuid, run_id, status, execution_date FROM pipeline_last_runs
		WHERE space = ? AND pipeline_uuid IN (`+placeholders(len(uuids))+`)`, args[:len(args)-1]...)
	if err != nil {
		return nil, mapErr(err, "last runs")
	}
	defer last.Close()
	for last.Next() {
		var uuid, status string
		var lr store.LastRun
		var ms int64
		if err := last.Scan(&uuid, &lr.ID, &status, &ms); err != nil {
			return nil, mapErr(err, "last runs")
		}
		lr.Status, lr.ExecutionDate = run.Status(status), time.UnixMilli(ms).UTC()
		st := out[uuid]
		st.LastRun = &lr
		out[uuid] = st
	}
	return out, mapErr(last.Err(), "last runs")
}
