package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// mageFixedAPIKey is the client id every Mage client sends as api_key, next to its real token.
const mageFixedAPIKey = "zkWlN0PkIKSN0C11CfUHUj84OT5XOJ6tDZ6bDRO2"

// on returns a view of e that reports failures to t, so that parallel subtests fail themselves
// rather than their parent.
func (e *env) on(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// badInput is one request that must be refused.
type badInput struct {
	name    string
	method  string
	path    string
	body    any
	headers []string
	status  int
	// field, when set, must be named by one of error.errors.
	field string
	// contains must all appear in the error's message or in its field errors' messages.
	contains []string
	// errType, when set, is the expected error.type.
	errType string
}

// runBadInputs sends every case as a parallel subtest and checks its error answer.
func runBadInputs(t *testing.T, e *env, cases []badInput) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := e.on(t).call(method, tc.path, tc.body, tc.headers...)
			wantError(t, r, tc.status, tc.field, tc.errType, tc.contains...)
		})
	}
}

// wantError checks that r is Mage's error body with the real HTTP status as error.code and,
// when field is set, that one of error.errors names exactly that field.
func wantError(t testing.TB, r response, status int, field, errType string, contains ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON: %s", ct, r.Raw)
	}
	e, ok := r.Body["error"].(map[string]any)
	if !ok {
		t.Fatalf("body lacks Mage's error object: %s", r.Raw)
	}
	if code, ok := e["code"].(float64); !ok || int(code) != status {
		t.Fatalf("error.code = %v, want %d: %s", e["code"], status, r.Raw)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Fatalf("error.message is empty: %s", r.Raw)
	}
	typ, _ := e["type"].(string)
	if typ == "" {
		t.Fatalf("error.type is empty: %s", r.Raw)
	}
	if errType != "" && typ != errType {
		t.Fatalf("error.type = %q, want %q: %s", typ, errType, r.Raw)
	}
	list, ok := e["errors"].([]any)
	if !ok {
		t.Fatalf("error.errors is not an array: %s", r.Raw)
	}
	text := msg
	found := field == ""
	var fields []string
	for _, x := range list {
		fe, ok := x.(map[string]any)
		if !ok {
			t.Fatalf("error.errors holds a non-object: %s", r.Raw)
		}
		f, _ := fe["field"].(string)
		m, _ := fe["message"].(string)
		if f == "" || m == "" {
			t.Fatalf("field error without field or message: %s", r.Raw)
		}
		fields = append(fields, f)
		text += "\n" + m
		if f == field {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error names field %q (fields %q): %s", field, fields, r.Raw)
	}
	for _, s := range contains {
		if !strings.Contains(text, s) {
			t.Fatalf("error does not mention %q: %s", s, r.Raw)
		}
	}
}

// eachStore runs fn on a fresh system per store the standalone binary supports, as parallel
// subtests: status codes such as 404 and 409 come from the store's errors.
func eachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	stores := []struct {
		name  string
		start func(testing.TB, map[string]string) *env
	}{{"sqlite", start}, {"mongo", startMongo}}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			fn(t, st.start(t, nil))
		})
	}
}

func pipelineBody(uuid string, blocks ...map[string]any) map[string]any {
	if blocks == nil {
		blocks = []map[string]any{}
	}
	return map[string]any{"pipeline": map[string]any{"uuid": uuid, "blocks": blocks}}
}

func scheduleBody(fields map[string]any) map[string]any {
	return map[string]any{"pipeline_schedule": fields}
}

