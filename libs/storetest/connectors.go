package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// ConnectorStore is what the suite exercises of connectors, their sync jobs and the records
// they mirror, part of Store.
type ConnectorStore interface {
	CreateConnector(ctx context.Context, c *connector.Connector) error
	GetConnector(ctx context.Context, space, id string) (*connector.Connector, error)
	// ListConnectors orders by space, then name.
	ListConnectors(ctx context.Context, f connector.ConnectorFilter, pg store.Page) ([]connector.Connector, int64, error)
	UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error)
	DeleteConnector(ctx context.Context, space, id string) error

	CreateSyncJob(ctx context.Context, j *connector.SyncJob) error
	GetSyncJob(ctx context.Context, space, id string) (*connector.SyncJob, error)
	// ListSyncJobs orders newest created first.
	ListSyncJobs(ctx context.Context, f connector.SyncJobFilter, pg store.Page) ([]connector.SyncJob, int64, error)
	UpdateSyncJob(ctx context.Context, space, id string, fn func(*connector.SyncJob) error) (*connector.SyncJob, error)

	UpsertProviderPipeline(ctx context.Context, p *pipeline.Pipeline) (connector.Outcome, error)
	UpsertProviderRun(ctx context.Context, r *run.PipelineRun) (connector.Outcome, error)
	UpsertProviderBlockRuns(ctx context.Context, runID int64, brs []run.BlockRun) (connector.Counts, error)
	// UpsertProviderRuns upserts a batch of runs with their block runs; see connector.RunUpsert.
	UpsertProviderRuns(ctx context.Context, items []connector.RunUpsert) error
	// GetRunsByCommands returns the stored runs of the command ids, leaving out ids without one.
	GetRunsByCommands(ctx context.Context, commandIDs ...string) ([]run.PipelineRun, error)
}

func newConnector(id, space, name string, created time.Time) *connector.Connector {
	c := &connector.Connector{
		ID: id, Space: space, Name: name, Type: connector.TypeAirflow, BaseURL: "https://airflow.example.com",
		APIVersion: connector.APIVersionAuto, Auth: connector.Auth{Kind: connector.AuthPassword, Username: "admin", SecretSealed: "v1:sealed-" + id},
		Sync:      connector.SyncSettings{IntervalSeconds: 300, LookbackDays: 7, DAGIDPattern: "^etl_"},
		CreatedAt: created, UpdatedAt: created, Version: 1,
	}
	return c
}

