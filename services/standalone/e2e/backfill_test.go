package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/natsbus"
)

// Backfill tests: Mage's backfills through the HTTP API of the whole system — a backfill makes
// one run per date, its runs honour its run limit, it can be cancelled, and its inputs are
// checked field by field.

// createBackfill creates a backfill of pipeline uuid with fields and returns it.
func (e *env) createBackfill(uuid string, fields map[string]any) map[string]any {
	e.t.Helper()
	return obj(e.must(200, e.call("POST", "/api/pipelines/"+uuid+"/backfills", map[string]any{"backfill": fields})).Body, "backfill")
}

// putBackfill sends PUT /api/backfills/:id with fields.
func (e *env) putBackfill(id int64, fields map[string]any) response {
	e.t.Helper()
	return e.call("PUT", fmt.Sprintf("/api/backfills/%d", id), map[string]any{"backfill": fields})
}

func (e *env) getBackfill(id int64) map[string]any {
	e.t.Helper()
	return obj(e.must(200, e.call("GET", fmt.Sprintf("/api/backfills/%d", id), nil)).Body, "backfill")
}

// backfillRuns lists the runs of backfill id, newest execution date first.
func (e *env) backfillRuns(id int64) []map[string]any {
	e.t.Helper()
	r := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_runs?backfill_id=%d&_limit=1000", id), nil))
	var out []map[string]any
	for _, it := range r.Body["pipeline_runs"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

// waitBackfill polls the backfill until its status is one of want.
func (e *env) waitBackfill(id int64, within time.Duration, want ...string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := e.getBackfill(id)
		for _, w := range want {
			if b["status"] == w {
				return b
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("backfill %d is %v after %s, want %v: %v", id, b["status"], within, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mageTS reads a date rendered in Mage's format.
func mageTS(t testing.TB, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse("2006-01-02 15:04:05.000000-07:00", s)
	if err != nil {
		t.Fatalf("date %v: %v", v, err)
	}
	return ts
}

func fiveDays(name string, extra ...any) map[string]any {
	return with(map[string]any{
		"name": name, "start_datetime": "2026-01-01 00:00:00", "end_datetime": "2026-01-05 00:00:00",
		"interval_type": "day", "interval_units": 1,
	}, extra...)
}

func TestBackfillRunsEveryDate(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	script := `echo "ds=$RUNYARD_VAR_DS hr=$RUNYARD_VAR_HR from=$RUNYARD_VAR_INTERVAL_START_DATETIME to=$RUNYARD_VAR_INTERVAL_END_DATETIME s=$RUNYARD_VAR_INTERVAL_SECONDS k=$RUNYARD_VAR_K"`
	schedID, token := e.pipelineWithSchedule("bf_days", block("first", noop), block("show", shell(script), "first"))
	// A run outside the backfill, which its filter must leave out.
	e.waitRun(num(obj(e.must(200, e.trigger(schedID, token, nil)).Body, "pipeline_run"), "id"))

	b := e.createBackfill("bf_days", fiveDays("five days", "variables", map[string]any{"k": "v"}))
	id := num(b, "id")
	if b["status"] != nil || b["pipeline_schedule_id"] != nil || b["started_at"] != nil || num(b, "total_run_count") != 5 ||
		b["start_datetime"] != "2026-01-01 00:00:00.000000+00:00" || b["interval_type"] != "day" || num(b, "interval_units") != 1 ||
		len(obj(b, "run_status_counts")) != 0 || b["pipeline_uuid"] != "bf_days" {
		t.Fatalf("created backfill: %v", b)
	}
	list := e.must(200, e.call("GET", "/api/backfills?pipeline_uuid=bf_days", nil))
	if items, _ := list.Body["backfills"].([]any); len(items) != 1 || num(obj(list.Body, "metadata"), "count") != 1 {
		t.Fatalf("backfills of bf_days: %s", list.Raw)
	}

	started := obj(e.must(200, e.putBackfill(id, map[string]any{"status": "initial"})).Body, "backfill")
	if started["status"] != "running" || started["started_at"] == nil || started["pipeline_schedule_id"] == nil {
		t.Fatalf("started backfill: %v", started)
	}
	wantError(t, e.putBackfill(id, map[string]any{"status": "initial"}), 409, "", "")
	wantError(t, e.putBackfill(id, map[string]any{"name": "renamed"}), 409, "", "")
	wantError(t, e.call("DELETE", fmt.Sprintf("/api/backfills/%d", id), nil), 409, "", "")

	done := e.waitBackfill(id, 30*time.Second, "completed", "failed", "cancelled")
	if done["status"] != "completed" || done["completed_at"] == nil || num(done, "total_run_count") != 5 {
		t.Fatalf("finished backfill: %v", done)
	}
	if counts := obj(done, "run_status_counts"); len(counts) != 1 || num(counts, "completed") != 5 {
		t.Fatalf("run_status_counts = %v, want {completed: 5}", counts)
	}

	// The hidden schedule: never fires, cannot be triggered by token.
	hidden := num(done, "pipeline_schedule_id")
	sc := obj(e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d", hidden), nil)).Body, "pipeline_schedule")
	if sc["schedule_type"] != "api" || sc["status"] != "inactive" || sc["token"] != "" || sc["name"] != "Backfill five days" || obj(sc, "variables")["k"] != "v" {
		t.Fatalf("hidden schedule: %v", sc)
	}

	runs := e.backfillRuns(id)
	if len(runs) != 5 {
		t.Fatalf("%d runs of the backfill, want 5", len(runs))
	}
	all := e.must(200, e.call("GET", "/api/pipeline_runs?pipeline_uuid=bf_days", nil))
	if n := num(obj(all.Body, "metadata"), "count"); n != 6 {
		t.Fatalf("runs of the pipeline: %d, want 6 (5 of the backfill and 1 more)", n)
	}
	for i, pr := range runs {
		day := 5 - i // newest execution date first
		ds := fmt.Sprintf("2026-01-%02d", day)
		if pr["status"] != "completed" || pr["run_type"] != "backfill" || num(pr, "backfill_id") != id || num(pr, "pipeline_schedule_id") != hidden ||
			pr["execution_date"] != ds+" 00:00:00.000000+00:00" {
			t.Fatalf("run %d of the backfill: %v", i, pr)
		}
		vars := obj(pr, "variables")
		if vars["ds"] != ds || vars["hr"] != "00" || vars["interval_start_datetime"] != ds+"T00:00:00Z" || num(vars, "interval_seconds") != 86400 || vars["k"] != "v" {
			t.Fatalf("variables of run %d: %v", i, vars)
		}
		show := blockRuns(pr)["show"]
		logs := e.must(200, e.call("GET", fmt.Sprintf("/api/block_runs/%d/logs", num(show, "id")), nil))
		content, _ := logs.Body["logs"].([]any)[0].(map[string]any)["content"].(string)
		next := time.Date(2026, 1, day+1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		want := fmt.Sprintf("ds=%s hr=00 from=%sT00:00:00Z to=%s s=86400 k=v", ds, ds, next)
		if !strings.Contains(content, want) {
			t.Fatalf("log of run %d: %q, want %q", i, content, want)
		}
	}

	// Deleting the finished backfill keeps its runs.
	e.must(200, e.call("DELETE", fmt.Sprintf("/api/backfills/%d", id), nil))
	wantError(t, e.call("GET", fmt.Sprintf("/api/backfills/%d", id), nil), 404, "", "record_not_found")
	if runs := e.backfillRuns(id); len(runs) != 5 {
		t.Fatalf("%d runs after deleting the backfill, want 5", len(runs))
	}
}

func TestBackfillRunLimit(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{
		"uuid": "bf_limit", "blocks": []map[string]any{block("nap", map[string]any{"kind": "sleep", "seconds": 0.3})},
	}}))
	b := e.createBackfill("bf_limit", fiveDays("one at a time", "settings", map[string]any{"pipeline_run_limit": 1}))
	id := num(b, "id")
	e.must(200, e.putBackfill(id, map[string]any{"status": "initial"}))

	// Watch it progress: never two runs of it running at once.
	sawRunning := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		running := 0
		for _, pr := range e.backfillRuns(id) {
			if pr["status"] == "running" {
				running++
			}
		}
		if running > 1 {
			t.Fatalf("%d runs of the backfill running at once, limit 1", running)
		}
		sawRunning = sawRunning || running == 1
		if st := e.getBackfill(id)["status"]; st != "running" {
			if st != "completed" {
				t.Fatalf("backfill ended %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("backfill still running after 30s")
		}
		time.Sleep(15 * time.Millisecond)
	}
	if !sawRunning {
		t.Fatal("never saw a run of the backfill running")
	}
	// And after the fact: each run started after the one before it completed.
	runs := e.backfillRuns(id)
	if len(runs) != 5 {
		t.Fatalf("%d runs, want 5", len(runs))
	}
	sort.Slice(runs, func(i, j int) bool { return mageTS(t, runs[i]["started_at"]).Before(mageTS(t, runs[j]["started_at"])) })
	for i := 1; i < len(runs); i++ {
		if prev, next := mageTS(t, runs[i-1]["completed_at"]), mageTS(t, runs[i]["started_at"]); next.Before(prev) {
			t.Fatalf("run %v started at %s, before run %v completed at %s", runs[i]["id"], next, runs[i-1]["id"], prev)
		}
	}
}

func TestBackfillCancel(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{
		"uuid": "bf_cancel", "blocks": []map[string]any{block("long", shell("sleep 30"))},
	}}))
	b := e.createBackfill("bf_cancel", fiveDays("to cancel", "settings", map[string]any{"pipeline_run_limit": 1}))
	id := num(b, "id")
	e.must(200, e.putBackfill(id, map[string]any{"status": "initial"}))
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs := e.backfillRuns(id)
		running := 0
		for _, pr := range runs {
			if pr["status"] == "running" {
				running++
			}
		}
		if len(runs) == 5 && running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of the backfill never got going: %d runs, %d running", len(runs), running)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cancelled := obj(e.must(200, e.putBackfill(id, map[string]any{"status": "cancelled"})).Body, "backfill")
	if cancelled["status"] != "cancelled" || cancelled["completed_at"] == nil {
		t.Fatalf("cancelled backfill: %v", cancelled)
	}
	// The executor cancelled the runs before answering.
	runs := e.backfillRuns(id)
	for _, pr := range runs {
		if pr["status"] != "cancelled" {
			t.Fatalf("run %v of the cancelled backfill is %v", pr["id"], pr["status"])
		}
		for uuid, br := range blockRuns(pr) {
			if br["status"] != "cancelled" {
				t.Fatalf("block %s of run %v is %v", uuid, pr["id"], br["status"])
			}
		}
	}
	if counts := obj(e.getBackfill(id), "run_status_counts"); len(counts) != 1 || num(counts, "cancelled") != 5 {
		t.Fatalf("run_status_counts = %v, want {cancelled: 5}", counts)
	}
	// Cancelling again changes nothing; it cannot start again.
	again := obj(e.must(200, e.putBackfill(id, map[string]any{"status": "cancelled"})).Body, "backfill")
	if again["status"] != "cancelled" || again["completed_at"] != cancelled["completed_at"] {
		t.Fatalf("cancelled twice: %v", again)
	}
	wantError(t, e.putBackfill(id, map[string]any{"status": "initial"}), 409, "", "")
	// Nothing runs on: a moment later every run is still cancelled.
	time.Sleep(300 * time.Millisecond)
	for _, pr := range e.backfillRuns(id) {
		if pr["status"] != "cancelled" {
			t.Fatalf("run %v became %v after the cancel", pr["id"], pr["status"])
		}
	}
}

// TestBackfillStartDeliveredTwice delivers the start of a running backfill again, under other
// message ids (as a redelivery after a lost ack would arrive): still one hidden schedule and
// one run per date.
func TestBackfillStartDeliveredTwice(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{
		"uuid": "bf_twice", "blocks": []map[string]any{block("nap", map[string]any{"kind": "sleep", "seconds": 0.1})},
	}}))
	id := num(e.createBackfill("bf_twice", fiveDays("twice", "settings", map[string]any{"pipeline_run_limit": 1})), "id")
	e.must(200, e.putBackfill(id, map[string]any{"status": "initial"}))

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		env, err := command.New(fmt.Sprint("again-", i), command.TypeStartBackfill, "default", "test", command.StartBackfill{BackfillID: id})
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, natsbus.CommandSubject(env.Type), data, jetstream.WithMsgID(env.ID)); err != nil {
			t.Fatal(err)
		}
	}
	done := e.waitBackfill(id, 30*time.Second, "completed", "failed", "cancelled")
	if done["status"] != "completed" || num(obj(done, "run_status_counts"), "completed") != 5 {
		t.Fatalf("backfill started several times: %v", done)
	}
	// Later copies of the start may still be in flight: let the command queue drain.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := js.Stream(ctx, natsbus.StreamCommands)
		if err != nil {
			t.Fatal(err)
		}
		if info.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("commands not consumed within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if runs := e.backfillRuns(id); len(runs) != 5 {
		t.Fatalf("%d runs, want 5", len(runs))
	}
	scs := e.must(200, e.call("GET", "/api/pipelines/bf_twice/pipeline_schedules", nil))
	if n := num(obj(scs.Body, "metadata"), "count"); n != 1 {
		t.Fatalf("%d schedules, want the one hidden schedule: %s", n, scs.Raw)
	}
}