func runIDs(t testing.TB, r response) []int64 {
	t.Helper()
	items, ok := r.Body["pipeline_runs"].([]any)
	if !ok {
		t.Fatalf("no pipeline_runs list: %s", r.Raw)
	}
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = num(it.(map[string]any), "id")
	}
	return ids
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := start(t, nil)

	refused := []badInput{
		{name: "no key", method: "GET", path: "/api/pipelines", headers: noAuth, status: 401, errType: "invalid_api_key"},
		{name: "unknown X-API-KEY", method: "GET", path: "/api/pipelines", headers: []string{"no-auth", "", "X-API-KEY", "nope"}, status: 401, errType: "invalid_api_key"},
		{name: "unknown api_key", method: "GET", path: "/api/pipelines?api_key=nope", headers: noAuth, status: 401, errType: "invalid_api_key"},
		{name: "unknown bearer", method: "GET", path: "/api/pipelines", headers: []string{"no-auth", "", "Authorization", "Bearer nope"}, status: 401, errType: "invalid_api_key"},
		{name: "basic auth is no key", method: "GET", path: "/api/pipelines", headers: []string{"no-auth", "", "Authorization", "Basic " + adminKey}, status: 401, errType: "invalid_api_key"},
		{name: "empty bearer", method: "GET", path: "/api/pipelines", headers: []string{"no-auth", "", "Authorization", "Bearer "}, status: 401, errType: "invalid_api_key"},
		{name: "mage client id alone", method: "GET", path: "/api/pipelines?api_key=" + mageFixedAPIKey, headers: noAuth, status: 401, errType: "invalid_api_key"},
		{name: "unknown key on write", path: "/api/pipelines", body: pipelineBody("x"), headers: []string{"no-auth", "", "X-API-KEY", "nope"}, status: 401},
		{name: "unknown api route without key", method: "GET", path: "/api/nothing_here", headers: noAuth, status: 401},
		{name: "unknown api route", method: "GET", path: "/api/nothing_here", status: 404, errType: "record_not_found", contains: []string{"/api/nothing_here"}},
		{name: "unknown route", method: "GET", path: "/nothing_here", headers: noAuth, status: 404, errType: "record_not_found"},
		{name: "unknown method on a route", method: "PATCH", path: "/api/pipelines", status: 404},
		{name: "unknown run", method: "GET", path: "/api/pipeline_runs/999999", status: 404, errType: "record_not_found"},
		{name: "malformed run id", method: "GET", path: "/api/pipeline_runs/abc", status: 404},
		{name: "zero run id", method: "GET", path: "/api/pipeline_runs/0", status: 404},
		{name: "block runs of unknown run", method: "GET", path: "/api/pipeline_runs/999999/block_runs", status: 404},
		{name: "unknown pipeline", method: "GET", path: "/api/pipelines/ghost", status: 404, contains: []string{"ghost"}},
	}
	runBadInputs(t, e, refused)

	accepted := []struct {
		name    string
		path    string
		headers []string
	}{
		{"api_key query", "/api/pipelines?api_key=" + adminKey, noAuth},
		{"X-API-KEY header", "/api/pipelines", []string{"no-auth", "", "X-API-KEY", adminKey}},
		{"bearer", "/api/pipelines", []string{"no-auth", "", "Authorization", "Bearer " + adminKey}},
		{"lowercase bearer", "/api/pipelines", []string{"no-auth", "", "Authorization", "bearer " + adminKey}},
		{"mage client id and bearer", "/api/pipelines?api_key=" + mageFixedAPIKey, []string{"no-auth", "", "Authorization", "Bearer " + adminKey}},
		{"unknown X-API-KEY and valid bearer", "/api/pipelines", []string{"no-auth", "", "X-API-KEY", "nope", "Authorization", "Bearer " + adminKey}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.on(t).must(200, e.on(t).call("GET", tc.path, nil, tc.headers...))
			if _, ok := r.Body["pipelines"].([]any); !ok {
				t.Fatalf("no pipelines list: %s", r.Raw)
			}
		})
	}
}

func TestCreatePipelineValidation(t *testing.T) {
	t.Parallel()
	eachStore(t, testCreatePipelineValidation)
}

