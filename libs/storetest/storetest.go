// Package storetest is the conformance suite every Runyard store implementation passes. A
// store's own tests call Run with a constructor that returns a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// Store is everything the suite exercises: the union of what Runyard's services consume.
type Store interface {
	Ping(ctx context.Context) error
	NextIDs(ctx context.Context, name string, n int64) (int64, error)

	CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error
	GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error)
	ListPipelines(ctx context.Context, space string, pg store.Page) ([]pipeline.Pipeline, int64, error)
	UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error)
	DeletePipeline(ctx context.Context, space, uuid string) error

	CreateSchedule(ctx context.Context, sc *schedule.Schedule) error
	GetSchedule(ctx context.Context, id int64) (*schedule.Schedule, error)
	GetSchedules(ctx context.Context, ids []int64) (map[int64]*schedule.Schedule, error)
	ListSchedules(ctx context.Context, f store.ScheduleFilter, pg store.Page) ([]schedule.Schedule, int64, error)
	UpdateSchedule(ctx context.Context, id int64, fn func(*schedule.Schedule) error) (*schedule.Schedule, error)
	DeleteSchedule(ctx context.Context, id int64) error

	CreateRun(ctx context.Context, r *run.PipelineRun) error
	CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error
	GetRun(ctx context.Context, id int64) (*run.PipelineRun, error)
	GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error)
	ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error)
	UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error)
	// ActiveRuns lists initial and running runs of every space, oldest execution date first.
	ActiveRuns(ctx context.Context, limit int) ([]run.PipelineRun, error)
	ListBlockRuns(ctx context.Context, f store.BlockRunFilter, pg store.Page) ([]run.BlockRun, int64, error)
	// BlockRunsOf orders by run, then by id.
	BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error)
	GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error)
	UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error)

	PipelineStats(ctx context.Context, space string, uuids []string, since time.Time) (map[string]store.PipelineStats, error)

	UpdateGate(ctx context.Context, key string, fn func(*run.Gate) error) (*run.Gate, error)
	DeleteGate(ctx context.Context, key string) error

	PutAPIKey(ctx context.Context, k store.APIKey) error
	GetAPIKey(ctx context.Context, hash string) (*store.APIKey, error)
	CountAPIKeys(ctx context.Context) (int64, error)

	SaveOutcome(ctx context.Context, o store.CommandOutcome) error
	GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error)

	BackfillStore
	AccessStore
	OrchestrationStore
	WebhookStore
	CommentStore
	ConnectorStore
}

