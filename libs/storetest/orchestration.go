package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// OrchestrationStore is what the orchestration API reads beyond the rest of the suite.
type OrchestrationStore interface {
	// ListPipelinesFiltered orders by uuid; f.Space is required.
	ListPipelinesFiltered(ctx context.Context, f store.PipelineFilter, pg store.Page) ([]pipeline.Pipeline, int64, error)
}

func uuids(ps []pipeline.Pipeline) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.UUID
	}
	return out
}

func testPipelineFilters(t *testing.T, s Store) {
	c := ctx(t)
	mk := func(space, uuid string, edit func(p *pipeline.Pipeline)) {
		p := newPipeline(space, uuid)
		p.Provider, p.State, p.Owners, p.Tags = pipeline.ProviderNative, pipeline.StateActive, []string{}, []string{}
		edit(p)
		must(t, s.CreatePipeline(c, p))
	}
	mk("s1", "orders_daily", func(p *pipeline.Pipeline) {
		p.Name, p.Description = "Orders Daily", "Loads the ORDERS table"
		p.Owners, p.TeamID, p.Criticality = []string{"alice", "bob"}, "team_a", "high"
	})
	mk("s1", "af_billing", func(p *pipeline.Pipeline) {
		p.Provider, p.ConnectorID, p.ProviderID, p.Name = pipeline.ProviderAirflow, "conn_1", "billing_dag", "Billing"
		p.Owners, p.Criticality, p.State = []string{"airflow"}, "critical", pipeline.StatePaused
	})
	mk("s1", "af_gone", func(p *pipeline.Pipeline) {
		p.Provider, p.ConnectorID, p.ProviderID = pipeline.ProviderAirflow, "conn_2", "gone_dag"
		p.State, p.TeamID, p.Owners = pipeline.StateInactive, "team_a", []string{"bob"}
	})
	// Stored before providers existed: no provider, state, owners; reads as native and active.
	mk("s1", "legacy", func(p *pipeline.Pipeline) {
		p.Provider, p.State, p.Owners, p.Tags, p.Description = "", "", nil, nil, "bob's old job"
	})
	mk("s2", "orders_daily", func(p *pipeline.Pipeline) { p.TeamID, p.Owners = "team_a", []string{"alice"} })

	for _, tc := range []struct {
		name string
		f    store.PipelineFilter
		want []string
	}{
		{"all", store.PipelineFilter{}, []string{"af_billing", "af_gone", "legacy", "orders_daily"}},
		{"native, legacy included", store.PipelineFilter{Provider: pipeline.ProviderNative}, []string{"legacy", "orders_daily"}},
		{"airflow", store.PipelineFilter{Provider: pipeline.ProviderAirflow}, []string{"af_billing", "af_gone"}},
		{"active, legacy included", store.PipelineFilter{State: pipeline.StateActive}, []string{"legacy", "orders_daily"}},
		{"paused", store.PipelineFilter{State: pipeline.StatePaused}, []string{"af_billing"}},
		{"inactive", store.PipelineFilter{State: pipeline.StateInactive}, []string{"af_gone"}},
		{"owner exact", store.PipelineFilter{Owner: "bob"}, []string{"af_gone", "orders_daily"}},
		{"owner is not a substring", store.PipelineFilter{Owner: "bo"}, nil},
		{"criticality", store.PipelineFilter{Criticality: "critical"}, []string{"af_billing"}},
		{"team", store.PipelineFilter{TeamID: "team_a"}, []string{"af_gone", "orders_daily"}},
		{"connector", store.PipelineFilter{ConnectorID: "conn_1"}, []string{"af_billing"}},
		{"q on name, any case", store.PipelineFilter{Query: "oRdErS d"}, []string{"orders_daily"}},
		{"q on uuid", store.PipelineFilter{Query: "AF_"}, []string{"af_billing", "af_gone"}},
		{"q on description", store.PipelineFilter{Query: "old job"}, []string{"legacy"}},
		{"q on provider id", store.PipelineFilter{Query: "billing_DAG"}, []string{"af_billing"}},
		{"q is literal", store.PipelineFilter{Query: ".*"}, nil},
		{"team and owner", store.PipelineFilter{TeamID: "team_a", Owner: "alice"}, []string{"orders_daily"}},
		{"airflow and inactive and connector", store.PipelineFilter{Provider: pipeline.ProviderAirflow, State: pipeline.StateInactive, ConnectorID: "conn_2"}, []string{"af_gone"}},
		{"contradiction", store.PipelineFilter{Provider: pipeline.ProviderNative, ConnectorID: "conn_1"}, nil},
	} {
		f := tc.f
		f.Space = "s1"
		ps, total, err := s.ListPipelinesFiltered(c, f, store.Page{Limit: 50})
		must(t, err)
		if got := uuids(ps); !slices.Equal(got, tc.want) || total != int64(len(tc.want)) {
			t.Errorf("%s: %d %v, want %v", tc.name, total, got, tc.want)
		}
	}

	// A page, with the total of the whole list.
	ps, total, err := s.ListPipelinesFiltered(c, store.PipelineFilter{Space: "s1", Owner: "bob"}, store.Page{Limit: 1, Offset: 1})
	must(t, err)
	if total != 2 || len(ps) != 1 || ps[0].UUID != "orders_daily" || ps[0].TeamID != "team_a" || !slices.Equal(ps[0].Owners, []string{"alice", "bob"}) {
		t.Fatalf("page 2 of bob's pipelines: %d %+v", total, ps)
	}

	// Watched pipelines are the caller's own, in the space asked for.
	for _, w := range []access.Watch{
		{Space: "s1", PipelineUUID: "af_gone", UserID: "u1"},
		{Space: "s1", PipelineUUID: "legacy", UserID: "u1"},
		{Space: "s1", PipelineUUID: "orders_daily", UserID: "u2"},
		{Space: "s2", PipelineUUID: "orders_daily", UserID: "u1"},
	} {
		w.CreatedAt = store.Now()
		must(t, s.PutWatch(c, w))
	}
	for _, tc := range []struct {
		f    store.PipelineFilter
		want []string
	}{
		{store.PipelineFilter{Space: "s1", WatchedBy: "u1"}, []string{"af_gone", "legacy"}},
		{store.PipelineFilter{Space: "s1", WatchedBy: "u1", Owner: "bob"}, []string{"af_gone"}},
		{store.PipelineFilter{Space: "s1", WatchedBy: "u2"}, []string{"orders_daily"}},
		{store.PipelineFilter{Space: "s2", WatchedBy: "u1"}, []string{"orders_daily"}},
		{store.PipelineFilter{Space: "s1", WatchedBy: "u3"}, nil},
	} {
		ps, total, err := s.ListPipelinesFiltered(c, tc.f, store.Page{Limit: 50})
		must(t, err)
		if got := uuids(ps); fmt.Sprint(got) != fmt.Sprint(append([]string{}, tc.want...)) || total != int64(len(tc.want)) {
			t.Errorf("watched %+v: %d %v, want %v", tc.f, total, got, tc.want)
		}
	}

	// Governance fields written through UpdatePipeline are what the filters see.
	_, err = s.UpdatePipeline(c, "s1", "legacy", func(p *pipeline.Pipeline) error { p.TeamID, p.Criticality = "team_b", "low"; return nil })
	must(t, err)
	ps, _, err = s.ListPipelinesFiltered(c, store.PipelineFilter{Space: "s1", TeamID: "team_b", Criticality: "low"}, store.Page{Limit: 50})
	must(t, err)
	if got := uuids(ps); !slices.Equal(got, []string{"legacy"}) {
		t.Fatalf("after update: %v", got)
	}
	_, err = s.UpdatePipeline(c, "s1", "legacy", func(p *pipeline.Pipeline) error { p.TeamID = ""; return nil })
	must(t, err)
	ps, _, err = s.ListPipelinesFiltered(c, store.PipelineFilter{Space: "s1", TeamID: "team_b"}, store.Page{Limit: 50})
	must(t, err)
	if len(ps) != 0 {
		t.Fatalf("cleared team still matches: %v", uuids(ps))
	}

	// Owners and searchable text follow updates and deletions; an owner listed twice is one
	// match.
	_, err = s.UpdatePipeline(c, "s1", "legacy", func(p *pipeline.Pipeline) error {
		p.Owners, p.Name = []string{"carol", "carol"}, "Renamed Job"
		return nil
	})
	must(t, err)
	for _, tc := range []struct {
		f    store.PipelineFilter
		want []string
	}{
		{store.PipelineFilter{Owner: "carol"}, []string{"legacy"}},
		{store.PipelineFilter{Owner: "bob"}, []string{"af_gone", "orders_daily"}},
		{store.PipelineFilter{Query: "renamed"}, []string{"legacy"}},
		{store.PipelineFilter{Query: "old job"}, []string{"legacy"}},
	} {
		tc.f.Space = "s1"
		ps, total, err := s.ListPipelinesFiltered(c, tc.f, store.Page{Limit: 50})
		must(t, err)
		if got := uuids(ps); !slices.Equal(got, tc.want) || total != int64(len(tc.want)) {
			t.Errorf("after update, %+v: %d %v, want %v", tc.f, total, got, tc.want)
		}
	}
	must(t, s.DeletePipeline(c, "s1", "af_gone"))
	must(t, s.CreatePipeline(c, newPipeline("s1", "af_gone"))) // the same uuid again, without owners
	for _, f := range []store.PipelineFilter{{Space: "s1", Owner: "bob"}, {Space: "s1", Query: "gone_dag"}} {
		ps, total, err := s.ListPipelinesFiltered(c, f, store.Page{Limit: 50})
		must(t, err)
		if slices.Contains(uuids(ps), "af_gone") || total != int64(len(ps)) {
			t.Errorf("a deleted pipeline's owners or text still match %+v: %d %v", f, total, uuids(ps))
		}
	}
}