func testCreatePipelineValidation(t *testing.T, e *env) {
	const path = "/api/pipelines"
	cmd := func(kind string, extra ...any) map[string]any {
		r := map[string]any{"kind": kind}
		for i := 0; i+1 < len(extra); i += 2 {
			r[extra[i].(string)] = extra[i+1]
		}
		return r
	}
	manyBlocks := make([]map[string]any, 501)
	for i := range manyBlocks {
		manyBlocks[i] = block(fmt.Sprintf("b%d", i), noop)
	}

	cases := []badInput{
		{name: "empty body", body: nil, status: 400, contains: []string{"empty"}},
		{name: "blank body", body: "  \n", status: 400, contains: []string{"empty"}},
		{name: "not JSON", body: "pipeline=etl", status: 400, contains: []string{"not valid JSON"}},
		{name: "truncated JSON", body: `{"pipeline": {"uuid": "x"`, status: 400, contains: []string{"not valid JSON"}},
		{name: "data after the object", body: `{"pipeline": {"uuid": "x"}} {}`, status: 400, contains: []string{"after"}},
		{name: "body is an array", body: `[{"pipeline": {"uuid": "x"}}]`, status: 400, field: "body", contains: []string{"object"}},
		{name: "body is a string", body: `"etl"`, status: 400, field: "body", contains: []string{"object"}},
		{name: "missing pipeline", body: map[string]any{}, status: 400, field: "pipeline"},
		{name: "null pipeline", body: `{"pipeline": null}`, status: 400, field: "pipeline"},
		{name: "pipeline is a string", body: `{"pipeline": "etl"}`, status: 400, field: "pipeline"},
		{name: "no uuid or name", body: `{"pipeline": {}}`, status: 400, field: "pipeline.uuid"},
		{name: "bad uuid", body: pipelineBody("bad uuid!"), status: 400, field: "pipeline.uuid"},
		{name: "uuid starting with dash", body: pipelineBody("-x"), status: 400, field: "pipeline.uuid"},
		{name: "uuid too long", body: pipelineBody(strings.Repeat("u", 256)), status: 400, field: "pipeline.uuid"},
		{name: "uuid is a number", body: `{"pipeline": {"uuid": 5}}`, status: 400, field: "pipeline.uuid"},
		{name: "name too long", body: map[string]any{"pipeline": map[string]any{"uuid": "n", "name": strings.Repeat("n", 256)}}, status: 400, field: "pipeline.name"},
		{name: "variables is an array", body: `{"pipeline": {"uuid": "v", "variables": [1]}}`, status: 400, field: "pipeline.variables"},
		{name: "blocks is a string", body: `{"pipeline": {"uuid": "b", "blocks": "x"}}`, status: 400, field: "pipeline.blocks"},
		{name: "block is a string", body: `{"pipeline": {"uuid": "b", "blocks": ["x"]}}`, status: 400, field: "pipeline.blocks"},
		{name: "upstream_blocks is a number", body: `{"pipeline": {"uuid": "b", "blocks": [{"uuid": "a", "upstream_blocks": 5, "runner": {"kind": "noop"}}]}}`,
			status: 400, field: "pipeline.blocks.upstream_blocks"},
		{name: "runner is a string", body: `{"pipeline": {"uuid": "b", "blocks": [{"uuid": "a", "runner": "noop"}]}}`, status: 400, field: "pipeline.blocks.runner"},
		{name: "command is a string", body: `{"pipeline": {"uuid": "b", "blocks": [{"uuid": "a", "runner": {"kind": "command", "command": "echo hi"}}]}}`,
			status: 400, field: "pipeline.blocks.runner.command"},
		{name: "too many blocks", body: pipelineBody("many", manyBlocks...), status: 400, field: "pipeline.blocks", contains: []string{"500"}},
		{name: "cycle", body: pipelineBody("cyc", block("a", noop, "c"), block("b", noop, "a"), block("c", noop, "b")),
			status: 400, field: "pipeline.blocks", contains: []string{"cycle", "a -> b -> c -> a"}},
		{name: "self upstream", body: pipelineBody("self", block("a", noop, "a")), status: 400, field: "pipeline.blocks[0].upstream_blocks", contains: []string{`"a"`}},
		{name: "unknown upstream", body: pipelineBody("unk", block("a", noop), block("b", noop, "ghost")),
			status: 400, field: "pipeline.blocks[1].upstream_blocks", contains: []string{`"b"`, `"ghost"`}},
		{name: "repeated upstream", body: pipelineBody("rep", block("a", noop), block("b", noop, "a", "a")),
			status: 400, field: "pipeline.blocks[1].upstream_blocks", contains: []string{`"a"`}},
		{name: "duplicate block uuid", body: pipelineBody("dup", block("a", noop), block("b", noop), block("a", noop)),
			status: 400, field: "pipeline.blocks[2].uuid", contains: []string{`"a"`}},
		{name: "bad block uuid", body: pipelineBody("bbu", block("a b", noop)), status: 400, field: "pipeline.blocks[0].uuid"},
		{name: "empty block uuid", body: pipelineBody("ebu", block("", noop)), status: 400, field: "pipeline.blocks[0].uuid"},
		{name: "unknown runner kind", body: pipelineBody("kind", block("a", noop), block("b", cmd("python"))),
			status: 400, field: "pipeline.blocks[1].runner.kind", contains: []string{`"python"`}},
		{name: "missing runner kind", body: pipelineBody("nokind", block("a", map[string]any{})), status: 400, field: "pipeline.blocks[0].runner.kind"},
		{name: "missing command", body: pipelineBody("nocmd", block("a", cmd("command"))), status: 400, field: "pipeline.blocks[0].runner.command"},
		{name: "empty command", body: pipelineBody("emptycmd", block("a", cmd("command", "command", []string{""}))), status: 400, field: "pipeline.blocks[0].runner.command"},
		{name: "bad env name", body: pipelineBody("env", block("a", cmd("command", "command", []string{"true"}, "env", map[string]string{"A=B": "x"}))),
			status: 400, field: "pipeline.blocks[0].runner.env"},
		{name: "http without url", body: pipelineBody("h0", block("a", cmd("http"))), status: 400, field: "pipeline.blocks[0].runner.url"},
		{name: "http with relative url", body: pipelineBody("h1", block("a", cmd("http", "url", "/hook"))), status: 400, field: "pipeline.blocks[0].runner.url"},
		{name: "http with ftp url", body: pipelineBody("h2", block("a", cmd("http", "url", "ftp://example.com/x"))), status: 400, field: "pipeline.blocks[0].runner.url"},
		{name: "http with bad method", body: pipelineBody("h3", block("a", cmd("http", "url", "http://example.com", "method", "FETCH"))), status: 400, field: "pipeline.blocks[0].runner.method"},
		{name: "negative sleep", body: pipelineBody("s1", block("a", cmd("sleep", "seconds", -1))), status: 400, field: "pipeline.blocks[0].runner.seconds"},
		{name: "negative timeout", body: pipelineBody("t1", block("a", cmd("command", "command", []string{"true"}, "timeout", -1))), status: 400, field: "pipeline.blocks[0].runner.timeout"},
		{name: "bad space", path: path + "?space=Bad_Space", body: pipelineBody("sp"), status: 400, field: "space"},
	}
	for i := range cases {
		if cases[i].path == "" {
			cases[i].path = path
		}
	}
	t.Run("refused", func(t *testing.T) { runBadInputs(t, e, cases) })

	// None of the refused requests stored anything.
	list := e.must(200, e.call("GET", path, nil))
	if n := obj(list.Body, "metadata")["count"]; n != 0.0 {
		t.Fatalf("refused requests stored pipelines: %s", list.Raw)
	}

	// A name alone gives a uuid derived from it.
	r := e.must(200, e.call("POST", path, map[string]any{"pipeline": map[string]any{"name": "  My ETL: Daily Load! "}}))
	p := obj(r.Body, "pipeline")
	if p["uuid"] != "my_etl_daily_load" || p["name"] != "  My ETL: Daily Load! " {
		t.Fatalf("pipeline from a name = %s", r.Raw)
	}
	e.must(200, e.call("GET", path+"/my_etl_daily_load", nil))

	// The same uuid again conflicts, whether given or derived.
	e.must(200, e.call("POST", path, pipelineBody("etl", block("a", noop))))
	wantError(t, e.call("POST", path, pipelineBody("etl")), 409, "", "", `"etl"`)
	wantError(t, e.call("POST", path, map[string]any{"pipeline": map[string]any{"name": "My ETL - daily load"}}), 409, "", "", `"my_etl_daily_load"`)
	// The conflict left the first definition alone.
	got := obj(e.must(200, e.call("GET", path+"/etl", nil)).Body, "pipeline")
	if blocks, _ := got["blocks"].([]any); len(blocks) != 1 {
		t.Fatalf("a conflicting create changed the pipeline: %v", got)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"RUNYARD_MAX_BODY_BYTES": "2048"})
	big := map[string]any{"pipeline": map[string]any{"uuid": "big", "description": strings.Repeat("d", 3000)}}
	wantError(t, e.call("POST", "/api/pipelines", big), 413, "", "", "2048")
	e.must(404, e.call("GET", "/api/pipelines/big", nil))

	// The trigger endpoint is bounded too, before any lookup.
	wantError(t, e.trigger(1, "x", map[string]any{"pipeline_run": map[string]any{"variables": map[string]any{"v": strings.Repeat("v", 3000)}}}), 413, "", "", "2048")

	// A body under the limit is fine.
	small := map[string]any{"pipeline": map[string]any{"uuid": "small", "description": strings.Repeat("d", 1500)}}
	e.must(200, e.call("POST", "/api/pipelines", small))
}

