package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
)

// seedRunFields are the fields of Mage's pipeline run object (Mage's pipeline-runs API page).
var seedRunFields = []string{
	"backfill_id", "block_runs", "block_runs_count", "completed_at", "created_at", "event_variables",
	"execution_date", "id", "metrics", "passed_sla", "pipeline_schedule_id", "pipeline_schedule_name",
	"pipeline_schedule_token", "pipeline_schedule_type", "pipeline_uuid", "status", "updated_at", "variables",
	"started_at", "executor_type",
}

var seedBlockRunFields = []string{"block_uuid", "completed_at", "created_at", "id", "metrics", "pipeline_run_id", "started_at", "status", "updated_at"}

func hasFields(t *testing.T, what string, m map[string]any, fields []string) {
	t.Helper()
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			t.Errorf("%s lacks field %q", what, f)
		}
	}
}

func TestTriggerRunsToCompletion(t *testing.T) {
	t.Parallel()
	for name, startStore := range map[string]func(testing.TB, map[string]string) *env{"sqlite": start, "mongo": startMongo} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testTriggerRunsToCompletion(t, startStore(t, nil))
		})
	}
}

func testTriggerRunsToCompletion(t *testing.T, e *env) {
	id, token := e.pipelineWithSchedule("etl",
		block("load", noop),
		block("clean", shell("echo cleaning $X"), "load"),
		block("stats", map[string]any{"kind": "sleep", "seconds": 0.05}, "load"),
		block("export", noop, "clean", "stats"),
	)

	// Watch the event stream for this run's completion instead of polling.
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	completed := make(chan event.Event, 1)
	sub, err := nc.Subscribe("runyard.evt.default.run.etl.*.completed", func(m *nats.Msg) {
		var ev event.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			completed <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	r := e.must(200, e.trigger(id, token, map[string]any{"env": "dev", "test": 1, "pipeline_run": map[string]any{"variables": map[string]any{"x": "1"}}}))
	pr := obj(r.Body, "pipeline_run")
	hasFields(t, "trigger response", pr, seedRunFields)
	if pr["pipeline_uuid"] != "etl" || num(pr, "pipeline_schedule_id") != id || pr["pipeline_schedule_token"] != token || pr["pipeline_schedule_type"] != "api" {
		t.Fatalf("trigger response = %s", r.Raw)
	}
	if ev := obj(pr, "event_variables"); ev["env"] != "dev" || ev["test"] != 1.0 || len(ev) != 2 {
		t.Fatalf("event_variables = %v, want the body's other top-level keys", ev)
	}
	if v := obj(pr, "variables"); v["x"] != "1" || v["execution_partition"] == nil {
		t.Fatalf("variables = %v", v)
	}
	runID := num(pr, "id")

	select {
	case ev := <-completed:
		if ev.Type != event.TypePipelineRunStatusChanged || ev.PipelineRun == nil || ev.PipelineRun.ID != runID || ev.Version != 1 {
			t.Fatalf("completion event = %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no completion event within 30s")
	}

	got := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_runs/%d", runID), nil))
	pr = obj(got.Body, "pipeline_run")
	hasFields(t, "pipeline run", pr, seedRunFields)
	if pr["status"] != "completed" || pr["completed_at"] == nil || num(pr, "block_runs_count") != 4 || num(pr, "completed_block_runs_count") != 4 {
		t.Fatalf("run = %s", got.Raw)
	}
	brs := blockRuns(pr)
	for uuid, br := range brs {
		hasFields(t, "block run "+uuid, br, seedBlockRunFields)
		if br["status"] != "completed" || br["started_at"] == nil || br["completed_at"] == nil {
			t.Fatalf("block run %s = %v", uuid, br)
		}
	}
	// export ran after both branches: its start is not before either branch's end.
	parse := func(s any) time.Time {
		ts, err := time.Parse("2006-01-02 15:04:05.000000-07:00", s.(string))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	for _, up := range []string{"clean", "stats"} {
		if parse(brs["export"]["started_at"]).Before(parse(brs[up]["completed_at"])) {
			t.Fatalf("export started before %s completed", up)
		}
	}

	// The schedule's run list carries block runs inline and Mage's metadata.
	list := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs?_limit=20", id), nil))
	runs := list.Body["pipeline_runs"].([]any)
	if len(runs) != 1 || obj(list.Body, "metadata")["count"] != 1.0 || obj(list.Body, "metadata")["next"] != false {
		t.Fatalf("schedule runs = %s", list.Raw)
	}
	if len(runs[0].(map[string]any)["block_runs"].([]any)) != 4 {
		t.Fatal("schedule runs lack inline block runs")
	}
	brList := e.must(200, e.call("GET", fmt.Sprintf("/api/block_runs?pipeline_run_id=%d", runID), nil))
	if len(brList.Body["block_runs"].([]any)) != 4 {
		t.Fatalf("block runs = %s", brList.Raw)
	}
	nested := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_runs/%d/block_runs", runID), nil))
	if obj(nested.Body, "metadata")["count"] != 4.0 {
		t.Fatalf("nested block runs = %s", nested.Raw)
	}
}

func TestFailingCommandFailsRun(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("flaky",
		block("start", noop),
		block("boom", shell("echo about to fail; echo oops >&2; exit 3"), "start"),
		block("after_boom", noop, "boom"),
		block("last", noop, "after_boom"),
	)
	pr := obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run")
	if pr["event_variables"] != nil {
		t.Fatalf("an empty body must leave event_variables null, got %v", pr["event_variables"])
	}
	done := e.waitRun(num(pr, "id"))
	if done["status"] != "failed" || done["completed_at"] == nil {
		t.Fatalf("run = %v", done)
	}
	brs := blockRuns(done)
	want := map[string]string{"start": "completed", "boom": "failed", "after_boom": "upstream_failed", "last": "upstream_failed"}
	for uuid, st := range want {
		if brs[uuid]["status"] != st {
			t.Errorf("block %s is %v, want %s", uuid, brs[uuid]["status"], st)
		}
	}
	errInfo := obj(obj(brs["boom"], "metrics"), "error")
	if errInfo["message"] != "exit status 3" {
		t.Fatalf("metrics.error = %v", errInfo)
	}
	if lines, _ := errInfo["errors"].([]any); len(lines) != 2 || lines[1] != "oops" {
		t.Fatalf("metrics.error.errors = %v, want the output's last lines", errInfo["errors"])
	}
}

func TestTriggerCommandDeliveredTwiceMakesOneRun(t *testing.T) {
	t.Parallel()
	e := startMongo(t, nil)
	id, _ := e.pipelineWithSchedule("once", block("a", noop), block("b", noop, "a"))

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	env, err := command.New(command.NewID(), command.TypeTriggerRun, "default", "test",
		command.TriggerRun{PipelineUUID: "once", ScheduleID: id, Variables: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Two copies under different message ids get past the server's duplicate window, as a
	// redelivery after a lost ack or a re-publish after the window would.
	for i := range 2 {
		if _, err := js.Publish(ctx, natsbus.CommandSubject(env.Type), data, jetstream.WithMsgID(fmt.Sprint(env.ID, "-copy", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the work queue has drained both copies, then count.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := js.Stream(ctx, natsbus.StreamCommands)
		if err != nil {
			t.Fatal(err)
		}
		if info.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("commands not consumed within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	list := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id), nil))
	runs := list.Body["pipeline_runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("%d runs for one command delivered twice: %s", len(runs), list.Raw)
	}
	done := e.waitRun(num(runs[0].(map[string]any), "id"))
	if done["status"] != "completed" || num(done, "block_runs_count") != 2 {
		t.Fatalf("run = %v", done)
	}
}

func TestIdempotencyKeyReturnsTheSameRun(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("idem", block("a", noop))
	first := obj(e.must(200, e.trigger(id, token, map[string]any{"n": 1}, "Idempotency-Key", "order-42")).Body, "pipeline_run")
	second := obj(e.must(200, e.trigger(id, token, map[string]any{"n": 2}, "Idempotency-Key", "order-42")).Body, "pipeline_run")
	if num(first, "id") != num(second, "id") {
		t.Fatalf("same key gave runs %d and %d", num(first, "id"), num(second, "id"))
	}
	if obj(second, "event_variables")["n"] != 1.0 {
		t.Fatalf("the repeated key must return the first run unchanged: %v", second["event_variables"])
	}
	other := obj(e.must(200, e.trigger(id, token, nil, "Idempotency-Key", "order-43")).Body, "pipeline_run")
	if num(other, "id") == num(first, "id") {
		t.Fatal("a different key returned the same run")
	}
}

func TestBearerTriggerAndCommandPoll(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("bearer", block("a", noop))
	r := e.must(200, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/api_trigger", id), map[string]any{"k": "v"}, "Authorization", "Bearer "+token))
	runID := num(obj(r.Body, "pipeline_run"), "id")
	e.waitRun(runID)
	e.must(401, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/api_trigger", id), nil, "Authorization", "Bearer wrong"))
	e.must(401, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/api_trigger", id), nil, noAuth...))

	// A command id resolves to its run; an unknown one is pending.
	first := obj(e.must(200, e.trigger(id, token, nil, "Idempotency-Key", "k1")).Body, "pipeline_run")
	_ = first
	pending := e.must(200, e.call("GET", "/api/commands/nope", nil))
	if obj(pending.Body, "command")["status"] != "pending" {
		t.Fatalf("unknown command = %s", pending.Raw)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.must(200, e.call("GET", "/healthz", nil, noAuth...))
	r := e.must(200, e.call("GET", "/readyz", nil, noAuth...))
	if r.Body["ready"] != true {
		t.Fatalf("readyz = %s", r.Raw)
	}
}
