package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// TestOrchestrationQueriesUseIndexes fails when an orchestration list would scan a table or
// sort outside an index: the filtered pipeline lists of a space, and a pipeline's runs by
// run type or in a started window.
func TestOrchestrationQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	pg := store.Page{Limit: 100, Offset: 100}
	type query struct {
		q    string
		args []any
	}
	queries := map[string]query{}
	for name, f := range map[string]store.PipelineFilter{
		"pipelines":                 {},
		"pipelines by provider":     {Provider: pipeline.ProviderAirflow},
		"pipelines by state":        {State: pipeline.StatePaused},
		"pipelines by team":         {TeamID: "team_x"},
		"pipelines by connector":    {ConnectorID: "conn_x"},
		"pipelines by criticality":  {Criticality: "high"},
		"pipelines by owner":        {Owner: "alice"},
		"pipelines by text":         {Query: "orders"},
		"watched pipelines":         {WatchedBy: "u"},
		"watched airflow pipelines": {WatchedBy: "u", Provider: pipeline.ProviderAirflow, Owner: "alice", Query: "x"},
		"every filter":              {Provider: pipeline.ProviderAirflow, State: pipeline.StateActive, TeamID: "t", ConnectorID: "c", Criticality: "low", Owner: "o", Query: "q", WatchedBy: "u"},
	} {
		f.Space = "s"
		from, where, args := pipelineFilter(f)
		queries[name] = query{listPipelinesFilteredQuery(from, where, pg), args}
		queries[name+" (count)"] = query{`SELECT count(*) FROM ` + from + where, args}
	}
	from, to := time.Now().Add(-time.Hour), time.Now()
	for name, f := range map[string]store.RunFilter{
		"runs of a type":                 {RunType: run.TypeManual},
		"runs of a type by status":       {RunType: run.TypeManual, Status: run.StatusFailed},
		"runs started since":             {StartedFrom: &from},
		"runs started until":             {StartedTo: &to},
		"runs started in a window":       {StartedFrom: &from, StartedTo: &to},
		"failed runs in a window":        {StartedFrom: &from, StartedTo: &to, Status: run.StatusFailed},
		"manual runs in a window":        {StartedFrom: &from, StartedTo: &to, RunType: run.TypeManual},
		"failed manual runs in a window": {StartedFrom: &from, RunType: run.TypeManual, Status: run.StatusFailed},
	} {
		f.Space, f.PipelineUUID = "s", "p"
		w := runFilter(f)
		q := listRunsQuery(w, pg, false)
		if f.ByStart() {
			q = listRunsByStartQuery(w, pg, false)
		}
		queries[name] = query{q, w.args}
		queries[name+" (count)"] = query{countRunsQuery(f, w), w.args}
	}
	for name, q := range queries {
		joined := queryPlan(t, s, name, q.q, q.args...)
		for _, bad := range []string{"SCAN pipeline_runs", "SCAN pipelines", "SCAN watches", "SCAN pipeline_owners", "SCAN pipeline_search", "USE TEMP B-TREE"} {
			if strings.Contains(joined, bad) {
				t.Errorf("%s is not answered by an index: %s", name, joined)
			}
		}
		if want, ok := map[string]string{
			"pipelines by provider": "pipelines_by_provider", "pipelines by state": "pipelines_by_state", "pipelines by team": "pipelines_by_team",
			"pipelines by connector": "pipelines_by_connector", "pipelines by criticality": "pipelines_by_criticality",
		}[strings.TrimSuffix(name, " (count)")]; ok && !strings.Contains(joined, "INDEX "+want) {
			t.Errorf("%s does not use %s: %s", name, want, joined)
		}
	}
}

// TestOrchestrationMigrationKeepsEarlierRecords writes pipelines and runs at the schema
// version before the orchestration lists existed, then opens the database with this build:
// the generated columns, owners and searchable text must cover the earlier records.
func TestOrchestrationMigrationKeepsEarlierRecords(t *testing.T) {
	t.Parallel()
	before := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE TABLE pipeline_owners") })
	if before < 0 {
		t.Fatal("no orchestration migration")
	}
	dir := t.TempDir()
	ctx := context.Background()
	old, err := openAt(ctx, filepath.Join(dir, FileName), before)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pipeline.Pipeline{
		{Space: "s", UUID: "legacy", Name: "Nightly Export", Owners: []string{"ops"}},
		{Space: "s", UUID: "mirrored", Provider: pipeline.ProviderAirflow, ProviderID: "export_dag", State: pipeline.StatePaused, TeamID: "t1", Criticality: "high", ConnectorID: "c1"},
	} {
		if err := old.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &run.PipelineRun{ID: 1, Space: "s", PipelineUUID: "legacy", CommandID: "c1", Status: run.StatusCompleted, ExecutionDate: at, StartedAt: &at, RunType: run.TypeManual}
	if err := old.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir)
	for _, tc := range []struct {
		f    store.PipelineFilter
		want string
	}{
		{store.PipelineFilter{Provider: pipeline.ProviderNative, State: pipeline.StateActive}, "[legacy]"},
		{store.PipelineFilter{Provider: pipeline.ProviderAirflow, State: pipeline.StatePaused, TeamID: "t1", Criticality: "high", ConnectorID: "c1"}, "[mirrored]"},
		{store.PipelineFilter{Owner: "ops"}, "[legacy]"},
		{store.PipelineFilter{Query: "EXPORT"}, "[legacy mirrored]"},
	} {
		tc.f.Space = "s"
		ps, total, err := s.ListPipelinesFiltered(ctx, tc.f, store.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.UUID)
		}
		if fmt.Sprint(got) != tc.want || total != int64(len(got)) {
			t.Errorf("%+v after migration: %d %v, want %s", tc.f, total, got, tc.want)
		}
	}
	from := at
	runs, total, err := s.ListRuns(ctx, store.RunFilter{Space: "s", PipelineUUID: "legacy", StartedFrom: &from, RunType: run.TypeManual}, store.Page{Limit: 10})
	if err != nil || total != 1 || len(runs) != 1 || runs[0].ID != 1 {
		t.Fatalf("started window after migration: %d %v (%v)", total, runs, err)
	}
}