func TestUpdateAndDeletePipeline(t *testing.T) {
	t.Parallel()
	eachStore(t, testUpdateAndDeletePipeline)
}

func testUpdateAndDeletePipeline(t *testing.T, e *env) {
	id, token := e.pipelineWithSchedule("upd", block("a", noop), block("b", noop, "a"))
	before := e.must(200, e.call("GET", "/api/pipelines/upd", nil))

	cases := []badInput{
		{name: "change uuid", body: map[string]any{"pipeline": map[string]any{"uuid": "other"}}, status: 400, field: "pipeline.uuid", contains: []string{`"upd"`}},
		{name: "cycle", body: pipelineBody("upd", block("a", noop, "b"), block("b", noop, "a")), status: 400, field: "pipeline.blocks", contains: []string{"cycle"}},
		{name: "unknown upstream", body: map[string]any{"pipeline": map[string]any{"blocks": []map[string]any{block("a", noop, "z")}}},
			status: 400, field: "pipeline.blocks[0].upstream_blocks", contains: []string{`"z"`}},
		{name: "bad runner", body: map[string]any{"pipeline": map[string]any{"blocks": []map[string]any{block("a", map[string]any{"kind": "bash"})}}},
			status: 400, field: "pipeline.blocks[0].runner.kind"},
		{name: "blocks is a string", body: `{"pipeline": {"blocks": "x"}}`, status: 400, field: "pipeline.blocks"},
		{name: "name too long", body: map[string]any{"pipeline": map[string]any{"name": strings.Repeat("n", 300)}}, status: 400, field: "pipeline.name"},
		{name: "empty body", body: nil, status: 400},
		{name: "missing pipeline", body: map[string]any{"blocks": []any{}}, status: 400, field: "pipeline"},
		{name: "unknown pipeline", path: "/api/pipelines/ghost", body: pipelineBody("ghost"), status: 404, errType: "record_not_found", contains: []string{`"ghost"`}},
	}
	for i := range cases {
		cases[i].method = "PUT"
		if cases[i].path == "" {
			cases[i].path = "/api/pipelines/upd"
		}
	}
	t.Run("refused", func(t *testing.T) { runBadInputs(t, e, cases) })

	after := e.must(200, e.call("GET", "/api/pipelines/upd", nil))
	if after.Raw != before.Raw {
		t.Fatalf("refused updates changed the pipeline:\nbefore %s\nafter  %s", before.Raw, after.Raw)
	}

	// Repeating the uuid is not a change.
	r := e.must(200, e.call("PUT", "/api/pipelines/upd", map[string]any{"pipeline": map[string]any{"uuid": "upd", "description": "d"}}))
	if obj(r.Body, "pipeline")["description"] != "d" {
		t.Fatalf("update = %s", r.Raw)
	}

	wantError(t, e.call("DELETE", "/api/pipelines/ghost", nil), 404, "", "record_not_found")
	e.must(200, e.call("DELETE", "/api/pipelines/upd", nil))
	wantError(t, e.call("GET", "/api/pipelines/upd", nil), 404, "", "record_not_found")
	wantError(t, e.call("DELETE", "/api/pipelines/upd", nil), 404, "", "")
	wantError(t, e.call("PUT", "/api/pipelines/upd", pipelineBody("upd")), 404, "", "")
	sched := fmt.Sprintf("/api/pipeline_schedules/%d", id)
	wantError(t, e.call("GET", sched, nil), 404, "", "record_not_found")
	wantError(t, e.call("GET", sched+"/pipeline_runs", nil), 404, "", "")
	wantError(t, e.call("GET", "/api/pipelines/upd/pipeline_schedules", nil), 404, "", "")
	wantError(t, e.call("POST", "/api/pipelines/upd/pipeline_schedules", scheduleBody(map[string]any{"name": "x"})), 404, "", "")
	wantError(t, e.trigger(id, token, nil), 404, "", "")
}