func testRunWindows(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(min int) *time.Time { v := base.Add(time.Duration(min) * time.Minute); return &v }
	for _, r := range []struct {
		id      int64
		pl      string
		typ     string
		st      run.Status
		exec    int
		started *time.Time
	}{
		// Run 1's execution date is old (a backfill date) but it started last: the window is
		// on the start time.
		{1, "p1", run.TypeBackfill, run.StatusCompleted, -600, at(50)},
		{2, "p1", run.TypeManual, run.StatusFailed, 10, at(10)},
		{3, "p1", run.TypeScheduled, run.StatusCompleted, 20, at(20)},
		{4, "p1", run.TypeManual, run.StatusCompleted, 30, at(30)},
		{5, "p1", run.TypeManual, run.StatusInitial, 40, nil}, // waiting: not started
		{6, "p2", run.TypeManual, run.StatusCompleted, 30, at(30)},
	} {
		pr := newRun(r.id, "s1", r.pl, 1, r.st, base.Add(time.Duration(r.exec)*time.Minute))
		pr.RunType, pr.StartedAt = r.typ, r.started
		must(t, s.CreateRun(c, pr))
	}
	for _, tc := range []struct {
		name string
		f    store.RunFilter
		want []int64
	}{
		{"run type", store.RunFilter{RunType: run.TypeManual}, []int64{5, 4, 2}},
		{"run type and status", store.RunFilter{RunType: run.TypeManual, Status: run.StatusCompleted}, []int64{4}},
		{"from, inclusive, by start", store.RunFilter{StartedFrom: at(20)}, []int64{1, 4, 3}},
		{"to, inclusive", store.RunFilter{StartedTo: at(20)}, []int64{3, 2}},
		{"window", store.RunFilter{StartedFrom: at(15), StartedTo: at(45)}, []int64{4, 3}},
		{"window and type", store.RunFilter{StartedFrom: at(0), StartedTo: at(60), RunType: run.TypeManual}, []int64{4, 2}},
		{"window and status", store.RunFilter{StartedFrom: at(0), Status: run.StatusCompleted}, []int64{1, 4, 3}},
		{"empty window", store.RunFilter{StartedFrom: at(31), StartedTo: at(49)}, nil},
		{"window oldest first", store.RunFilter{StartedFrom: at(0), OldestFirst: true}, []int64{2, 3, 4, 1}},
	} {
		f := tc.f
		f.Space, f.PipelineUUID = "s1", "p1"
		runs, total, err := s.ListRuns(c, f, store.Page{Limit: 50})
		must(t, err)
		if fmt.Sprint(ids(runs)) != fmt.Sprint(append([]int64{}, tc.want...)) || total != int64(len(tc.want)) {
			t.Errorf("%s: %d %v, want %v", tc.name, total, ids(runs), tc.want)
		}
	}
	runs, total, err := s.ListRuns(c, store.RunFilter{Space: "s1", PipelineUUID: "p1", StartedFrom: at(0)}, store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 4 || fmt.Sprint(ids(runs)) != "[4 3]" {
		t.Fatalf("page of a window: %d %v", total, ids(runs))
	}
	// A run that starts enters the window.
	_, err = s.UpdateRun(c, 5, func(r *run.PipelineRun) error { r.Status, r.StartedAt = run.StatusRunning, at(45); return nil })
	must(t, err)
	runs, total, err = s.ListRuns(c, store.RunFilter{Space: "s1", PipelineUUID: "p1", StartedFrom: at(40), StartedTo: at(50)}, store.Page{Limit: 50})
	must(t, err)
	if total != 2 || fmt.Sprint(ids(runs)) != "[1 5]" {
		t.Fatalf("window after a run started: %d %v", total, ids(runs))
	}
}
