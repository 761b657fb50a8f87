package e2e_test

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// span is when something ran.
type span struct {
	what       string
	start, end time.Time
}

// blockSpans returns when each block run of the runs ran.
func (e *env) blockSpans(runIDs []int64) []span {
	e.t.Helper()
	var out []span
	for _, id := range runIDs {
		for uuid, br := range blockRuns(e.getRun(id)) {
			if br["started_at"] == nil || br["completed_at"] == nil {
				continue
			}
			out = append(out, span{fmt.Sprintf("run %d block %s", id, uuid), parseTS(e.t, br["started_at"]), parseTS(e.t, br["completed_at"])})
		}
	}
	return out
}

// runSpans returns when each run ran: from its first block's start to its last block's end.
func (e *env) runSpans(runIDs []int64) []span {
	e.t.Helper()
	var out []span
	for _, id := range runIDs {
		s := span{what: fmt.Sprint("run ", id)}
		for _, b := range e.blockSpans([]int64{id}) {
			if s.start.IsZero() || b.start.Before(s.start) {
				s.start = b.start
			}
			if b.end.After(s.end) {
				s.end = b.end
			}
		}
		out = append(out, s)
	}
	return out
}

// noOverlap fails when two spans ran at the same time.
func noOverlap(t testing.TB, spans []span) {
	t.Helper()
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start.Before(spans[i-1].end) {
			t.Fatalf("%s (from %s) started before %s ended (%s)", spans[i].what, spans[i].start.Format(time.StampMilli), spans[i-1].what, spans[i-1].end.Format(time.StampMilli))
		}
	}
}

func (e *env) triggerN(id int64, token string, n int) []int64 {
	e.t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = num(obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run"), "id")
	}
	return ids
}

func sleepBlock(uuid string, seconds float64, upstream ...string) map[string]any {
	return block(uuid, shell(fmt.Sprintf("sleep %g", seconds)), upstream...)
}