func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	eachStore(t, testScheduleValidation)
}

func testScheduleValidation(t *testing.T, e *env) {
	id, token := e.pipelineWithSchedule("sched", block("a", noop))
	sched := fmt.Sprintf("/api/pipeline_schedules/%d", id)
	create := "/api/pipelines/sched/pipeline_schedules"
	before := e.must(200, e.call("GET", sched, nil))

	with := func(fields map[string]any) map[string]any {
		f := map[string]any{"name": "n", "schedule_type": "api"}
		for k, v := range fields {
			f[k] = v
		}
		return scheduleBody(f)
	}
	createCases := []badInput{
		{name: "unknown pipeline", path: "/api/pipelines/ghost/pipeline_schedules", body: with(nil), status: 404, errType: "record_not_found", contains: []string{`"ghost"`}},
		{name: "empty body", body: nil, status: 400},
		{name: "not JSON", body: "name=n", status: 400},
		{name: "missing envelope", body: map[string]any{"name": "n"}, status: 400, field: "pipeline_schedule"},
		{name: "envelope is a string", body: `{"pipeline_schedule": "n"}`, status: 400, field: "pipeline_schedule"},
		{name: "body is an array", body: `[{"pipeline_schedule": {"name": "n"}}]`, status: 400, field: "body", contains: []string{"object"}},
		{name: "missing name", body: scheduleBody(map[string]any{"schedule_type": "api"}), status: 400, field: "pipeline_schedule.name"},
		{name: "blank name", body: with(map[string]any{"name": "   "}), status: 400, field: "pipeline_schedule.name"},
		{name: "name too long", body: with(map[string]any{"name": strings.Repeat("n", 256)}), status: 400, field: "pipeline_schedule.name"},
		{name: "name is a number", body: `{"pipeline_schedule": {"name": 5}}`, status: 400, field: "pipeline_schedule.name"},
		{name: "bad schedule_type", body: with(map[string]any{"schedule_type": "cron"}), status: 400, field: "pipeline_schedule.schedule_type"},
		{name: "bad status", body: with(map[string]any{"status": "paused"}), status: 400, field: "pipeline_schedule.status"},
		{name: "bad interval", body: with(map[string]any{"schedule_type": "time", "schedule_interval": "every day"}), status: 400, field: "pipeline_schedule.schedule_interval"},
		{name: "seven-field cron", body: with(map[string]any{"schedule_type": "time", "schedule_interval": "0 0 0 * * * *"}), status: 400, field: "pipeline_schedule.schedule_interval"},
		{name: "unknown preset", body: with(map[string]any{"schedule_type": "time", "schedule_interval": "@fortnightly"}), status: 400, field: "pipeline_schedule.schedule_interval"},
		{name: "time without interval", body: with(map[string]any{"schedule_type": "time"}), status: 400, field: "pipeline_schedule.schedule_interval"},
		{name: "negative sla", body: with(map[string]any{"sla": -5}), status: 400, field: "pipeline_schedule.sla"},
		{name: "sla is a string", body: `{"pipeline_schedule": {"name": "n", "sla": "1h"}}`, status: 400, field: "pipeline_schedule.sla"},
		{name: "sla is a fraction", body: `{"pipeline_schedule": {"name": "n", "sla": 1.5}}`, status: 400, field: "pipeline_schedule.sla", contains: []string{"whole number"}},
		{name: "rotate_token is a string", body: `{"pipeline_schedule": {"name": "n", "rotate_token": "yes"}}`, status: 400, field: "pipeline_schedule.rotate_token"},
		{name: "unparsable start_time", body: with(map[string]any{"start_time": "next tuesday"}), status: 400, field: "pipeline_schedule.start_time", contains: []string{"next tuesday"}},
		{name: "start_time is a number", body: with(map[string]any{"start_time": 5}), status: 400, field: "pipeline_schedule.start_time"},
		{name: "variables is a list", body: `{"pipeline_schedule": {"name": "n", "variables": [1]}}`, status: 400, field: "pipeline_schedule.variables"},
		{name: "several problems", body: scheduleBody(map[string]any{"schedule_type": "x", "status": "y", "sla": -1}), status: 400, field: "pipeline_schedule.sla"},
	}
	for i := range createCases {
		if createCases[i].path == "" {
			createCases[i].path = create
		}
	}
	updateCases := []badInput{
		{name: "update unknown schedule", path: "/api/pipeline_schedules/999999", body: with(nil), status: 404, errType: "record_not_found"},
		{name: "update malformed id", path: "/api/pipeline_schedules/abc", body: with(nil), status: 404},
		{name: "update bad status", body: scheduleBody(map[string]any{"status": "on"}), status: 400, field: "pipeline_schedule.status"},
		{name: "update blank name", body: scheduleBody(map[string]any{"name": ""}), status: 400, field: "pipeline_schedule.name"},
		{name: "update to time without interval", body: scheduleBody(map[string]any{"schedule_type": "time"}), status: 400, field: "pipeline_schedule.schedule_interval"},
		{name: "update bad start_time", body: scheduleBody(map[string]any{"start_time": "2026-13-45"}), status: 400, field: "pipeline_schedule.start_time"},
		{name: "update negative sla", body: scheduleBody(map[string]any{"sla": -1}), status: 400, field: "pipeline_schedule.sla"},
		{name: "update empty body", body: nil, status: 400},
		{name: "update missing envelope", body: map[string]any{}, status: 400, field: "pipeline_schedule"},
	}
	for i := range updateCases {
		updateCases[i].method = "PUT"
		if updateCases[i].path == "" {
			updateCases[i].path = sched
		}
	}
	lookupCases := []badInput{
		{name: "get malformed id", method: "GET", path: "/api/pipeline_schedules/abc", status: 404, errType: "record_not_found"},
		{name: "get unknown id", method: "GET", path: "/api/pipeline_schedules/999999", status: 404, errType: "record_not_found"},
		{name: "get negative id", method: "GET", path: "/api/pipeline_schedules/-1", status: 404},
		{name: "delete unknown id", method: "DELETE", path: "/api/pipeline_schedules/999999", status: 404},
		{name: "runs of unknown id", method: "GET", path: "/api/pipeline_schedules/999999/pipeline_runs", status: 404},
		{name: "schedules of unknown pipeline", method: "GET", path: "/api/pipelines/ghost/pipeline_schedules", status: 404},
	}
	t.Run("refused", func(t *testing.T) {
		runBadInputs(t, e, createCases)
		runBadInputs(t, e, updateCases)
		runBadInputs(t, e, lookupCases)
	})

	// Nothing refused was stored or changed.
	list := e.must(200, e.call("GET", create, nil))
	if obj(list.Body, "metadata")["count"] != 1.0 {
		t.Fatalf("refused requests stored schedules: %s", list.Raw)
	}
	if after := e.must(200, e.call("GET", sched, nil)); after.Raw != before.Raw {
		t.Fatalf("refused updates changed the schedule:\nbefore %s\nafter  %s", before.Raw, after.Raw)
	}

	// A good time schedule and start time in Mage's format are accepted.
	r := e.must(200, e.call("POST", create, with(map[string]any{"schedule_type": "time", "schedule_interval": "*/5 * * * *", "start_time": "2026-01-01 00:00:00"})))
	if s := obj(r.Body, "pipeline_schedule"); s["start_time"] != "2026-01-01 00:00:00.000000+00:00" || s["token"] != "" {
		t.Fatalf("time schedule = %s", r.Raw)
	}

	// Rotating the token retires the old one.
	r = e.must(200, e.call("PUT", sched, scheduleBody(map[string]any{"rotate_token": true})))
	fresh, _ := obj(r.Body, "pipeline_schedule")["token"].(string)
	if fresh == "" || fresh == token {
		t.Fatalf("rotate_token left the token %q (was %q)", fresh, token)
	}
	wantError(t, e.trigger(id, token, nil), 401, "", "invalid_token")
	pr := obj(e.must(200, e.trigger(id, fresh, nil)).Body, "pipeline_run")
	e.waitRun(num(pr, "id"))
	// An update without rotate_token keeps the token.
	r = e.must(200, e.call("PUT", sched, scheduleBody(map[string]any{"description": "x"})))
	if obj(r.Body, "pipeline_schedule")["token"] != fresh {
		t.Fatalf("an update without rotate_token changed the token: %s", r.Raw)
	}
}