func TestBackfillValidation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		e = e.on(t)
		e.must(200, e.call("POST", "/api/pipelines", pipelineBody("bf_valid")))
		post := func(fields any) response {
			return e.call("POST", "/api/pipelines/bf_valid/backfills", map[string]any{"backfill": fields})
		}
		for _, tc := range []struct {
			name   string
			fields map[string]any
			field  string
			says   string
		}{
			{"no name", fiveDays(""), "backfill.name", "required"},
			{"end before start", fiveDays("b", "end_datetime", "2025-12-31 00:00:00"), "backfill.end_datetime", "before"},
			{"units below 1", fiveDays("b", "interval_units", 0), "backfill.interval_units", "1 or more"},
			{"units not a number", fiveDays("b", "interval_units", "many"), "backfill.interval_units", "whole number"},
			{"unknown interval type", fiveDays("b", "interval_type", "fortnight"), "backfill.interval_type", "fortnight"},
			{"more than 10,000 dates", fiveDays("b", "interval_type", "second"), "backfill.end_datetime", "10000"},
			{"bad date", fiveDays("b", "start_datetime", "yesterday"), "backfill.start_datetime", "yesterday"},
			{"date not a string", fiveDays("b", "end_datetime", 20260105), "backfill.end_datetime", "datetime"},
			{"variables not an object", fiveDays("b", "variables", "x"), "backfill.variables", ""},
			{"negative run limit", fiveDays("b", "settings", map[string]any{"pipeline_run_limit": -1}), "backfill.settings.pipeline_run_limit", ""},
			{"status on creation", fiveDays("b", "status", "running"), "backfill.status", "null"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var says []string
				if tc.says != "" {
					says = append(says, tc.says)
				}
				wantError(t, post(tc.fields), 400, tc.field, "record_invalid", says...)
			})
		}
		wantError(t, e.call("POST", "/api/pipelines/bf_valid/backfills", map[string]any{}), 400, "backfill", "record_invalid")
		if r := e.must(200, e.call("GET", "/api/backfills?pipeline_uuid=bf_valid", nil)); num(obj(r.Body, "metadata"), "count") != 0 {
			t.Fatalf("refused requests stored backfills: %s", r.Raw)
		}
		wantError(t, e.call("POST", "/api/pipelines/nope/backfills", map[string]any{"backfill": fiveDays("b")}), 404, "", "record_not_found")

		// Dates: Mage's format and RFC 3339 with an offset, both kept in UTC.
		b := e.createBackfill("bf_valid", fiveDays("offset", "start_datetime", "2026-01-01T01:00:00+01:00", "end_datetime", "2026-01-03 00:00:00.5+00:00"))
		if b["start_datetime"] != "2026-01-01 00:00:00.000000+00:00" || b["end_datetime"] != "2026-01-03 00:00:00.500000+00:00" || num(b, "total_run_count") != 3 {
			t.Fatalf("dates read back: %v", b)
		}

		// A draft may lack its range; starting it may not, and leaves it a draft.
		draft := e.createBackfill("bf_valid", map[string]any{"name": "draft"})
		did := num(draft, "id")
		if draft["start_datetime"] != nil || draft["interval_type"] != nil || draft["interval_units"] != nil || num(draft, "total_run_count") != 0 {
			t.Fatalf("draft: %v", draft)
		}
		for _, field := range []string{"backfill.start_datetime", "backfill.end_datetime", "backfill.interval_type", "backfill.interval_units"} {
			wantError(t, e.putBackfill(did, map[string]any{"status": "initial"}), 400, field, "record_invalid")
		}
		if st := e.getBackfill(did)["status"]; st != nil {
			t.Fatalf("a refused start left status %v", st)
		}
		// Edits of a draft are validated like a creation; the status sent back as it is is no change.
		wantError(t, e.putBackfill(did, map[string]any{"interval_units": -2}), 400, "backfill.interval_units", "record_invalid")
		wantError(t, e.putBackfill(did, map[string]any{"status": "completed"}), 400, "backfill.status", "record_invalid")
		edited := obj(e.must(200, e.putBackfill(did, with(fiveDays("draft edited"), "status", nil))).Body, "backfill")
		if edited["name"] != "draft edited" || num(edited, "total_run_count") != 5 || edited["status"] != nil {
			t.Fatalf("edited draft: %v", edited)
		}
		cleared := obj(e.must(200, e.putBackfill(did, map[string]any{"end_datetime": nil})).Body, "backfill")
		if cleared["end_datetime"] != nil || cleared["start_datetime"] == nil {
			t.Fatalf("end_datetime not cleared: %v", cleared)
		}
		// A draft is cancelled without an executor, and cannot start then.
		if st := obj(e.must(200, e.putBackfill(did, map[string]any{"status": "cancelled"})).Body, "backfill")["status"]; st != "cancelled" {
			t.Fatalf("cancelled draft is %v", st)
		}
		wantError(t, e.putBackfill(did, map[string]any{"status": "initial"}), 409, "", "")

		// Unknown ids are 404; filters are checked.
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			var body any
			if m == "PUT" {
				body = map[string]any{"backfill": map[string]any{"name": "x"}}
			}
			wantError(t, e.call(m, "/api/backfills/999", body), 404, "", "record_not_found")
			wantError(t, e.call(m, "/api/backfills/abc", body), 404, "", "record_not_found")
		}
		wantError(t, e.call("GET", "/api/pipeline_runs?backfill_id=x", nil), 400, "backfill_id", "record_invalid")
		wantError(t, e.call("GET", "/api/backfills?_limit=0", nil), 400, "_limit", "record_invalid")

		// The list: newest first, paged, in Mage's envelope.
		page := e.must(200, e.call("GET", "/api/backfills?pipeline_uuid=bf_valid&_limit=1", nil))
		items, _ := page.Body["backfills"].([]any)
		meta := obj(page.Body, "metadata")
		if len(items) != 1 || num(meta, "count") != 2 || meta["next"] != true || num(items[0].(map[string]any), "id") != did {
			t.Fatalf("first page of backfills: %s", page.Raw)
		}
		if r := e.must(200, e.call("GET", "/api/backfills?pipeline_uuid=other", nil)); num(obj(r.Body, "metadata"), "count") != 0 {
			t.Fatalf("backfills of another pipeline: %s", r.Raw)
		}
		e.must(200, e.call("DELETE", fmt.Sprintf("/api/backfills/%d", did), nil))
	})
}
