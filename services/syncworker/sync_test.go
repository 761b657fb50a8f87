package syncworker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/airflow/airflowtest"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/services/syncworker"
)

func (h *harness) reload(conn *connector.Connector) *connector.Connector {
	h.t.Helper()
	c, err := h.st.GetConnector(h.ctx, conn.Space, conn.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// TestSyncMirrorsAirflow syncs both API versions fully, then incrementally after Airflow
// moved on, then again with nothing changed.
func TestSyncMirrorsAirflow(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: version, DAGs: 12, RunsPerDAG: 6}})
			evs := h.events()

			j := h.sync(h.conn)
			h.mustComplete(j)
			dags, runs, tis := h.fake.Counts()
			if j.DAGs != (connector.Counts{Seen: int64(dags), Created: int64(dags)}) ||
				j.Runs != (connector.Counts{Seen: int64(runs), Created: int64(runs)}) ||
				j.TaskRuns != (connector.Counts{Seen: int64(tis), Created: int64(tis)}) {
				t.Fatalf("first sync counts dags %+v runs %+v task runs %+v; the fake holds %d, %d, %d", j.DAGs, j.Runs, j.TaskRuns, dags, runs, tis)
			}
			h.assertMirror(h.conn, h.fake)
			conn := h.reload(h.conn)
			if conn.LastSync == nil || conn.LastSync.Status != connector.JobCompleted || conn.LastSync.JobID != j.ID ||
				conn.Sync.Watermark == nil || conn.DetectedVersion != version || conn.AirflowVersion == "" {
				t.Fatalf("connector after the first sync: %+v %+v", conn.LastSync, conn)
			}
			evs.waitFor(t, 5*time.Second, "sync.completed", func(e event.Event) bool {
				return e.Type == event.TypeSyncCompleted && e.Sync.(map[string]any)["id"] == j.ID
			})
			if n := evs.count(func(e event.Event) bool { return e.Type == event.TypeSyncStarted }); n != 1 {
				t.Fatalf("%d sync.started events, want 1", n)
			}

			// Airflow moves on: runs progress, scheduled DAGs get runs, a manual run
			// starts, a DAG is paused.
			ids := h.fake.DAGIDs()
			adv := h.fake.Step()
			added, err := h.fake.AddRun(ids[0], "running")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.fake.PauseDAG(ids[1], true); err != nil {
				t.Fatal(err)
			}
			j = h.sync(conn)
			h.mustComplete(j)
			if j.Runs.Created != int64(adv.NewRuns+1) || j.Runs.Updated < int64(adv.ChangedRuns) || j.DAGs.Updated < 1 || j.TaskRuns.Created == 0 {
				t.Fatalf("incremental sync counts dags %+v runs %+v task runs %+v after %+v and one added run", j.DAGs, j.Runs, j.TaskRuns, adv)
			}
			h.assertMirror(conn, h.fake)
			paused, err := h.st.GetPipeline(h.ctx, space, connector.PipelineUUID(conn.ID, ids[1]))
			if err != nil || paused.State != pipeline.StatePaused {
				t.Fatalf("paused dag mirrored as %+v, %v", paused, err)
			}
			// Status changes reach the event stream as native runs' do.
			evs.waitFor(t, 5*time.Second, "pipeline_run.status_changed of the added run", func(e event.Event) bool {
				return e.Type == event.TypePipelineRunStatusChanged && e.PipelineRun != nil && e.PipelineRun.ProviderRunID == added && e.PipelineRun.Status == run.StatusRunning
			})
			evs.waitFor(t, 5*time.Second, "block_run.status_changed", func(e event.Event) bool {
				return e.Type == event.TypeBlockRunStatusChanged && e.BlockRun != nil && e.BlockRun.ProviderTaskID != ""
			})

			// Nothing changed: only GET listings reach Airflow, and nothing is written.
			conn = h.reload(conn)
			h.fake.ResetLog()
			j = h.sync(conn)
			h.mustComplete(j)
			if j.DAGs.Created+j.DAGs.Updated+j.Runs.Created+j.Runs.Updated+j.TaskRuns.Created+j.TaskRuns.Updated != 0 || j.DAGs.Seen != int64(dags) {
				t.Fatalf("re-sync with no change wrote: dags %+v runs %+v task runs %+v", j.DAGs, j.Runs, j.TaskRuns)
			}
			reqs := h.fake.Requests()
			for _, r := range reqs {
				switch r.Route {
				case airflowtest.RouteDAGs, airflowtest.RouteRuns, airflowtest.RouteTaskInst, airflowtest.RouteRun:
				default:
					t.Fatalf("re-sync with no change sent %s %s; requests: %s", r.Method, r.Path, routes(reqs))
				}
				if r.Method != http.MethodGet || r.Status != http.StatusOK {
					t.Fatalf("re-sync with no change: %s %s answered %d", r.Method, r.Path, r.Status)
				}
			}
			if h.fake.RequestCount(airflowtest.RouteDAGs) == 0 || h.fake.RequestCount(airflowtest.RouteRuns) == 0 {
				t.Fatalf("re-sync did not list dags and runs: %s", routes(reqs))
			}
			t.Logf("no-change re-sync: %d requests: %s", len(reqs), routes(reqs))
		})
	}
}