// Run runs the suite. newStore returns an empty store private to the calling test.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"IDs", testIDs},
		{"Pipelines", testPipelines},
		{"Schedules", testSchedules},
		{"Runs", testRuns},
		{"RunUpdates", testRunUpdates},
		{"BlockRuns", testBlockRuns},
		{"PipelineStats", testPipelineStats},
		{"Gates", testGates},
		{"Scheduling", testScheduling},
		{"APIKeysAndOutcomes", testAPIKeysAndOutcomes},
		{"Backfills", testBackfills},
		{"SpacesAndUsers", testSpacesAndUsers},
		{"Memberships", testMemberships},
		{"UserAPIKeys", testUserAPIKeys},
		{"Teams", testTeams},
		{"Watches", testWatches},
		{"PipelineFilters", testPipelineFilters},
		{"RunWindows", testRunWindows},
		{"Webhooks", testWebhooks},
		{"WebhookDeliveries", testWebhookDeliveries},
		{"Comments", testComments},
		{"Connectors", testConnectors},
		{"SyncJobs", testSyncJobs},
		{"ProviderUpserts", testProviderUpserts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func testIDs(t *testing.T, s Store) {
	c := ctx(t)
	last, err := s.NextIDs(c, "things", 10)
	must(t, err)
	if last != 10 {
		t.Fatalf("first block ends at %d, want 10", last)
	}
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last, err := s.NextIDs(c, "things", 5)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for id := last - 4; id <= last; id++ {
				if seen[id] || id <= 10 {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	other, err := s.NextIDs(c, "others", 1)
	must(t, err)
	if other != 1 {
		t.Fatalf("independent sequence starts at %d, want 1", other)
	}
}

func newPipeline(space, uuid string) *pipeline.Pipeline {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &pipeline.Pipeline{
		Space: space, UUID: uuid, Name: uuid, Variables: map[string]any{"env": "dev"},
		Blocks: []pipeline.Block{
			{UUID: "a", Name: "a", Type: "custom", UpstreamBlocks: []string{}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
			{UUID: "b", Name: "b", Type: "custom", UpstreamBlocks: []string{"a"}, Runner: pipeline.Runner{Kind: pipeline.KindCommand, Command: []string{"sh", "-c", "true"}, Env: map[string]string{"X": "1"}, Timeout: 5}},
		},
		CreatedAt: now, UpdatedAt: now,
	}
}

func testPipelines(t *testing.T, s Store) {
	c := ctx(t)
	for _, u := range []string{"p3", "p1", "p2"} {
		must(t, s.CreatePipeline(c, newPipeline("s1", u)))
	}
	must(t, s.CreatePipeline(c, newPipeline("s2", "p1")))
	wantErr(t, s.CreatePipeline(c, newPipeline("s1", "p1")), store.ErrDuplicate)

	got, err := s.GetPipeline(c, "s1", "p2")
	must(t, err)
	if got.UUID != "p2" || len(got.Blocks) != 2 || got.Blocks[1].Runner.Command[2] != "true" || got.Blocks[1].UpstreamBlocks[0] != "a" || got.Variables["env"] != "dev" {
		t.Fatalf("pipeline read back wrong: %+v", got)
	}
	_, err = s.GetPipeline(c, "s3", "p2")
	wantErr(t, err, store.ErrNotFound)

	ps, total, err := s.ListPipelines(c, "s1", store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 3 || len(ps) != 2 || ps[0].UUID != "p2" || ps[1].UUID != "p3" {
		t.Fatalf("list = %d %v", total, ps)
	}

	up, err := s.UpdatePipeline(c, "s1", "p1", func(p *pipeline.Pipeline) error { p.Description = "changed"; return nil })
	must(t, err)
	if up.Version != 1 || up.Description != "changed" {
		t.Fatalf("updated = %+v", up)
	}
	sentinel := errors.New("refused")
	_, err = s.UpdatePipeline(c, "s1", "p1", func(p *pipeline.Pipeline) error { p.Description = "lost"; return sentinel })
	wantErr(t, err, sentinel)
	got, err = s.GetPipeline(c, "s1", "p1")
	must(t, err)
	if got.Description != "changed" {
		t.Fatalf("a refused update was written: %q", got.Description)
	}
	_, err = s.UpdatePipeline(c, "s1", "nope", func(*pipeline.Pipeline) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	must(t, s.DeletePipeline(c, "s1", "p1"))
	wantErr(t, s.DeletePipeline(c, "s1", "p1"), store.ErrNotFound)
	if _, err := s.GetPipeline(c, "s2", "p1"); err != nil {
		t.Fatalf("deleting in s1 touched s2: %v", err)
	}
}

func testSchedules(t *testing.T, s Store) {
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, p := range []string{"p1", "p1", "p2"} {
		sc := &schedule.Schedule{ID: int64(i + 1), Space: "s1", PipelineUUID: p, Name: fmt.Sprint("t", i), ScheduleType: schedule.TypeAPI,
			Status: schedule.StatusActive, Token: schedule.NewToken(), Variables: map[string]any{"k": "v"}, Settings: map[string]any{}, StartTime: &now, CreatedAt: now, UpdatedAt: now}
		must(t, s.CreateSchedule(c, sc))
	}
	wantErr(t, s.CreateSchedule(c, &schedule.Schedule{ID: 1, Space: "s1"}), store.ErrDuplicate)
	sc, err := s.GetSchedule(c, 2)
	must(t, err)
	if sc.PipelineUUID != "p1" || sc.Variables["k"] != "v" || sc.StartTime == nil || !sc.StartTime.Equal(now) {
		t.Fatalf("schedule read back wrong: %+v", sc)
	}
	list, total, err := s.ListSchedules(c, store.ScheduleFilter{Space: "s1", PipelineUUID: "p1"}, store.Page{Limit: 10})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].ID != 2 || list[1].ID != 1 {
		t.Fatalf("list = %d %+v", total, list)
	}
	m, err := s.GetSchedules(c, []int64{1, 3, 99})
	must(t, err)
	if len(m) != 2 || m[3].PipelineUUID != "p2" {
		t.Fatalf("GetSchedules = %v", m)
	}
	up, err := s.UpdateSchedule(c, 1, func(sc *schedule.Schedule) error { sc.Status = schedule.StatusInactive; return nil })
	must(t, err)
	if up.Status != schedule.StatusInactive || up.Version != 1 {
		t.Fatalf("updated = %+v", up)
	}
	must(t, s.DeleteSchedule(c, 1))
	_, err = s.GetSchedule(c, 1)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteSchedule(c, 1), store.ErrNotFound)
}

func newRun(id int64, space, pipelineUUID string, scheduleID int64, status run.Status, at time.Time) *run.PipelineRun {
	return &run.PipelineRun{
		ID: id, Space: space, PipelineUUID: pipelineUUID, PipelineScheduleID: scheduleID, CommandID: fmt.Sprint("cmd-", space, "-", id),
		ExecutionDate: at, Status: status, Variables: map[string]any{"x": 1.5}, EventVariables: map[string]any{"env": "dev"},
		ExecutorType: "local_python", Blocks: newPipeline(space, pipelineUUID).Blocks, CreatedAt: at, UpdatedAt: at,
	}
}

func testRuns(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := int64(1); i <= 5; i++ {
		st := run.StatusCompleted
		if i%2 == 0 {
			st = run.StatusFailed
		}
		must(t, s.CreateRun(c, newRun(i, "s1", "p1", 1+i%2, st, base.Add(time.Duration(i)*time.Minute))))
	}
	must(t, s.CreateRun(c, newRun(6, "s2", "p1", 1, run.StatusCompleted, base)))
	dup := newRun(7, "s1", "p1", 1, run.StatusInitial, base)
	dup.CommandID = "cmd-s1-3"
	wantErr(t, s.CreateRun(c, dup), store.ErrDuplicate)

	r, err := s.GetRunByCommand(c, "cmd-s1-3")
	must(t, err)
	if r.ID != 3 || r.EventVariables["env"] != "dev" || r.Variables["x"] != 1.5 || len(r.Blocks) != 2 || !r.ExecutionDate.Equal(base.Add(3*time.Minute)) {
		t.Fatalf("run read back wrong: %+v", r)
	}
	_, err = s.GetRun(c, 99)
	wantErr(t, err, store.ErrNotFound)

	runs, total, err := s.ListRuns(c, store.RunFilter{Space: "s1"}, store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 5 || len(runs) != 2 || runs[0].ID != 4 || runs[1].ID != 3 {
		t.Fatalf("list = %d %v", total, ids(runs))
	}
	runs, total, err = s.ListRuns(c, store.RunFilter{Space: "s1", ScheduleID: 2}, store.Page{Limit: 10})
	must(t, err)
	if total != 3 || len(runs) != 3 || runs[0].ID != 5 {
		t.Fatalf("by schedule = %d %v", total, ids(runs))
	}
	runs, total, err = s.ListRuns(c, store.RunFilter{Space: "s1", Status: run.StatusFailed, PipelineUUID: "p1"}, store.Page{Limit: 10})
	must(t, err)
	if total != 2 || runs[0].ID != 4 || runs[1].ID != 2 {
		t.Fatalf("by status = %d %v", total, ids(runs))
	}
	runs, _, err = s.ListRuns(c, store.RunFilter{Space: "s1", PipelineUUID: "p1", OldestFirst: true}, store.Page{Limit: 2})
	must(t, err)
	if len(runs) != 2 || runs[0].ID != 1 || runs[1].ID != 2 {
		t.Fatalf("oldest first = %v", ids(runs))
	}
}

func ids(runs []run.PipelineRun) []int64 {
	out := make([]int64, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func testRunUpdates(t *testing.T, s Store) {
	c := ctx(t)
	must(t, s.CreateRun(c, newRun(1, "s1", "p1", 1, run.StatusRunning, time.Now().UTC())))
	// Concurrent closures must all apply: none may overwrite another's change.
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateRun(c, 1, func(r *run.PipelineRun) error {
				if r.Metrics == nil {
					r.Metrics = map[string]any{}
				}
				r.Metrics[fmt.Sprint("w", i)] = true
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := s.GetRun(c, 1)
	must(t, err)
	if len(r.Metrics) != writers || r.Version != writers {
		t.Fatalf("after %d concurrent updates: metrics %v, version %d", writers, r.Metrics, r.Version)
	}
	_, err = s.UpdateRun(c, 1, func(r *run.PipelineRun) error { return run.ErrNoChange })
	wantErr(t, err, run.ErrNoChange)
	r, err = s.GetRun(c, 1)
	must(t, err)
	if r.Version != writers {
		t.Fatalf("ErrNoChange wrote: version %d", r.Version)
	}
}

func testBlockRuns(t *testing.T, s Store) {
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id, runID int64, block string) run.BlockRun {
		return run.BlockRun{ID: id, Space: "s1", PipelineRunID: runID, PipelineUUID: "p1", PipelineScheduleID: 1, BlockUUID: block, Status: run.StatusInitial, CreatedAt: now, UpdatedAt: now}
	}
	must(t, s.CreateBlockRuns(c, []run.BlockRun{mk(1, 1, "a"), mk(2, 1, "b"), mk(3, 2, "a")}))
	// A retried creation with fresh ids for existing (run, block) pairs adds only what is missing.
	must(t, s.CreateBlockRuns(c, []run.BlockRun{mk(10, 1, "a"), mk(11, 1, "b"), mk(12, 1, "c")}))
	brs, err := s.BlockRunsOf(c, 1)
	must(t, err)
	if len(brs) != 3 || brs[0].ID != 1 || brs[1].ID != 2 || brs[2].ID != 12 {
		t.Fatalf("block runs of run 1 = %+v", brs)
	}
	brs, err = s.BlockRunsOf(c, 2, 1)
	must(t, err)
	if len(brs) != 4 || brs[0].PipelineRunID != 1 || brs[3].PipelineRunID != 2 {
		t.Fatalf("block runs of runs 1,2 = %d", len(brs))
	}
	up, err := s.UpdateBlockRun(c, 2, func(br *run.BlockRun) error {
		br.Status = run.StatusFailed
		br.Log = "boom\n"
		br.Metrics = map[string]any{"error": map[string]any{"message": "exit status 1"}}
		return nil
	})
	must(t, err)
	if up.Version != 1 {
		t.Fatalf("version = %d", up.Version)
	}
	got, err := s.GetBlockRun(c, 2)
	must(t, err)
	if got.Log != "boom\n" || got.Status != run.StatusFailed {
		t.Fatalf("block run read back wrong: %+v", got)
	}
	list, total, err := s.ListBlockRuns(c, store.BlockRunFilter{Space: "s1", PipelineRunID: 1}, store.Page{Limit: 2})
	must(t, err)
	if total != 3 || len(list) != 2 || list[0].ID != 12 {
		t.Fatalf("list = %d %+v", total, list)
	}
	for _, br := range list {
		if br.Log != "" {
			t.Fatal("lists must not carry logs")
		}
	}
	_, err = s.GetBlockRun(c, 99)
	wantErr(t, err, store.ErrNotFound)
}

func testAPIKeysAndOutcomes(t *testing.T, s Store) {
	c := ctx(t)
	n, err := s.CountAPIKeys(c)
	must(t, err)
	if n != 0 {
		t.Fatalf("new store has %d keys", n)
	}
	must(t, s.PutAPIKey(c, store.APIKey{Hash: "h1", Name: "admin", Principal: "admin", Admin: true, CreatedAt: time.Now().UTC()}))
	must(t, s.PutAPIKey(c, store.APIKey{Hash: "h1", Name: "renamed", Principal: "admin", Admin: true, CreatedAt: time.Now().UTC()}))
	k, err := s.GetAPIKey(c, "h1")
	must(t, err)
	if k.Name != "renamed" || !k.Admin {
		t.Fatalf("key = %+v", k)
	}
	_, err = s.GetAPIKey(c, "h2")
	wantErr(t, err, store.ErrNotFound)

	must(t, s.SaveOutcome(c, store.CommandOutcome{ID: "c1", Type: "x", Status: "failed", Code: 404, Message: "first", CreatedAt: time.Now().UTC()}))
	must(t, s.SaveOutcome(c, store.CommandOutcome{ID: "c1", Type: "x", Status: "failed", Code: 500, Message: "second"}))
	o, err := s.GetOutcome(c, "c1")
	must(t, err)
	if o.Message != "first" || o.Code != 404 {
		t.Fatalf("outcome = %+v, the first must stand", o)
	}
	_, err = s.GetOutcome(c, "c2")
	wantErr(t, err, store.ErrNotFound)
}

func testPipelineStats(t *testing.T, s Store) {
	c := ctx(t)
	today := time.Now().UTC().Truncate(time.Millisecond)
	old := today.Add(-10 * 24 * time.Hour)
	mk := func(id int64, pipelineUUID string, at time.Time) *run.PipelineRun {
		r := newRun(id, "s1", pipelineUUID, 1, run.StatusRunning, at)
		started := at
		r.StartedAt = &started
		return r
	}
	for i, at := range []time.Time{today, today, today, old} {
		must(t, s.CreateRun(c, mk(int64(i+1), "p1", at)))
	}
	must(t, s.CreateRun(c, mk(5, "p2", today)))
	must(t, s.CreateRun(c, newRun(6, "s2", "p1", 1, run.StatusCompleted, today))) // another space
	finish := func(id int64, st run.Status, took time.Duration) {
		t.Helper()
		_, err := s.UpdateRun(c, id, func(r *run.PipelineRun) error {
			done := r.StartedAt.Add(took)
			r.Status, r.CompletedAt = st, &done
			return nil
		})
		must(t, err)
	}
	finish(1, run.StatusCompleted, 2*time.Second)
	finish(2, run.StatusCompleted, 4*time.Second)
	finish(3, run.StatusFailed, time.Second)
	finish(4, run.StatusCompleted, 100*time.Second) // outside the window
	// An update that leaves the status alone changes nothing.
	_, err := s.UpdateRun(c, 1, func(r *run.PipelineRun) error { r.Metrics = map[string]any{"k": 1}; return nil })
	must(t, err)

	stats, err := s.PipelineStats(c, "s1", []string{"p1", "p2", "p3"}, today.Add(-7*24*time.Hour))
	must(t, err)
	p1 := stats["p1"]
	if p1.Runs[run.StatusCompleted] != 2 || p1.Runs[run.StatusFailed] != 1 || p1.Runs[run.StatusRunning] != 0 || p1.Total() != 3 {
		t.Fatalf("p1 runs by status = %v", p1.Runs)
	}
	if mean, ok := p1.MeanDuration(); !ok || mean != 3 {
		t.Fatalf("p1 mean duration = %v %v, want 3s", mean, ok)
	}
	if rate, ok := p1.SuccessRate(); !ok || rate < 0.66 || rate > 0.67 {
		t.Fatalf("p1 success rate = %v %v, want 2/3", rate, ok)
	}
	if p1.LastRun == nil || p1.LastRun.ID != 3 || p1.LastRun.Status != run.StatusFailed {
		t.Fatalf("p1 last run = %+v, want run 3 (failed)", p1.LastRun)
	}
	if p2 := stats["p2"]; p2.Runs[run.StatusRunning] != 1 || p2.Total() != 1 {
		t.Fatalf("p2 = %+v", p2)
	}
	if _, ok := stats["p2"].SuccessRate(); ok {
		t.Fatal("p2 has no finished run, so no success rate")
	}
	if p3 := stats["p3"]; p3.Total() != 0 || p3.LastRun != nil {
		t.Fatalf("p3 has no runs: %+v", p3)
	}
	all, err := s.PipelineStats(c, "s1", []string{"p1"}, old)
	must(t, err)
	if all["p1"].Total() != 4 || all["p1"].Runs[run.StatusCompleted] != 3 {
		t.Fatalf("p1 over 11 days = %v", all["p1"].Runs)
	}
}

func testGates(t *testing.T, s Store) {
	c := ctx(t)
	// A missing gate starts empty; concurrent admissions never exceed the limit.
	const limit = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateGate(c, "pipeline/s1/p1", func(g *run.Gate) error {
				if !g.Admit(int64(i+1), int64(i%2), 0, limit) {
					return errFull
				}
				return nil
			})
			switch {
			case err == nil:
				mu.Lock()
				admitted++
				mu.Unlock()
			case !errors.Is(err, errFull):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	g, err := s.UpdateGate(c, "pipeline/s1/p1", func(g *run.Gate) error { return run.ErrNoChange })
	if !errors.Is(err, run.ErrNoChange) {
		t.Fatalf("a refused update: %v", err)
	}
	if admitted != limit || len(g.Holders) != limit {
		t.Fatalf("admitted %d, gate holds %d, want %d", admitted, len(g.Holders), limit)
	}
	released := g.Holders[0].ID
	g, err = s.UpdateGate(c, "pipeline/s1/p1", func(g *run.Gate) error {
		if !g.Release(released) {
			return run.ErrNoChange
		}
		return nil
	})
	must(t, err)
	if len(g.Holders) != limit-1 || g.Holds(released) {
		t.Fatalf("after release: %+v", g.Holders)
	}
	must(t, s.DeleteGate(c, "pipeline/s1/p1"))
	wantErr(t, s.DeleteGate(c, "pipeline/s1/p1"), store.ErrNotFound)
	g, err = s.UpdateGate(c, "pipeline/s1/p1", func(g *run.Gate) error { return nil })
	must(t, err)
	if len(g.Holders) != 0 {
		t.Fatalf("a deleted gate starts again empty: %+v", g.Holders)
	}
}

var errFull = errors.New("full")