func TestTriggerValidation(t *testing.T) {
	t.Parallel()
	eachStore(t, testTriggerValidation)
}

func testTriggerValidation(t *testing.T, e *env) {
	id, token := e.pipelineWithSchedule("trig", block("a", noop))
	timeSched := num(obj(e.must(200, e.call("POST", "/api/pipelines/trig/pipeline_schedules",
		scheduleBody(map[string]any{"name": "nightly", "schedule_type": "time", "schedule_interval": "@daily", "status": "inactive"}))).Body, "pipeline_schedule"), "id")
	inactive := obj(e.must(200, e.call("POST", "/api/pipelines/trig/pipeline_schedules",
		scheduleBody(map[string]any{"name": "off", "schedule_type": "api", "status": "inactive"}))).Body, "pipeline_schedule")
	inactiveID, inactiveToken := num(inactive, "id"), inactive["token"].(string)
	if inactiveToken == "" {
		t.Fatalf("inactive api schedule has no token: %v", inactive)
	}

	tp := func(id int64, token string) string {
		return fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", id, token)
	}
	good := tp(id, token)
	cases := []badInput{
		{name: "unknown schedule", path: tp(999999, token), status: 404, errType: "record_not_found"},
		{name: "malformed schedule id", path: "/api/pipeline_schedules/abc/pipeline_runs/" + token, status: 404},
		{name: "wrong token", path: tp(id, "0123456789abcdef0123456789abcdef"), status: 401, errType: "invalid_token"},
		{name: "another schedule's token", path: tp(id, inactiveToken), status: 401, errType: "invalid_token"},
		{name: "time schedule", path: tp(timeSched, "anything"), status: 400, contains: []string{"time"}},
		{name: "inactive schedule", path: tp(inactiveID, inactiveToken), status: 409, contains: []string{"inactive"}},
		{name: "body is an array", path: good, body: `[{"pipeline_run": {}}]`, status: 400, contains: []string{"object"}},
		{name: "body is a string", path: good, body: `"run"`, status: 400, contains: []string{"object"}},
		{name: "body is not JSON", path: good, body: `{"pipeline_run":`, status: 400},
		{name: "pipeline_run is a number", path: good, body: `{"pipeline_run": 5}`, status: 400, field: "pipeline_run"},
		{name: "pipeline_run is an array", path: good, body: `{"pipeline_run": [{"variables": {}}]}`, status: 400, field: "pipeline_run"},
		{name: "pipeline_run is a string", path: good, body: `{"pipeline_run": "x"}`, status: 400, field: "pipeline_run"},
		{name: "variables is a string", path: good, body: `{"pipeline_run": {"variables": "x=1"}}`, status: 400, field: "pipeline_run.variables"},
		{name: "variables is an array", path: good, body: `{"pipeline_run": {"variables": [1]}}`, status: 400, field: "pipeline_run.variables"},
		{name: "bad execution_date", path: good, body: map[string]any{"pipeline_run": map[string]any{"execution_date": "tomorrow"}}, status: 400,
			field: "pipeline_run.execution_date", contains: []string{"tomorrow"}},
		{name: "pipeline_run next to a bad event variable type", path: good, body: `{"x": [1], "pipeline_run": {"variables": 1}}`, status: 400, field: "pipeline_run.variables"},
		{name: "execution_date is a number", path: good, body: `{"pipeline_run": {"execution_date": 20260101}}`, status: 400, field: "pipeline_run.execution_date"},
		{name: "long idempotency key", path: good, headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, status: 400, field: "Idempotency-Key", contains: []string{"255"}},
		{name: "bearer trigger without token", path: fmt.Sprintf("/api/pipeline_schedules/%d/api_trigger", id), status: 401, errType: "invalid_token"},
		{name: "bearer trigger of unknown schedule", path: "/api/pipeline_schedules/999999/api_trigger", headers: []string{"Authorization", "Bearer " + token}, status: 404},
	}
	for i := range cases {
		cases[i].headers = append(cases[i].headers, noAuth...)
	}
	t.Run("refused", func(t *testing.T) { runBadInputs(t, e, cases) })

	// No refused trigger made a run.
	for _, sid := range []int64{id, inactiveID, timeSched} {
		list := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", sid), nil))
		if ids := runIDs(t, list); len(ids) != 0 || obj(list.Body, "metadata")["count"] != 0.0 {
			t.Fatalf("schedule %d has runs after refused triggers: %s", sid, list.Raw)
		}
	}

	// Mage's datetime format is honoured as the run's execution date.
	r := e.must(200, e.trigger(id, token, map[string]any{"pipeline_run": map[string]any{"execution_date": "2026-01-01 00:00:00", "variables": map[string]any{"x": 1}}}))
	pr := obj(r.Body, "pipeline_run")
	if pr["execution_date"] != "2026-01-01 00:00:00.000000+00:00" {
		t.Fatalf("execution_date = %v, want 2026-01-01 00:00:00.000000+00:00", pr["execution_date"])
	}
	done := e.waitRun(num(pr, "id"))
	if done["execution_date"] != "2026-01-01 00:00:00.000000+00:00" || done["status"] != "completed" {
		t.Fatalf("stored run = %v", done)
	}
	// An Idempotency-Key of exactly 255 characters is accepted.
	r = e.must(200, e.trigger(id, token, nil, "Idempotency-Key", strings.Repeat("k", 255)))
	e.waitRun(num(obj(r.Body, "pipeline_run"), "id"))
}