// TestSyncConvergesUnderFaults syncs through a server that answers 20% of requests 429 and
// 10% 500: the client's retries absorb most, a failed sync is retried, and the mirror ends
// exact.
func TestSyncConvergesUnderFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: "v2", DAGs: 6, RunsPerDAG: 4, Seed: 7}, worker: syncworker.Config{Fetches: 8}})
	h.fake.SetFaults(airflowtest.Faults{TooMany: 0.2, ServerError: 0.1})
	var j *connector.SyncJob
	for attempt := 1; ; attempt++ {
		j = h.sync(h.reload(h.conn))
		if j.Status == connector.JobCompleted {
			break
		}
		if attempt == 5 {
			t.Fatalf("no sync completed in %d attempts; last: %s", attempt, j.Error)
		}
		t.Logf("attempt %d failed: %s", attempt, j.Error)
	}
	h.fake.SetFaults(airflowtest.Faults{})
	h.assertMirror(h.conn, h.fake)
	failed := 0
	for _, r := range h.fake.Requests() {
		if r.Status == http.StatusTooManyRequests || r.Status == http.StatusInternalServerError {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no fault was served: the test proves nothing")
	}

	// Airflow moves on, still faulty: the incremental sync converges too.
	h.fake.SetFaults(airflowtest.Faults{TooMany: 0.2, ServerError: 0.1})
	h.fake.Step()
	for attempt := 1; ; attempt++ {
		j = h.sync(h.reload(h.conn))
		if j.Status == connector.JobCompleted {
			break
		}
		if attempt == 5 {
			t.Fatalf("no incremental sync completed in %d attempts; last: %s", attempt, j.Error)
		}
	}
	h.fake.SetFaults(airflowtest.Faults{})
	h.assertMirror(h.conn, h.fake)
}

// TestOneSyncPerConnectorAcrossWorkers queues several syncs of one connector to two
// workers: their jobs never overlap in time, every one completes, and another connector
// syncs meanwhile.
func TestOneSyncPerConnectorAcrossWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: "v1", DAGs: 4, RunsPerDAG: 3}, worker: syncworker.Config{Syncs: 3}})
	h.startWorker(h.connect("second"), syncworker.Config{Syncs: 3})
	// Every answer takes a while, so that syncs would overlap if nothing stopped them.
	h.fake.SetFaults(airflowtest.Faults{Slow: 1, Latency: 15 * time.Millisecond})
	other := airflowtest.NewServer(airflowtest.Config{APIVersion: "v2", DAGs: 3, RunsPerDAG: 2})
	t.Cleanup(other.Close)
	otherConn := h.addConnector("other", other)

	var jobs []string
	for range 5 {
		now := store.Now()
		j := &connector.SyncJob{ID: connector.NewSyncJobID(), ConnectorID: h.conn.ID, Space: space, Status: connector.JobQueued, CreatedAt: now, UpdatedAt: now, Version: 1}
		if err := h.st.CreateSyncJob(h.ctx, j); err != nil {
			t.Fatal(err)
		}
		env, err := command.SyncEnvelope(j, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.bus.PublishCommand(h.ctx, env); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j.ID)
	}
	otherJob, _, err := command.StartSync(h.ctx, h.st, h.bus, otherConn, "test")
	if err != nil {
		t.Fatal(err)
	}
	var done []*connector.SyncJob
	for _, id := range jobs {
		j := h.waitJob(id, 90*time.Second)
		h.mustComplete(j)
		done = append(done, j)
	}
	h.mustComplete(h.waitJob(otherJob.ID, 30*time.Second))
	for i, a := range done {
		for _, b := range done[i+1:] {
			if a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) {
				t.Fatalf("jobs %s [%s, %s] and %s [%s, %s] of one connector overlap", a.ID, a.StartedAt, a.FinishedAt, b.ID, b.StartedAt, b.FinishedAt)
			}
		}
	}
	h.fake.SetFaults(airflowtest.Faults{})
	h.assertMirror(h.conn, h.fake)
	h.assertMirror(otherConn, other)
}

// TestStartSyncJoinsAQueuedJob: a second request while a job waits gets that job.
func TestStartSyncJoinsAQueuedJob(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: "v1", DAGs: 2, RunsPerDAG: 1}})
	h.w.Stop(context.Background()) // nothing takes the job, so it stays queued
	a, joined, err := command.StartSync(h.ctx, h.st, h.bus, h.conn, "test")
	if err != nil || joined {
		t.Fatalf("first request: %v, joined %v", err, joined)
	}
	b, joined, err := command.StartSync(h.ctx, h.st, h.bus, h.conn, "test")
	if err != nil || !joined || b.ID != a.ID {
		t.Fatalf("second request: job %s (first %s), joined %v, %v", b.ID, a.ID, joined, err)
	}
}

