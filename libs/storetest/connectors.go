package storetest

import (
	"context"
	"errors"
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
}