func TestListValidationAndPagination(t *testing.T) {
	t.Parallel()
	eachStore(t, testListValidationAndPagination)
}

func testListValidationAndPagination(t *testing.T, e *env) {
	id, token := e.pipelineWithSchedule("pages", block("a", noop))
	failID, failToken := e.pipelineWithSchedule("broken", block("boom", shell("exit 1")))
	var ids []int64
	for range 3 {
		pr := obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run")
		if done := e.waitRun(num(pr, "id")); done["status"] != "completed" {
			t.Fatalf("run = %v", done)
		}
		ids = append(ids, num(pr, "id"))
	}
	failed := e.waitRun(num(obj(e.must(200, e.trigger(failID, failToken, nil)).Body, "pipeline_run"), "id"))
	if failed["status"] != "failed" {
		t.Fatalf("run = %v", failed)
	}

	lists := []string{
		"/api/pipelines",
		"/api/pipeline_runs",
		"/api/block_runs",
		fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id),
		"/api/pipelines/pages/pipeline_schedules",
		fmt.Sprintf("/api/pipeline_runs/%d/block_runs", ids[0]),
	}
	params := []struct{ query, field string }{
		{"_limit=0", "_limit"},
		{"_limit=abc", "_limit"},
		{"_limit=5000", "_limit"},
		{"_limit=1001", "_limit"},
		{"_limit=-1", "_limit"},
		{"_limit=2.5", "_limit"},
		{"_offset=-1", "_offset"},
		{"_offset=x", "_offset"},
	}
	var cases []badInput
	for _, l := range lists {
		for _, p := range params {
			cases = append(cases, badInput{name: l + "?" + p.query, method: "GET", path: l + "?" + p.query, status: 400, field: p.field})
		}
	}
	cases = append(cases,
		badInput{name: "both bad", method: "GET", path: "/api/pipeline_runs?_limit=0&_offset=-1", status: 400, field: "_offset"},
		badInput{name: "bogus status", method: "GET", path: "/api/pipeline_runs?status=bogus", status: 400, field: "status"},
		badInput{name: "mage status name", method: "GET", path: "/api/pipeline_runs?status=COMPLETED", status: 400, field: "status"},
		badInput{name: "bad schedule filter", method: "GET", path: "/api/pipeline_runs?pipeline_schedule_id=abc", status: 400, field: "pipeline_schedule_id"},
		badInput{name: "zero schedule filter", method: "GET", path: "/api/pipeline_runs?pipeline_schedule_id=0", status: 400, field: "pipeline_schedule_id"},
		badInput{name: "bad run filter", method: "GET", path: "/api/block_runs?pipeline_run_id=-3", status: 400, field: "pipeline_run_id"},
	)
	for _, l := range []string{"/api/pipelines", "/api/pipeline_runs", "/api/block_runs", "/api/pipelines/pages"} {
		for _, s := range []string{"Bad_Space", "a", "-x"} {
			cases = append(cases, badInput{name: l + " space " + s, method: "GET", path: l + "?space=" + s, status: 400, field: "space"})
		}
	}
	t.Run("refused", func(t *testing.T) { runBadInputs(t, e, cases) })

	sched := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id)
	page := func(query string, wantIDs int, wantNext bool) []int64 {
		t.Helper()
		r := e.must(200, e.call("GET", sched+query, nil))
		got := runIDs(t, r)
		md := obj(r.Body, "metadata")
		if len(got) != wantIDs || md["count"] != 3.0 || md["next"] != wantNext {
			t.Fatalf("%s: %d items, metadata %v; want %d items, count 3, next %v: %s", query, len(got), md, wantIDs, wantNext, r.Raw)
		}
		return got
	}
	first := page("?_limit=2", 2, true)
	second := page("?_limit=2&_offset=2", 1, false)
	page("?_limit=3", 3, false)
	page("?_offset=3", 0, false)
	page("?_limit=2&_offset=10", 0, false)
	seen := map[int64]bool{}
	for _, x := range append(first, second...) {
		seen[x] = true
	}
	for _, x := range ids {
		if !seen[x] {
			t.Fatalf("pages %v and %v miss run %d of %v", first, second, x, ids)
		}
	}

	filters := []struct {
		query string
		want  int
	}{
		{"pipeline_uuid=pages&status=completed", 3},
		{"pipeline_uuid=pages&status=failed", 0},
		{"pipeline_uuid=broken&status=failed", 1},
		{"pipeline_uuid=broken&status=completed", 0},
		{"status=completed", 3},
		{"status=failed", 1},
		{"pipeline_uuid=pages", 3},
		{"pipeline_uuid=nothing", 0},
		{fmt.Sprintf("pipeline_schedule_id=%d", failID), 1},
		{"", 4},
	}
	for _, f := range filters {
		t.Run("filter "+f.query, func(t *testing.T) {
			t.Parallel()
			r := e.on(t).must(200, e.on(t).call("GET", "/api/pipeline_runs?"+f.query, nil))
			runs := r.Body["pipeline_runs"].([]any)
			if len(runs) != f.want || obj(r.Body, "metadata")["count"] != float64(f.want) {
				t.Fatalf("%d runs, want %d: %s", len(runs), f.want, r.Raw)
			}
			for _, x := range runs {
				pr := x.(map[string]any)
				if strings.Contains(f.query, "pipeline_uuid=pages") && pr["pipeline_uuid"] != "pages" ||
					strings.Contains(f.query, "status=completed") && pr["status"] != "completed" {
					t.Fatalf("filter %q let through %v", f.query, pr)
				}
			}
		})
	}
}