func TestLimitsPipelineRunLimitWaitsAcrossExecutors(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.addExecutor()
	id, token := e.definePipeline(pipelineDef("one_at_a_time", []map[string]any{sleepBlock("a", 0.2), sleepBlock("b", 0.2, "a")},
		"concurrency_config", map[string]any{"pipeline_run_limit": 1}), nil)
	runs := e.triggerN(id, token, 4)
	waiting := 0
	for _, rid := range runs {
		if e.getRun(rid)["status"] == "initial" {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatal("with a limit of 1, triggered runs must wait as initial")
	}
	for _, rid := range runs {
		if st := e.waitRun(rid)["status"]; st != "completed" {
			t.Fatalf("run %d ended %v", rid, st)
		}
	}
	noOverlap(t, e.runSpans(runs))
}

func TestLimitsSkipWhenReached(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.definePipeline(pipelineDef("skipper", []map[string]any{sleepBlock("a", 1)},
		"concurrency_config", map[string]any{"pipeline_run_limit": 1, "on_pipeline_run_limit_reached": "skip"}), nil)
	runs := e.triggerN(id, token, 2)
	first, second := e.waitRun(runs[0]), e.waitRun(runs[1])
	if first["status"] != "completed" || second["status"] != "cancelled" || obj(second, "metrics")["skipped"] == nil {
		t.Fatalf("first %v, second %v (%v)", first["status"], second["status"], second["metrics"])
	}
	// A slot freed by the first run serves later triggers.
	if st := e.runToEnd(id, token, nil)["status"]; st != "completed" {
		t.Fatalf("a later run ended %v", st)
	}
}

func TestLimitsAllTriggers(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id1, token1 := e.definePipeline(pipelineDef("shared", []map[string]any{sleepBlock("a", 0.3)},
		"concurrency_config", map[string]any{"pipeline_run_limit_all_triggers": 1}), nil)
	r := e.must(200, e.call("POST", "/api/pipelines/shared/pipeline_schedules",
		map[string]any{"pipeline_schedule": map[string]any{"name": "second", "schedule_type": "api", "status": "active"}}))
	s2 := obj(r.Body, "pipeline_schedule")
	runs := append(e.triggerN(id1, token1, 2), e.triggerN(num(s2, "id"), s2["token"].(string), 2)...)
	for _, rid := range runs {
		if st := e.waitRun(rid)["status"]; st != "completed" {
			t.Fatalf("run %d ended %v", rid, st)
		}
	}
	noOverlap(t, e.runSpans(runs))
}

func TestLimitsScheduleOverridesPipelineLimit(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	// The pipeline allows 5 per schedule; the schedule's own setting says 1.
	id, token := e.definePipeline(pipelineDef("override", []map[string]any{sleepBlock("a", 0.3)},
		"concurrency_config", map[string]any{"pipeline_run_limit": 5}), map[string]any{"settings": map[string]any{"pipeline_run_limit": 1}})
	runs := e.triggerN(id, token, 3)
	for _, rid := range runs {
		e.waitRun(rid)
	}
	noOverlap(t, e.runSpans(runs))
}

func TestLimitsBlockRunLimit(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.addExecutor()
	id, token := e.definePipeline(pipelineDef("narrow", []map[string]any{
		block("root", noop), sleepBlock("b1", 0.2, "root"), sleepBlock("b2", 0.2, "root"), sleepBlock("b3", 0.2, "root"), sleepBlock("b4", 0.2, "root"),
	}, "concurrency_config", map[string]any{"block_run_limit": 1}), nil)
	pr := e.runToEnd(id, token, nil)
	if pr["status"] != "completed" {
		t.Fatalf("run ended %v", pr["status"])
	}
	noOverlap(t, e.blockSpans([]int64{num(pr, "id")}))
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.definePipeline(pipelineDef("slow_run", []map[string]any{sleepBlock("a", 30)}),
		map[string]any{"settings": map[string]any{"timeout": 1, "timeout_status": "cancelled"}})
	pr := obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run")
	t0 := time.Now()
	done := e.waitRun(num(pr, "id"))
	if done["status"] != "cancelled" || done["completed_at"] == nil {
		t.Fatalf("run = %v", done)
	}
	if took := time.Since(t0); took > 15*time.Second {
		t.Fatalf("a 1 s run timeout took %s to end the run", took)
	}
	if msg, _ := obj(obj(done, "metrics"), "error")["message"].(string); msg == "" {
		t.Fatalf("metrics.error names no timeout: %v", done["metrics"])
	}
	if st := blockRuns(done)["a"]["status"]; st != "cancelled" {
		t.Fatalf("the running block is %v, want cancelled", st)
	}
}

func TestOnceScheduleRetiresAfterItsRun(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{"uuid": "once", "blocks": []map[string]any{block("a", noop)}}}))
	r := e.must(200, e.call("POST", "/api/pipelines/once/pipeline_schedules", map[string]any{"pipeline_schedule": map[string]any{
		"name": "once", "schedule_type": "time", "schedule_interval": "@once", "status": "active",
		"settings": map[string]any{"create_initial_pipeline_run": true},
	}}))
	sid := num(obj(r.Body, "pipeline_schedule"), "id")
	var runs []any
	poll(t, 20*time.Second, "the @once schedule's run", func() bool {
		runs = e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", sid), nil)).Body["pipeline_runs"].([]any)
		return len(runs) > 0
	})
	pr := e.waitRun(num(runs[0].(map[string]any), "id"))
	if pr["status"] != "completed" || pr["run_type"] != "scheduled" {
		t.Fatalf("run = %v %v", pr["status"], pr["run_type"])
	}
	poll(t, 10*time.Second, "the @once schedule to become inactive", func() bool {
		s := obj(e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d", sid), nil)).Body, "pipeline_schedule")
		return s["status"] == "inactive"
	})
	if n := len(e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", sid), nil)).Body["pipeline_runs"].([]any)); n != 1 {
		t.Fatalf("@once made %d runs", n)
	}
}