func testConnectors(t *testing.T, s Store) {
	c := ctx(t)
	base := store.Now()
	must(t, s.CreateConnector(c, newConnector("con_a", "s1", "prod", base)))
	must(t, s.CreateConnector(c, newConnector("con_b", "s1", "dev", base)))
	must(t, s.CreateConnector(c, newConnector("con_c", "s2", "prod", base)))
	wantErr(t, s.CreateConnector(c, newConnector("con_a", "s3", "x", base)), store.ErrDuplicate)
	wantErr(t, s.CreateConnector(c, newConnector("con_d", "s1", "prod", base)), store.ErrDuplicate)

	got, err := s.GetConnector(c, "s1", "con_a")
	must(t, err)
	if got.Name != "prod" || got.Auth.Kind != connector.AuthPassword || got.Auth.SecretSealed != "v1:sealed-con_a" || got.Auth.Username != "admin" ||
		got.Sync.DAGIDPattern != "^etl_" || got.Sync.IntervalSeconds != 300 || !got.CreatedAt.Equal(base) || got.LastSync != nil {
		t.Fatalf("connector read back wrong: %+v", got)
	}
	_, err = s.GetConnector(c, "s2", "con_a")
	wantErr(t, err, store.ErrNotFound)

	list, total, err := s.ListConnectors(c, connector.ConnectorFilter{Space: "s1"}, store.Page{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].Name != "dev" || list[1].Name != "prod" {
		t.Fatalf("connectors of s1: %d %+v", total, list)
	}
	all, total, err := s.ListConnectors(c, connector.ConnectorFilter{}, store.Page{Limit: 2})
	must(t, err)
	if total != 3 || len(all) != 2 || all[0].ID != "con_b" {
		t.Fatalf("first page of all connectors: %d %+v", total, all)
	}

	at := store.Now()
	upd, err := s.UpdateConnector(c, "s1", "con_a", func(k *connector.Connector) error {
		k.LastSync = &connector.LastSync{Status: connector.JobCompleted, JobID: "sync_1", At: at}
		k.DetectedVersion = connector.APIVersionV2
		return nil
	})
	must(t, err)
	if upd.Version != 2 || upd.LastSync == nil || upd.LastSync.JobID != "sync_1" {
		t.Fatalf("updated connector: %+v", upd)
	}
	_, err = s.UpdateConnector(c, "s1", "con_a", func(k *connector.Connector) error { k.Name = "dev"; return nil })
	wantErr(t, err, store.ErrDuplicate)
	_, err = s.UpdateConnector(c, "s2", "con_a", func(*connector.Connector) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	got, err = s.GetConnector(c, "s1", "con_a")
	must(t, err)
	if got.Name != "prod" || got.Version != 2 || got.LastSync == nil || !got.LastSync.At.Equal(at) || got.DetectedVersion != "v2" {
		t.Fatalf("connector after updates: %+v", got)
	}

	must(t, s.CreateSyncJob(c, &connector.SyncJob{ID: "sync_1", ConnectorID: "con_a", Space: "s1", Status: connector.JobQueued, CreatedAt: at}))
	wantErr(t, s.DeleteConnector(c, "s2", "con_a"), store.ErrNotFound)
	must(t, s.DeleteConnector(c, "s1", "con_a"))
	_, err = s.GetConnector(c, "s1", "con_a")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetSyncJob(c, "s1", "sync_1")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteConnector(c, "s1", "con_a"), store.ErrNotFound)
}

func testSyncJobs(t *testing.T, s Store) {
	c := ctx(t)
	base := store.Now().Add(-time.Hour)
	for i, j := range []struct{ id, con, space string }{{"sync_1", "con_a", "s1"}, {"sync_2", "con_a", "s1"}, {"sync_3", "con_b", "s1"}, {"sync_4", "con_c", "s2"}} {
		must(t, s.CreateSyncJob(c, &connector.SyncJob{ID: j.id, ConnectorID: j.con, Space: j.space, Status: connector.JobQueued,
			CreatedAt: base.Add(time.Duration(i) * time.Minute), UpdatedAt: base, Version: 1}))
	}
	wantErr(t, s.CreateSyncJob(c, &connector.SyncJob{ID: "sync_1", ConnectorID: "con_a", Space: "s1", Status: connector.JobQueued}), store.ErrDuplicate)

	started := store.Now()
	j, err := s.UpdateSyncJob(c, "s1", "sync_2", func(j *connector.SyncJob) error {
		j.Status, j.StartedAt = connector.JobRunning, &started
		j.DAGs.Add(connector.Created)
		j.Runs.Add(connector.Updated)
		j.TaskRuns.Add(connector.Unchanged)
		return nil
	})
	must(t, err)
	if j.Version != 2 || j.Status != connector.JobRunning {
		t.Fatalf("updated job: %+v", j)
	}
	_, err = s.UpdateSyncJob(c, "s2", "sync_2", func(*connector.SyncJob) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateSyncJob(c, "s1", "sync_2", func(*connector.SyncJob) error { return run.ErrNoChange })
	if !errors.Is(err, run.ErrNoChange) {
		t.Fatalf("closure error not returned: %v", err)
	}
	got, err := s.GetSyncJob(c, "s1", "sync_2")
	must(t, err)
	want := connector.Counts{Seen: 1, Created: 1}
	if got.Version != 2 || got.DAGs != want || got.Runs != (connector.Counts{Seen: 1, Updated: 1}) || got.TaskRuns != (connector.Counts{Seen: 1}) ||
		got.StartedAt == nil || !got.StartedAt.Equal(started) {
		t.Fatalf("job read back wrong: %+v", got)
	}

	jobs, total, err := s.ListSyncJobs(c, connector.SyncJobFilter{ConnectorID: "con_a"}, store.Page{})
	must(t, err)
	if total != 2 || len(jobs) != 2 || jobs[0].ID != "sync_2" || jobs[1].ID != "sync_1" {
		t.Fatalf("jobs of con_a: %d %+v", total, jobs)
	}
	jobs, total, err = s.ListSyncJobs(c, connector.SyncJobFilter{Space: "s1", Status: connector.JobQueued}, store.Page{Limit: 1})
	must(t, err)
	if total != 2 || len(jobs) != 1 || jobs[0].ID != "sync_3" {
		t.Fatalf("queued jobs of s1: %d %+v", total, jobs)
	}
}

// testProviderUpserts covers the upserts a sync writes with: each reports created, updated
// or unchanged; an unchanged record is not written (its version stays); governance fields
// survive; mirrored runs count in the pipeline statistics.
func testProviderUpserts(t *testing.T, s Store) {
	c := ctx(t)
	dag := airflow.DAG{DAGID: "team.etl_sales", DisplayName: "team.etl_sales", Description: "sales", IsActive: true,
		Owners: []string{"data-eng"}, Tags: []string{"etl"}, Schedule: "0 0 * * *",
		Raw: map[string]any{"dag_id": "team.etl_sales", "schedule_interval": map[string]any{"__type": "CronExpression", "value": "0 0 * * *"}, "tags": []any{map[string]any{"name": "etl"}}}}
	p := connector.PipelineFromDAG("s1", "con_a", dag)
	if err := (&pipeline.Pipeline{UUID: p.UUID, Blocks: []pipeline.Block{{UUID: "b", Type: pipeline.KindNoop}}}).Validate("pipeline"); err != nil && strings.Contains(err.Error(), "pipeline.uuid") {
		t.Fatalf("mirrored pipeline uuid %q is not a valid uuid: %v", p.UUID, err)
	}
	out, err := s.UpsertProviderPipeline(c, p)
	must(t, err)
	if out != connector.Created {
		t.Fatalf("first upsert: %s", out)
	}
	out, err = s.UpsertProviderPipeline(c, connector.PipelineFromDAG("s1", "con_a", dag))
	must(t, err)
	if out != connector.Unchanged {
		t.Fatalf("same DAG again: %s", out)
	}
	_, err = s.UpdatePipeline(c, "s1", p.UUID, func(p *pipeline.Pipeline) error { p.TeamID, p.Criticality = "team_x", "high"; return nil })
	must(t, err)
	before, err := s.GetPipeline(c, "s1", p.UUID)
	must(t, err)
	dag.IsPaused, dag.Tags = true, []string{"etl", "finance"}
	dag.Raw["is_paused"] = true
	out, err = s.UpsertProviderPipeline(c, connector.PipelineFromDAG("s1", "con_a", dag))
	must(t, err)
	if out != connector.Updated {
		t.Fatalf("changed DAG: %s", out)
	}
	got, err := s.GetPipeline(c, "s1", p.UUID)
	must(t, err)
	if got.TeamID != "team_x" || got.Criticality != "high" || got.State != pipeline.StatePaused || len(got.Tags) != 2 ||
		got.Provider != pipeline.ProviderAirflow || got.ProviderID != "team.etl_sales" || got.ConnectorID != "con_a" ||
		got.ScheduleDescription != "0 0 * * *" || got.Version != before.Version+1 || !got.CreatedAt.Equal(before.CreatedAt) {
		t.Fatalf("pipeline after upsert: %+v", got)
	}
	out, err = s.UpsertProviderPipeline(c, connector.PipelineFromDAG("s1", "con_a", dag))
	must(t, err)
	if again, _ := s.GetPipeline(c, "s1", p.UUID); out != connector.Unchanged || again.Version != got.Version {
		t.Fatalf("unchanged DAG rewrote the pipeline: %s, version %d → %d", out, got.Version, again.Version)
	}

	start := time.Date(2026, 4, 1, 10, 0, 0, 123456000, time.UTC)
	logical := start.Add(-time.Hour)
	ar := airflow.DAGRun{DAGID: dag.DAGID, RunID: "scheduled__2026-04-01T09:00:00+00:00", LogicalDate: &logical, RunAfter: &logical,
		StartDate: &start, State: airflow.RunRunning, RunType: airflow.RunTypeScheduled, Conf: map[string]any{"n": 1.0}}
	r := connector.RunFromDAGRun("s1", "con_a", p.UUID, ar)
	out, err = s.UpsertProviderRun(c, r)
	must(t, err)
	if out != connector.Created || r.ID == 0 {
		t.Fatalf("first run upsert: %s, id %d", out, r.ID)
	}
	runID := r.ID
	again := connector.RunFromDAGRun("s1", "con_a", p.UUID, ar)
	out, err = s.UpsertProviderRun(c, again)
	must(t, err)
	stored, err := s.GetRun(c, runID)
	must(t, err)
	if out != connector.Unchanged || again.ID != runID || stored.Version != 1 || stored.Status != run.StatusRunning ||
		stored.ProviderRunID != ar.RunID || stored.Provider != pipeline.ProviderAirflow || stored.Variables["n"] != 1.0 {
		t.Fatalf("same run again: %s, stored %+v", out, stored)
	}
	stats, err := s.PipelineStats(c, "s1", []string{p.UUID}, logical.Add(-24*time.Hour))
	must(t, err)
	if stats[p.UUID].Runs[run.StatusRunning] != 1 {
		t.Fatalf("stats do not count the mirrored run: %+v", stats[p.UUID])
	}
	end := start.Add(90 * time.Second)
	ar.State, ar.EndDate = airflow.RunSuccess, &end
	out, err = s.UpsertProviderRun(c, connector.RunFromDAGRun("s1", "con_a", p.UUID, ar))
	must(t, err)
	stored, err = s.GetRun(c, runID)
	must(t, err)
	if out != connector.Updated || stored.Status != run.StatusCompleted || stored.CompletedAt == nil || stored.Version != 2 {
		t.Fatalf("finished run: %s, %+v", out, stored)
	}
	stats, err = s.PipelineStats(c, "s1", []string{p.UUID}, logical.Add(-24*time.Hour))
	must(t, err)
	if st := stats[p.UUID]; st.Runs[run.StatusRunning] != 0 || st.Runs[run.StatusCompleted] != 1 || st.CompletedSeconds < 89 || st.CompletedSeconds > 91 {
		t.Fatalf("stats after the run finished: %+v", st)
	}
	_, err = s.UpsertProviderRun(c, connector.RunFromDAGRun("s2", "con_a", p.UUID, ar))
	if !errors.Is(err, connector.ErrForeignRecord) {
		t.Fatalf("the same run key in another space: %v", err)
	}

	tis := []airflow.TaskInstance{
		{TaskID: "extract", MapIndex: -1, TryNumber: 2, MaxTries: 2, State: airflow.TaskSuccess, StartDate: &start, EndDate: &end},
		{TaskID: "fan_out", MapIndex: 0, TryNumber: 1, State: airflow.TaskSuccess, StartDate: &start, EndDate: &end},
		{TaskID: "fan_out", MapIndex: 1, TryNumber: 1, State: airflow.TaskRunning, StartDate: &start},
	}
	brs := func() []run.BlockRun {
		out := make([]run.BlockRun, len(tis))
		for i, ti := range tis {
			out[i] = connector.BlockRunFromTI("s1", p.UUID, runID, ti)
		}
		return out
	}
	counts, err := s.UpsertProviderBlockRuns(c, runID, brs())
	must(t, err)
	if counts != (connector.Counts{Seen: 3, Created: 3}) {
		t.Fatalf("first block run upsert: %+v", counts)
	}
	counts, err = s.UpsertProviderBlockRuns(c, runID, brs())
	must(t, err)
	if counts != (connector.Counts{Seen: 3}) {
		t.Fatalf("same task instances again: %+v", counts)
	}
	tis[2].State, tis[2].TryNumber, tis[2].EndDate = airflow.TaskFailed, 3, &end
	counts, err = s.UpsertProviderBlockRuns(c, runID, brs())
	must(t, err)
	if counts != (connector.Counts{Seen: 3, Updated: 1}) {
		t.Fatalf("one task instance changed: %+v", counts)
	}
	stored2, err := s.BlockRunsOf(c, runID)
	must(t, err)
	if len(stored2) != 3 {
		t.Fatalf("block runs stored: %d", len(stored2))
	}
	byUUID := map[string]run.BlockRun{}
	for _, br := range stored2 {
		byUUID[br.BlockUUID] = br
	}
	if br := byUUID["fan_out[1]"]; br.Status != run.StatusFailed || br.TryNumber != 3 || br.MapIndex == nil || *br.MapIndex != 1 || br.Version != 2 {
		t.Fatalf("mapped block run: %+v", br)
	}
	if br := byUUID["extract"]; br.Status != run.StatusCompleted || br.TryNumber != 2 || br.MapIndex == nil || *br.MapIndex != -1 || br.Version != 1 || br.ProviderTaskID != "extract" {
		t.Fatalf("unmapped block run: %+v", br)
	}

	t.Run("Batch", func(t *testing.T) { testProviderRunBatch(t, s) })
}

// testProviderRunBatch covers the batch upsert a sync stores a page of runs with: the same
// outcomes as the single upserts, per run and per block run, with the statuses they
// replaced; nothing written for an unchanged record; Runyard's own fields kept; statistics
// counting the runs; a batch naming another space's run refused whole.
func testProviderRunBatch(t *testing.T, s Store) {
	c := ctx(t)
	const sp, con = "batch", "con_batch"
	p := connector.PipelineFromDAG(sp, con, airflow.DAG{DAGID: "etl_batch", DisplayName: "etl_batch", IsActive: true})
	_, err := s.UpsertProviderPipeline(c, p)
	must(t, err)
	start := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Minute)
	dr := func(i int, state string) airflow.DAGRun {
		logical := start.Add(-time.Duration(i) * time.Hour)
		r := airflow.DAGRun{DAGID: "etl_batch", RunID: fmt.Sprintf("scheduled__%d", i), LogicalDate: &logical, StartDate: &start, State: state, RunType: airflow.RunTypeScheduled}
		if state == airflow.RunSuccess {
			r.EndDate = &end
		}
		return r
	}
	runs := []airflow.DAGRun{dr(1, airflow.RunRunning), dr(2, airflow.RunSuccess), dr(3, airflow.RunQueued)}
	tis := [][]airflow.TaskInstance{
		{
			{TaskID: "extract", MapIndex: -1, TryNumber: 1, State: airflow.TaskSuccess, StartDate: &start, EndDate: &end},
			{TaskID: "load", MapIndex: -1, TryNumber: 1, State: airflow.TaskRunning, StartDate: &start},
			{TaskID: "load", MapIndex: -1, TryNumber: 1, State: airflow.TaskRunning, StartDate: &start}, // listed twice
		},
		{{TaskID: "extract", MapIndex: -1, TryNumber: 1, State: airflow.TaskSuccess, StartDate: &start, EndDate: &end}},
		nil, // its task instances are not read
	}
	batch := func() []connector.RunUpsert {
		items := make([]connector.RunUpsert, len(runs))
		for i := range runs {
			items[i].Run = connector.RunFromDAGRun(sp, con, p.UUID, runs[i])
			if tis[i] != nil {
				items[i].BlockRuns = []run.BlockRun{}
				for _, ti := range tis[i] {
					items[i].BlockRuns = append(items[i].BlockRuns, connector.BlockRunFromTI(sp, p.UUID, 0, ti))
				}
			}
		}
		return items
	}
	items := batch()
	got, err := s.GetRunsByCommands(c, connector.CommandIDs(items)...)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("runs of unknown commands: %+v", got)
	}
	must(t, s.UpsertProviderRuns(c, items))
	ids := map[int64]bool{}
	for i, it := range items {
		if it.Outcome != connector.Created || it.Prev != "" || it.Run.ID == 0 || ids[it.Run.ID] || it.Run.Version != 1 {
			t.Fatalf("item %d of the first batch: %s, prev %q, %+v", i, it.Outcome, it.Prev, it.Run)
		}
		ids[it.Run.ID] = true
	}
	if want := (connector.Counts{Seen: 2, Created: 2}); items[0].BlockCounts != want || len(items[0].BlockRuns) != 2 || items[2].BlockRuns != nil || items[2].BlockCounts != (connector.Counts{}) {
		t.Fatalf("block runs of the first batch: %+v %+v / %+v", items[0].BlockCounts, items[0].BlockRuns, items[2])
	}
	for j, br := range items[0].BlockRuns {
		if br.ID == 0 || br.PipelineRunID != items[0].Run.ID || items[0].BlockOutcomes[j] != connector.Created || items[0].BlockPrev[j] != "" {
			t.Fatalf("block run %d of the first batch: %s %+v", j, items[0].BlockOutcomes[j], br)
		}
	}
	stored, err := s.GetRun(c, items[1].Run.ID)
	must(t, err)
	if stored.CommandID != items[1].Run.CommandID || stored.Status != run.StatusCompleted || stored.ProviderRunID != "scheduled__2" || stored.Version != 1 {
		t.Fatalf("stored run: %+v", stored)
	}
	brs, err := s.BlockRunsOf(c, items[0].Run.ID, items[2].Run.ID)
	must(t, err)
	if len(brs) != 2 || brs[0].ID != items[0].BlockRuns[0].ID || brs[1].BlockUUID != "load" || brs[1].Status != run.StatusRunning {
		t.Fatalf("stored block runs: %+v", brs)
	}
	got, err = s.GetRunsByCommands(c, append(connector.CommandIDs(items), "airflow/con_batch/etl_batch/none")...)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("runs of the batch's commands: %d", len(got))
	}
	since := start.Add(-24 * time.Hour)
	stats, err := s.PipelineStats(c, sp, []string{p.UUID}, since)
	must(t, err)
	if st := stats[p.UUID].Runs; st[run.StatusRunning] != 1 || st[run.StatusCompleted] != 1 || st[run.StatusInitial] != 1 {
		t.Fatalf("stats of the first batch: %+v", stats[p.UUID])
	}

	// Runyard's own fields, which an upsert must keep.
	_, err = s.UpdateRun(c, items[0].Run.ID, func(r *run.PipelineRun) error { r.RuntimeVariables = map[string]any{"kept": "yes"}; return nil })
	must(t, err)
	_, err = s.UpdateBlockRun(c, items[0].BlockRuns[1].ID, func(br *run.BlockRun) error { br.Log = "kept log"; return nil })
	must(t, err)

	again := batch()
	must(t, s.UpsertProviderRuns(c, again))
	for i, it := range again {
		if it.Outcome != connector.Unchanged || it.Run.ID != items[i].Run.ID || it.Prev != it.Run.Status {
			t.Fatalf("item %d of the same batch again: %s, prev %q, %+v", i, it.Outcome, it.Prev, it.Run)
		}
	}
	if again[0].BlockCounts != (connector.Counts{Seen: 2}) || again[0].BlockOutcomes[1] != connector.Unchanged || again[0].BlockPrev[1] != run.StatusRunning {
		t.Fatalf("block runs of the same batch again: %+v %v %v", again[0].BlockCounts, again[0].BlockOutcomes, again[0].BlockPrev)
	}
	if r, _ := s.GetRun(c, items[0].Run.ID); r.Version != 2 {
		t.Fatalf("an unchanged run was written: version %d", r.Version)
	}

	// Airflow moves on: the running run succeeds with its last task, and the queued run's
	// task instances are read for the first time.
	runs[0] = dr(1, airflow.RunSuccess)
	tis[0] = tis[0][:2]
	tis[0][1].State, tis[0][1].EndDate = airflow.TaskSuccess, &end
	tis[2] = []airflow.TaskInstance{{TaskID: "extract", MapIndex: -1, State: airflow.TaskScheduled}}
	moved := batch()
	must(t, s.UpsertProviderRuns(c, moved))
	if it := moved[0]; it.Outcome != connector.Updated || it.Prev != run.StatusRunning || it.Run.Status != run.StatusCompleted || it.Run.Version != 3 ||
		it.Run.RuntimeVariables["kept"] != "yes" || it.BlockCounts != (connector.Counts{Seen: 2, Updated: 1}) ||
		it.BlockOutcomes[1] != connector.Updated || it.BlockPrev[1] != run.StatusRunning || it.BlockRuns[1].Status != run.StatusCompleted {
		t.Fatalf("the run that moved on: %s, prev %q, %+v, blocks %+v %v", it.Outcome, it.Prev, it.Run, it.BlockCounts, it.BlockOutcomes)
	}
	if it := moved[2]; it.Outcome != connector.Unchanged || it.BlockCounts != (connector.Counts{Seen: 1, Created: 1}) || it.BlockRuns[0].PipelineRunID != it.Run.ID {
		t.Fatalf("the queued run's first task instances: %s %+v %+v", it.Outcome, it.BlockCounts, it.BlockRuns)
	}
	r, err := s.GetRun(c, items[0].Run.ID)
	must(t, err)
	if r.Status != run.StatusCompleted || r.RuntimeVariables["kept"] != "yes" || r.Version != 3 || r.CompletedAt == nil {
		t.Fatalf("stored run after it moved on: %+v", r)
	}
	kept, err := s.GetBlockRun(c, items[0].BlockRuns[1].ID)
	must(t, err)
	if kept.Log != "kept log" || kept.Status != run.StatusCompleted {
		t.Fatalf("updated block run: %+v", kept)
	}
	stats, err = s.PipelineStats(c, sp, []string{p.UUID}, since)
	must(t, err)
	if st := stats[p.UUID].Runs; st[run.StatusRunning] != 0 || st[run.StatusCompleted] != 2 || st[run.StatusInitial] != 1 {
		t.Fatalf("stats after a run moved on: %+v", stats[p.UUID])
	}

	// Another space's run under the same key: the whole batch is refused, nothing written.
	fresh := dr(9, airflow.RunRunning)
	foreign := []connector.RunUpsert{
		{Run: connector.RunFromDAGRun(sp, con, p.UUID, fresh)},
		{Run: connector.RunFromDAGRun("elsewhere", con, p.UUID, runs[1])},
	}
	if err := s.UpsertProviderRuns(c, foreign); !errors.Is(err, connector.ErrForeignRecord) {
		t.Fatalf("a batch with another space's run: %v", err)
	}
	if got, _ := s.GetRunsByCommands(c, foreign[0].Run.CommandID); len(got) != 0 {
		t.Fatalf("a refused batch wrote %+v", got)
	}
	twice := []connector.RunUpsert{{Run: connector.RunFromDAGRun(sp, con, p.UUID, fresh)}, {Run: connector.RunFromDAGRun(sp, con, p.UUID, fresh)}}
	if err := s.UpsertProviderRuns(c, twice); err == nil {
		t.Fatal("a batch naming one run twice was accepted")
	}
}
