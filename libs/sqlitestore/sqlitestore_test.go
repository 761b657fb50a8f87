package sqlitestore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/storetest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, t.TempDir()) })
}

// TestListQueriesUseIndexes fails when a list the APIs serve would scan a table or sort
// outside an index.
func TestListQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	pg := store.Page{Limit: 20, Offset: 40}
	queries := map[string]struct {
		q    string
		args []any
	}{}
	for name, f := range map[string]store.RunFilter{
		"runs of a schedule":           {Space: "s", ScheduleID: 7},
		"runs of a pipeline":           {Space: "s", PipelineUUID: "p"},
		"runs by status":               {Space: "s", Status: run.StatusFailed},
		"runs of a pipeline by status": {Space: "s", PipelineUUID: "p", Status: run.StatusFailed},
		"runs of a space":              {Space: "s"},
		"schedule runs by status":      {Space: "s", ScheduleID: 7, Status: run.StatusFailed},
		"runs of a backfill":           {Space: "s", BackfillID: 3},
		"backfill runs by status":      {Space: "s", BackfillID: 3, Status: run.StatusRunning},
	} {
		w := runFilter(f)
		queries[name] = struct {
			q    string
			args []any
		}{listRunsQuery(w, pg, false), w.args}
		queries[name+" (oldest first)"] = struct {
			q    string
			args []any
		}{listRunsQuery(w, pg, true), w.args}
		queries[name+" (count)"] = struct {
			q    string
			args []any
		}{countRunsQuery(f, w), w.args}
	}
	add := func(name, q string, args ...any) {
		queries[name] = struct {
			q    string
			args []any
		}{q, args}
	}
	add("pipelines of a space", `SELECT doc FROM pipelines WHERE space = ? ORDER BY uuid LIMIT 20`, "s")
	add("schedules of a pipeline", `SELECT doc FROM pipeline_schedules WHERE space = ? AND pipeline_uuid = ? ORDER BY id DESC LIMIT 20`, "s", "p")
	add("schedules of a space", `SELECT doc FROM pipeline_schedules WHERE space = ? ORDER BY id DESC LIMIT 20`, "s")
	add("block runs of a run", `SELECT doc FROM block_runs WHERE space = ? AND pipeline_run_id = ? ORDER BY id DESC LIMIT 20`, "s", 1)
	add("block runs of a pipeline", `SELECT doc FROM block_runs WHERE space = ? AND pipeline_uuid = ? ORDER BY id DESC LIMIT 20`, "s", "p")
	add("block runs of a space", `SELECT doc FROM block_runs WHERE space = ? ORDER BY id DESC LIMIT 20`, "s")
	add("block runs of runs", `SELECT doc FROM block_runs WHERE pipeline_run_id IN (?, ?) ORDER BY pipeline_run_id, id`, 1, 2)
	add("run by command", `SELECT doc FROM pipeline_runs WHERE command_id = ?`, "c")
	for name, f := range map[string]store.BackfillFilter{
		"backfills of a pipeline": {Space: "s", PipelineUUID: "p"},
		"backfills of a space":    {Space: "s"},
	} {
		w := backfillFilter(f)
		add(name, listBackfillsQuery(w, pg), w.args...)
		add(name+" (count)", `SELECT count(*) FROM backfills`+w.String(), w.args...)
	}
	add("run counts of a backfill", backfillRunCountsQuery, 3)
	// The time-schedule leader's reads, across all spaces.
	for name, f := range map[string]store.ScheduleFilter{
		"active time schedules":      {Type: schedule.TypeTime, Status: schedule.StatusActive},
		"active time schedules of s": {Space: "s", Type: schedule.TypeTime, Status: schedule.StatusActive},
	} {
		w := scheduleFilter(f)
		add(name, listSchedulesQuery(w, store.Page{Limit: 500}), w.args...)
		add(name+" (count)", `SELECT count(*) FROM pipeline_schedules`+w.String(), w.args...)
	}
	add("active runs", activeRunsQuery(1000))
	// Tenancy and access.
	add("spaces", listSpacesQuery+limitClause(pg))
	add("members of a space", listSpaceMembersQuery+limitClause(pg), "s")
	add("members of a space (count)", `SELECT count(*) FROM memberships WHERE space = ?`, "s")
	add("memberships of a user", listUserMembershipsQuery+limitClause(pg), "u")
	add("memberships of a user (count)", `SELECT count(*) FROM memberships WHERE user_id = ?`, "u")
	add("api keys of a user", listAPIKeysQuery, "u")
	add("api key by id", `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, "k", "u")
	add("teams of a space", listTeamsQuery+limitClause(pg), "s")
	add("teams of a space (count)", `SELECT count(*) FROM teams WHERE space = ?`, "s")
	add("watched pipelines", listWatchedQuery, "s", "u")

	for name, q := range queries {
		// Walking a whole partial index is the point of one: it holds only the rows its
		// query selects.
		joined := strings.ReplaceAll(queryPlan(t, s, name, q.q, q.args...), "SCAN pipeline_runs USING INDEX runs_active", "partial index runs_active")
		// Listing every space walks the spaces table in key order, which is the point; no
		// other table may be scanned.
		for _, bad := range []string{"SCAN pipeline_runs", "SCAN block_runs", "SCAN pipelines", "SCAN pipeline_schedules", "SCAN backfills",
			"SCAN memberships", "SCAN api_keys", "SCAN teams", "SCAN watches", "SCAN users", "USE TEMP B-TREE"} {
			if strings.Contains(joined, bad) {
				t.Errorf("%s is not answered by an index: %s", name, joined)
			}
		}
	}
}

// queryPlan returns the lines of SQLite's EXPLAIN QUERY PLAN for q, joined with "; ".
func queryPlan(t *testing.T, s *Store, name, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return strings.Join(plan, "; ")
}

// TestOpensPreviousSchemaVersion writes a database at the previous schema version, then opens
// it with this build: the migration must keep every record and bring the new parts up to date.
func TestOpensPreviousSchemaVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	old, err := openAt(ctx, filepath.Join(dir, FileName), SchemaVersion()-1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := int64(1); i <= 3; i++ {
		st := run.StatusCompleted
		if i == 3 {
			st = run.StatusFailed
		}
		r := &run.PipelineRun{ID: i, Space: "s", PipelineUUID: "p", PipelineScheduleID: 9, CommandID: "c" + string(rune('0'+i)), Status: st, ExecutionDate: at.Add(time.Duration(i) * time.Hour)}
		doc, err := encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.w.ExecContext(ctx, `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append(runColumns(r), doc)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.CreatePipeline(ctx, &pipeline.Pipeline{Space: "s", UUID: "p"}); err != nil {
		t.Fatal(err)
	}
	if err := old.CreateSchedule(ctx, &schedule.Schedule{ID: 9, Space: "s", PipelineUUID: "p", Name: "t", ScheduleType: schedule.TypeTime, Status: schedule.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir)
	var v int
	if err := s.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion() {
		t.Fatalf("schema version %d (%v), want %d", v, err, SchemaVersion())
	}
	runs, total, err := s.ListRuns(ctx, store.RunFilter{Space: "s", ScheduleID: 9}, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(runs) != 3 || runs[0].ID != 3 {
		t.Fatalf("after migration: total %d, runs %d", total, len(runs))
	}
	_, failed, err := s.ListRuns(ctx, store.RunFilter{Space: "s", Status: run.StatusFailed}, store.Page{Limit: 10})
	if err != nil || failed != 1 {
		t.Fatalf("failed runs counted %d (%v), want 1", failed, err)
	}
	if _, err := s.GetPipeline(ctx, "s", "p"); err != nil {
		t.Fatal(err)
	}
	// Columns generated from the document cover rows written before they existed.
	scs, n, err := s.ListSchedules(ctx, store.ScheduleFilter{Type: schedule.TypeTime, Status: schedule.StatusActive}, store.Page{Limit: 10})
	if err != nil || n != 1 || len(scs) != 1 || scs[0].ID != 9 {
		t.Fatalf("active time schedules after migration: %d %v (%v), want schedule 9", n, scs, err)
	}
	if _, err := s.UpdateRun(ctx, 1, func(r *run.PipelineRun) error { r.Status = run.StatusRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	if active, err := s.ActiveRuns(ctx, 10); err != nil || len(active) != 1 || active[0].ID != 1 {
		t.Fatalf("active runs after migration: %v (%v), want run 1", active, err)
	}
	// A newer database than the build is refused, not silently used.
	if _, err := s.w.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}