// TestRemovedDAGsBecomeInactive: a DAG deleted in Airflow, and one whose file is gone, stay
// in the catalog as inactive with their runs, comments and governance fields.
func TestRemovedDAGsBecomeInactive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: "v2", DAGs: 5, RunsPerDAG: 2}})
	h.mustComplete(h.sync(h.conn))
	ids := h.fake.DAGIDs()
	deleted, stale := ids[0], ids[1]
	uuid := connector.PipelineUUID(h.conn.ID, deleted)
	if _, err := h.st.UpdatePipeline(h.ctx, space, uuid, func(p *pipeline.Pipeline) error {
		p.TeamID, p.Criticality = "team_1", "high"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runs, _, err := h.st.ListRuns(h.ctx, store.RunFilter{Space: space, PipelineUUID: uuid}, store.Page{Limit: 10})
	if err != nil || len(runs) == 0 {
		t.Fatalf("runs of %s: %v, %v", deleted, runs, err)
	}
	c := &comment.Comment{ID: comment.IDFor("c1"), Space: space, TargetType: comment.TargetRun, TargetID: runs[0].ID,
		PipelineUUID: uuid, PipelineRunID: runs[0].ID, Body: "keep me", Author: "u1", CommandID: "c1", CreatedAt: store.Now(), UpdatedAt: store.Now()}
	if _, err := h.st.CreateComment(h.ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := h.fake.DeleteDAG(deleted); err != nil {
		t.Fatal(err)
	}
	if err := h.fake.RemoveDAGFile(stale); err != nil {
		t.Fatal(err)
	}
	j := h.sync(h.reload(h.conn))
	h.mustComplete(j)
	if j.DAGs.Updated != 2 {
		t.Fatalf("dags %+v, want 2 updated (one deleted, one stale)", j.DAGs)
	}
	for _, id := range []string{deleted, stale} {
		p, err := h.st.GetPipeline(h.ctx, space, connector.PipelineUUID(h.conn.ID, id))
		if err != nil || p.State != pipeline.StateInactive {
			t.Fatalf("dag %s: %+v, %v; want inactive", id, p, err)
		}
	}
	p, _ := h.st.GetPipeline(h.ctx, space, uuid)
	if p.TeamID != "team_1" || p.Criticality != "high" {
		t.Fatalf("governance fields of the deleted dag's pipeline: team %q criticality %q", p.TeamID, p.Criticality)
	}
	left, _, err := h.st.ListRuns(h.ctx, store.RunFilter{Space: space, PipelineUUID: uuid}, store.Page{Limit: 10})
	if err != nil || len(left) != len(runs) {
		t.Fatalf("runs of the deleted dag: %d, want %d (%v)", len(left), len(runs), err)
	}
	cs, _, err := h.st.ListComments(h.ctx, space, comment.TargetRun, runs[0].ID, store.Page{Limit: 10})
	if err != nil || len(cs) != 1 || cs[0].Body != "keep me" {
		t.Fatalf("comments of the deleted dag's run: %+v, %v", cs, err)
	}
	// A re-sync leaves them as they are.
	j = h.sync(h.reload(h.conn))
	h.mustComplete(j)
	if j.DAGs.Updated != 0 {
		t.Fatalf("re-sync updated %d dags", j.DAGs.Updated)
	}
}

// TestPollPublishesStatusChanges: between syncs, the scheduler polls the unfinished
// mirrored runs, and a run finishing in Airflow reaches the event stream within seconds.
func TestPollPublishesStatusChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessConfig{fake: airflowtest.Config{APIVersion: "v1", DAGs: 3, RunsPerDAG: 2}})
	h.mustComplete(h.sync(h.conn))
	evs := h.events()
	ids := h.fake.DAGIDs()
	runID, err := h.fake.AddRun(ids[2], "running")
	if err != nil {
		t.Fatal(err)
	}
	h.mustComplete(h.sync(h.reload(h.conn)))
	// A scheduler, alone on its lease, starts polls every 200ms.
	h.startWorker(h.connect("scheduler"), syncworker.Config{Scheduler: true, PollInterval: 200 * time.Millisecond, Tick: 200 * time.Millisecond})
	if err := h.fake.SetRunState(ids[2], runID, "success"); err != nil {
		t.Fatal(err)
	}
	evs.waitFor(t, 10*time.Second, "the run's completion", func(e event.Event) bool {
		return e.Type == event.TypePipelineRunStatusChanged && e.PipelineRun != nil && e.PipelineRun.ProviderRunID == runID && e.PipelineRun.Status == run.StatusCompleted
	})
	evs.waitFor(t, 10*time.Second, "a task's completion", func(e event.Event) bool {
		return e.Type == event.TypeBlockRunStatusChanged && e.BlockRun != nil && e.BlockRun.Status == run.StatusCompleted
	})
}
