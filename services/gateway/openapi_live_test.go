package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/natsserver"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/sqlitestore"
)

// liveAPI sends requests to a gateway over loopback and holds every request body it sends as
// valid and every answer to the OpenAPI document.
type liveAPI struct {
	t     *testing.T
	doc   *openapi3.T
	base  string
	key   string
	paths []docPath
	// seen counts the operations and statuses exercised, for the log.
	seen map[string]bool
}

type docPath struct {
	template string
	pattern  *regexp.Regexp
	literals int
}

var templateParam = regexp.MustCompile(`\\\{[A-Za-z0-9_]+\\\}`)

func newLiveAPI(t *testing.T, doc *openapi3.T, base, key string) *liveAPI {
	a := &liveAPI{t: t, doc: doc, base: base, key: key, seen: map[string]bool{}}
	for tmpl := range doc.Paths.Map() {
		re := "^" + templateParam.ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		a.paths = append(a.paths, docPath{template: tmpl, pattern: regexp.MustCompile(re), literals: strings.Count(tmpl, "/") - strings.Count(tmpl, "{")})
	}
	return a
}

// template finds the document's path for a concrete one: of several matches, the one with the
// most literal segments, as a router picks it.
func (a *liveAPI) template(path string) string {
	best := docPath{literals: -1}
	for _, p := range a.paths {
		if p.pattern.MatchString(path) && p.literals > best.literals {
			best = p
		}
	}
	if best.template == "" {
		a.t.Fatalf("no path of the document matches %s", path)
	}
	return best.template
}

type call struct {
	method, path string
	body         string
	// invalid marks a body sent to be refused, so the document must not accept it either.
	invalid bool
	header  map[string]string
	noKey   bool
	want    int
}

// do sends c, checks its status, validates the answer against the document and returns the
// decoded body.
func (a *liveAPI) do(c call) any {
	a.t.Helper()
	u, _, _ := strings.Cut(c.path, "?")
	tmpl := a.template(u)
	item := a.doc.Paths.Value(tmpl)
	op := item.GetOperation(c.method)
	if op == nil {
		a.t.Fatalf("%s %s: the document has no such operation", c.method, tmpl)
	}
	route := &routers.Route{Spec: a.doc, Path: tmpl, PathItem: item, Method: c.method, Operation: op}
	opts := &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}
	vreq := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	vreq.Header.Set("Content-Type", "application/json")
	in := &openapi3filter.RequestValidationInput{Request: vreq, Route: route, Options: opts}
	if c.body != "" && op.RequestBody != nil {
		err := openapi3filter.ValidateRequestBody(context.Background(), in, op.RequestBody.Value)
		switch {
		case err != nil && !c.invalid:
			a.t.Errorf("%s %s: the document refuses the request body %s: %v", c.method, c.path, c.body, err)
		case err == nil && c.invalid:
			a.t.Errorf("%s %s: the document accepts the invalid request body %s", c.method, c.path, c.body)
		}
	}

	req, err := http.NewRequest(c.method, a.base+c.path, strings.NewReader(c.body))
	if err != nil {
		a.t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.noKey {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode != c.want {
		a.t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, resp.StatusCode, c.want, body)
	}
	a.seen[fmt.Sprintf("%s %s %d", c.method, tmpl, resp.StatusCode)] = true

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		a.t.Errorf("%s %s: answer %d does not match the document: %v\nbody: %s", c.method, c.path, resp.StatusCode, err, body)
	}
	var v any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &v); err != nil {
			a.t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
	}
	return v
}

// at digs a value out of decoded JSON by object keys and array indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(int64(x))
	}
	return fmt.Sprint(v)
}

// TestOpenAPIMatchesLiveAnswers drives a gateway on a real store and NATS through every kind of
// answer it gives, successes and errors of both surfaces, and holds each to the document. No
// executor runs: commands answer 202, and runs are written to the store as an executor would.
func TestOpenAPIMatchesLiveAnswers(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := sqlitestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ns, err := natsserver.Start(natsserver.Config{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	bus, err := natsbus.Connect(ctx, ns.URL(), "openapi-test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	if err := bus.Setup(ctx, natsbus.StreamOptions{EventMaxAge: time.Hour, EventMaxBytes: 1 << 26}); err != nil {
		t.Fatal(err)
	}
	ciph, err := connector.NewCipher(bytes.Repeat([]byte{7}, connector.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DefaultSpace: "default", CommandWait: 20 * time.Millisecond, MaxBodyBytes: 1 << 20, ConnectorCipher: ciph, ConnectorAllowPrivate: true}
	g := New(cfg, st, bus,
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	const adminKey = "openapi-test-admin-key-0123456789"
	if _, err := g.EnsureAdminKey(ctx, adminKey); err != nil {
		t.Fatal(err)
	}
	if err := g.EnsureDefaultSpace(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	a := newLiveAPI(t, doc, "http://"+ln.Addr().String(), adminKey)

	// Public routes.
	a.do(call{method: "GET", path: "/healthz", noKey: true, want: 200})
	a.do(call{method: "GET", path: "/readyz", noKey: true, want: 200})
	a.do(call{method: "GET", path: "/api/openapi.json", noKey: true, want: 200})

	// Mage-compatible pipelines.
	pipelineBody := `{"pipeline": {"uuid": "etl", "name": "ETL", "description": "loads", "variables": {"env": "dev"},
		"retry_config": {"retries": 2, "delay": 1, "max_delay": 10, "exponential_backoff": true},
		"concurrency_config": {"block_run_limit": 2, "pipeline_run_limit": 1, "on_pipeline_run_limit_reached": "wait"},
		"blocks": [
			{"uuid": "load", "runner": {"kind": "command", "command": ["sh", "-c", "echo {{ .variables.env }}"], "env": {"A": "1"}, "timeout": 30}},
			{"uuid": "wait", "upstream_blocks": ["load"], "runner": {"kind": "sleep", "seconds": 1}, "timeout": 60},
			{"uuid": "call", "type": "custom", "upstream_blocks": ["load"], "runner": {"kind": "http", "method": "post", "url": "https://example.com/hook", "headers": {"X-A": "b"}, "body": "{}"},
			 "retry_config": {"retries": 1}},
			{"uuid": "done", "upstream_blocks": ["wait", "call"], "runner": {"kind": "noop"}}]}}`
	a.do(call{method: "POST", path: "/api/pipelines", body: pipelineBody, want: 200})
	a.do(call{method: "POST", path: "/api/pipelines", body: pipelineBody, want: 409})
	a.do(call{method: "POST", path: "/api/pipelines", body: `{"pipeline": {"name": "Second one", "blocks": []}}`, want: 200})
	// An unknown upstream block is beyond what a schema can say: only the gateway refuses it.
	a.do(call{method: "POST", path: "/api/pipelines", want: 400,
		body: `{"pipeline": {"uuid": "bad", "blocks": [{"uuid": "a", "runner": {"kind": "noop"}, "upstream_blocks": ["zz"]}]}}`})
	a.do(call{method: "POST", path: "/api/pipelines", invalid: true, want: 400,
		body: `{"pipeline": {"uuid": "bad", "blocks": [{"uuid": "a", "runner": {"kind": "rocket"}}]}}`})
	a.do(call{method: "POST", path: "/api/pipelines", invalid: true, want: 400, body: `{"pipeline": {"uuid": "-x", "blocks": "no"}}`})
	a.do(call{method: "POST", path: "/api/pipelines", invalid: true, want: 400, body: `not json`})
	a.do(call{method: "GET", path: "/api/pipelines?_limit=1&_offset=0", want: 200})
	a.do(call{method: "GET", path: "/api/pipelines?_limit=0", want: 400})
	a.do(call{method: "GET", path: "/api/pipelines", noKey: true, want: 401})
	a.do(call{method: "GET", path: "/api/pipelines?api_key=nope", noKey: true, want: 401})
	a.do(call{method: "GET", path: "/api/pipelines?space=nowhere", want: 404})
	a.do(call{method: "GET", path: "/api/pipelines/etl", want: 200})
	a.do(call{method: "GET", path: "/api/pipelines/nope", want: 404})
	a.do(call{method: "PUT", path: "/api/pipelines/etl", body: `{"pipeline": {"description": "loads more", "variables": {"env": "prod"}}}`, want: 200})
	a.do(call{method: "PUT", path: "/api/pipelines/etl", body: `{"pipeline": {"uuid": "other"}}`, want: 400})
	a.do(call{method: "DELETE", path: "/api/pipelines/second_one", want: 200})

	// Schedules.
	timeSched := a.do(call{method: "POST", path: "/api/pipelines/etl/pipeline_schedules", want: 200,
		body: `{"pipeline_schedule": {"name": "hourly", "schedule_type": "time", "schedule_interval": "@hourly", "status": "active",
			"timezone": "Europe/Paris", "sla": 600, "start_time": "2026-01-01 00:00:00", "variables": {"a": 1},
			"settings": {"catchup": true, "allow_blocks_to_fail": true, "timeout": 3600, "timeout_status": "cancelled", "pipeline_run_limit": 2}}}`})
	apiSched := a.do(call{method: "POST", path: "/api/pipelines/etl/pipeline_schedules", want: 200,
		body: `{"pipeline_schedule": {"name": "api", "status": "active"}}`})
	a.do(call{method: "POST", path: "/api/pipelines/etl/pipeline_schedules", invalid: true, want: 400,
		body: `{"pipeline_schedule": {"schedule_type": "cron"}}`})
	schedID, apiID := str(at(timeSched, "pipeline_schedule", "id")), str(at(apiSched, "pipeline_schedule", "id"))
	a.do(call{method: "GET", path: "/api/pipelines/etl/pipeline_schedules", want: 200})
	a.do(call{method: "GET", path: "/api/pipeline_schedules/" + schedID, want: 200})
	a.do(call{method: "GET", path: "/api/pipeline_schedules/0", want: 404})
	rotated := a.do(call{method: "PUT", path: "/api/pipeline_schedules/" + apiID, body: `{"pipeline_schedule": {"rotate_token": true, "description": "for CI"}}`, want: 200})
	token := str(at(rotated, "pipeline_schedule", "token"))

	// Commands: no executor answers, so every one is accepted with 202.
	accepted := a.do(call{method: "POST", path: "/api/pipeline_schedules/" + apiID + "/pipeline_runs/" + token, want: 202,
		body: `{"env": "dev", "pipeline_run": {"variables": {"day": "2026-11-23"}, "execution_date": "2026-11-23"}}`})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + apiID + "/pipeline_runs/" + token, want: 202})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + apiID + "/pipeline_runs/wrong", want: 401})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + schedID + "/pipeline_runs/" + token, want: 400})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + apiID + "/api_trigger", noKey: true, want: 202,
		header: map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "k1"}, body: `{"x": 1}`})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + apiID + "/api_trigger", noKey: true, want: 401})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + schedID + "/pipeline_runs", want: 202,
		body: `{"pipeline_run": {"variables": {"a": 2}, "event_variables": {"e": true}, "execution_date": "2026-11-23T10:00:00Z"}}`})
	a.do(call{method: "POST", path: "/api/pipeline_schedules/" + schedID + "/pipeline_runs", want: 400,
		body: `{"pipeline_run": {"execution_date": "yesterday"}}`})
	a.do(call{method: "GET", path: "/api/commands/" + str(at(accepted, "command", "id")), want: 200})

	// Runs, written as an executor would.
	now := time.Now().UTC().Truncate(time.Millisecond)
	sid := int64(at(timeSched, "pipeline_schedule", "id").(float64))
	r := &run.PipelineRun{ID: 1, Space: "default", PipelineUUID: "etl", PipelineScheduleID: sid, CommandID: "openapi-test-run",
		ExecutionDate: now, Status: run.StatusFailed, StartedAt: &now, CompletedAt: &now, Variables: map[string]any{"ds": "2026-11-23"},
		Metrics: map[string]any{"attempts": 1}, ExecutorType: "local", RunType: run.TypeScheduled, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateBlockRuns(ctx, []run.BlockRun{
		{ID: 1, Space: "default", PipelineRunID: 1, PipelineScheduleID: sid, PipelineUUID: "etl", BlockUUID: "load", Status: run.StatusCompleted,
			StartedAt: &now, CompletedAt: &now, Metrics: map[string]any{"duration_seconds": 0.1, "exit_code": 0}, Log: "dev\n", CreatedAt: now, UpdatedAt: now},
		{ID: 2, Space: "default", PipelineRunID: 1, PipelineScheduleID: sid, PipelineUUID: "etl", BlockUUID: "wait", Status: run.StatusFailed,
			StartedAt: &now, CompletedAt: &now, Metrics: map[string]any{"error": map[string]any{"message": "boom"}}, CreatedAt: now, UpdatedAt: now},
		{ID: 3, Space: "default", PipelineRunID: 1, PipelineScheduleID: sid, PipelineUUID: "etl", BlockUUID: "done", Status: run.StatusUpstreamFailed,
			CreatedAt: now, UpdatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	a.do(call{method: "GET", path: "/api/pipeline_runs/1", want: 200})
	a.do(call{method: "GET", path: "/api/pipeline_runs/2", want: 404})
	a.do(call{method: "GET", path: "/api/pipeline_runs?pipeline_uuid=etl&status=failed&pipeline_schedule_id=" + schedID, want: 200})
	a.do(call{method: "GET", path: "/api/pipeline_runs?status=bogus", want: 400})
	a.do(call{method: "GET", path: "/api/pipeline_schedules/" + schedID + "/pipeline_runs?_limit=5", want: 200})
	a.do(call{method: "GET", path: "/api/pipeline_runs/1/block_runs", want: 200})
	a.do(call{method: "GET", path: "/api/block_runs?pipeline_run_id=1&pipeline_uuid=etl", want: 200})
	a.do(call{method: "GET", path: "/api/block_runs/1/logs", want: 200})
	a.do(call{method: "GET", path: "/api/pipelines/etl/logs?pipeline_run_id=1", want: 200})
	a.do(call{method: "GET", path: "/api/pipelines/etl/logs", want: 200})
	a.do(call{method: "PUT", path: "/api/pipeline_runs/1", body: `{"pipeline_run": {"pipeline_run_action": "retry_blocks", "from_block_uuid": "wait"}}`, want: 202})
	a.do(call{method: "PUT", path: "/api/pipeline_runs/1", body: `{"pipeline_run": {"status": "cancelled"}}`, want: 202})
	a.do(call{method: "PUT", path: "/api/pipeline_runs/1", body: `{"pipeline_run": {"status": "running"}}`, invalid: true, want: 400})
	a.do(call{method: "PUT", path: "/api/pipeline_runs/1", body: `{"pipeline_run": {"status": "cancelled", "pipeline_run_action": "retry_blocks"}}`, invalid: true, want: 400})

	// Backfills.
	bf := a.do(call{method: "POST", path: "/api/pipelines/etl/backfills", want: 200,
		body: `{"backfill": {"name": "past", "start_datetime": "2026-01-01 00:00:00", "end_datetime": "2026-01-03", "interval_type": "day",
			"interval_units": "1", "variables": {"v": 1}, "settings": {"pipeline_run_limit": 1}}}`})
	draft := a.do(call{method: "POST", path: "/api/pipelines/etl/backfills", body: `{"backfill": {"name": "draft"}}`, want: 200})
	a.do(call{method: "POST", path: "/api/pipelines/etl/backfills", invalid: true, want: 400,
		body: `{"backfill": {"name": "x", "interval_type": "fortnight", "interval_units": 0}}`})
	a.do(call{method: "POST", path: "/api/pipelines/etl/backfills", invalid: true, want: 400, body: `{"backfill": {"name": "x", "status": "initial"}}`})
	bfID := str(at(bf, "backfill", "id"))
	a.do(call{method: "GET", path: "/api/backfills?pipeline_uuid=etl", want: 200})
	a.do(call{method: "GET", path: "/api/backfills/" + bfID, want: 200})
	a.do(call{method: "PUT", path: "/api/backfills/" + bfID, body: `{"backfill": {"name": "the past", "end_datetime": null, "interval_units": 2}}`, want: 200})
	a.do(call{method: "PUT", path: "/api/backfills/" + bfID, body: `{"backfill": {"status": "initial"}}`, want: 400})
	a.do(call{method: "PUT", path: "/api/backfills/" + bfID, body: `{"backfill": {"status": "initial", "end_datetime": "2026-01-05T00:00:00Z"}}`, want: 202})
	a.do(call{method: "PUT", path: "/api/backfills/" + bfID, body: `{"backfill": {"name": "late"}}`, want: 409})
	a.do(call{method: "DELETE", path: "/api/backfills/" + bfID, want: 409})
	a.do(call{method: "PUT", path: "/api/backfills/" + bfID, body: `{"backfill": {"status": "cancelled"}}`, want: 202})
	draftID := str(at(draft, "backfill", "id"))
	a.do(call{method: "PUT", path: "/api/backfills/" + draftID, body: `{"backfill": {"status": "cancelled"}}`, want: 200})
	a.do(call{method: "DELETE", path: "/api/backfills/" + draftID, want: 200})
	a.do(call{method: "DELETE", path: "/api/pipeline_schedules/" + schedID, want: 200})

	// Qarion-compatible: users, keys, spaces, members, teams, watches.
	ana := a.do(call{method: "POST", path: "/api/v1.0/users", body: `{"username": "ana", "name": "Ana"}`, want: 201})
	anaID := str(at(ana, "id"))
	a.do(call{method: "POST", path: "/api/v1.0/users", body: `{"username": "ana"}`, want: 409})
	a.do(call{method: "POST", path: "/api/v1.0/users", body: `{"username": "A", "name": 3}`, invalid: true, want: 422})
	a.do(call{method: "POST", path: "/api/v1.0/users", body: `{"username": "A!"}`, invalid: true, want: 422})
	a.do(call{method: "POST", path: "/api/v1.0/users", body: `{`, invalid: true, want: 400})
	a.do(call{method: "GET", path: "/api/v1.0/users/me", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/users/" + anaID, want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/users/usr_nobody", want: 404})
	anaKey := a.do(call{method: "POST", path: "/api/v1.0/users/" + anaID + "/api-keys", body: `{"name": "laptop"}`, want: 201})
	a.do(call{method: "POST", path: "/api/v1.0/users/" + anaID + "/api-keys", body: `{"name": "  "}`, want: 422})
	spare := a.do(call{method: "POST", path: "/api/v1.0/users/me/api-keys", body: `{"name": "spare"}`, want: 201})
	a.do(call{method: "GET", path: "/api/v1.0/users/me/api-keys?page=1&size=1", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/users/me/api-keys?size=5000", want: 422})
	a.do(call{method: "DELETE", path: "/api/v1.0/users/me/api-keys/" + str(at(spare, "id")), want: 204})
	a.do(call{method: "DELETE", path: "/api/v1.0/users/me/api-keys/key_nope", want: 404})

	a.do(call{method: "POST", path: "/api/v1.0/spaces", body: `{"slug": "data", "name": "Data"}`, want: 201})
	a.do(call{method: "POST", path: "/api/v1.0/spaces", body: `{"slug": "data", "name": "Data"}`, want: 409})
	a.do(call{method: "POST", path: "/api/v1.0/spaces", body: `{"slug": "Data!", "name": ""}`, invalid: true, want: 422})
	a.do(call{method: "GET", path: "/api/v1.0/spaces", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces", noKey: true, want: 401})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/nowhere", want: 404})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/data/members/" + anaID, body: `{"role": "viewer"}`, want: 200})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/data/members/" + anaID, body: `{"role": "owner"}`, invalid: true, want: 422})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/data/members/usr_nobody", body: `{"role": "viewer"}`, want: 404})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data/members", want: 200})

	team := a.do(call{method: "POST", path: "/api/v1.0/spaces/data/teams", body: `{"name": "Platform", "description": "runs things"}`, want: 201})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/data/teams", body: `{"name": "Platform"}`, want: 409})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/data/teams", body: `{"description": "no name"}`, invalid: true, want: 422})
	teamPath := "/api/v1.0/spaces/data/teams/" + str(at(team, "id"))
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data/teams", want: 200})
	a.do(call{method: "GET", path: teamPath, want: 200})
	a.do(call{method: "PATCH", path: teamPath, body: `{"description": "runs more things"}`, want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data/teams/team_nope", want: 404})

	a.do(call{method: "POST", path: "/api/pipelines?space=data", body: `{"pipeline": {"uuid": "sync", "blocks": [{"uuid": "a", "runner": {"kind": "noop"}}]}}`, want: 200})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/data/orchestration/pipelines/sync/watch", want: 200})
	a.do(call{method: "DELETE", path: "/api/v1.0/spaces/data/orchestration/pipelines/sync/watch", want: 200})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/data/orchestration/pipelines/nope/watch", want: 404})

	// Orchestration: pipelines with metrics, governance fields, runs, comments.
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines?provider=native&status=active&q=et&days=30&watched_only=false", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines?criticality=urgent&days=0", want: 422})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl?days=7", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines/nope", want: 404})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/criticality", body: `{"criticality": "high"}`, want: 200})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/criticality", body: `{"criticality": "urgent"}`, invalid: true, want: 422})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/team", body: `{"team_id": null}`, want: 200})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/team", body: `{}`, invalid: true, want: 422})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/trigger", body: `{"conf": {"day": "2026-11-23"}, "note": "rerun"}`, want: 202})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/trigger", want: 202})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/runs?status=failed&run_type=scheduled", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/pipelines/etl/runs?started_from=yesterday", want: 422})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/runs/1", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/runs/99", want: 404})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/runs/1/comments", want: 200})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/task-runs/2/comments", want: 200})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/default/orchestration/runs/1/comments", body: `{"body": "looking into it"}`, want: 202})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/default/orchestration/task-runs/2/comments", body: `{"body": "flaky"}`, want: 202})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/default/orchestration/runs/1/comments", body: `{"body": ""}`, invalid: true, want: 422})
	if _, err := st.CreateComment(ctx, &comment.Comment{ID: "cmt_openapi", Space: "default", TargetType: comment.TargetRun, TargetID: 1,
		PipelineUUID: "etl", PipelineRunID: 1, Body: "seen before", Author: "usr_admin", CommandID: "openapi-test-comment", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/runs/1/comments?size=10", want: 200})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/comments/cmt_openapi", body: `{"body": "seen twice"}`, want: 202})
	a.do(call{method: "DELETE", path: "/api/v1.0/spaces/default/orchestration/comments/cmt_openapi", want: 202})
	a.do(call{method: "PUT", path: "/api/v1.0/spaces/default/orchestration/comments/cmt_nope", body: `{"body": "x"}`, want: 404})
	a.do(call{method: "PATCH", path: "/api/v1.0/spaces/default/orchestration/comments/cmt_nope", body: `{"body": "x"}`, want: 404})
	a.do(call{method: "DELETE", path: "/api/v1.0/spaces/default/orchestration/comments/cmt_nope", want: 404})
	// The event relay is not started here: the route says so.
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/events?type=pipeline_run.status_changed", want: 503})
	a.do(call{method: "GET", path: "/api/v1.0/spaces/default/orchestration/events?type=nope", want: 422})

	// Connectors, to an Airflow that is not there: the test says so, the sync waits queued.
	conn := a.do(call{method: "POST", path: "/api/v1.0/spaces/data/orchestration/connectors", want: 201,
		body: `{"name": "prod airflow", "base_url": "http://127.0.0.1:1", "api_version": "auto",
			"auth": {"kind": "basic", "username": "runyard", "password": "secret"}, "sync": {"interval_seconds": 600, "lookback_days": 3, "dag_id_pattern": "^etl_"}}`})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/data/orchestration/connectors", want: 409,
		body: `{"name": "prod airflow", "base_url": "http://127.0.0.1:1", "auth": {"kind": "token", "token": "t"}}`})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/data/orchestration/connectors", invalid: true, want: 422,
		body: `{"name": "", "base_url": "http://127.0.0.1:1", "auth": {"kind": "oauth"}, "sync": {"interval_seconds": 5}}`})
	connPath := "/api/v1.0/spaces/data/orchestration/connectors/" + str(at(conn, "id"))
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data/orchestration/connectors", want: 200})
	a.do(call{method: "GET", path: connPath, want: 200})
	a.do(call{method: "PATCH", path: connPath, body: `{"auth": {"kind": "token", "token": "abc"}, "sync": {"lookback_days": 1}}`, want: 200})
	a.do(call{method: "POST", path: connPath + "/test", want: 200})
	job := a.do(call{method: "POST", path: connPath + "/sync", want: 202})
	a.do(call{method: "GET", path: connPath + "/syncs", want: 200})
	a.do(call{method: "GET", path: connPath + "/syncs/" + str(at(job, "id")), want: 200})
	a.do(call{method: "GET", path: connPath + "/syncs/sync_nope", want: 404})
	a.do(call{method: "DELETE", path: connPath, want: 204})
	a.do(call{method: "GET", path: connPath, want: 404})

	// Webhooks.
	hook := a.do(call{method: "POST", path: "/api/v1.0/spaces/data/webhooks", want: 201,
		body: `{"url": "https://example.com/hooks/runyard", "event_types": ["pipeline_run.status_changed"], "pipeline_ids": ["sync"], "description": "alerts"}`})
	a.do(call{method: "POST", path: "/api/v1.0/spaces/data/webhooks", body: `{"url": "ftp://example.com", "secret": "short"}`, invalid: true, want: 422})
	hookPath := "/api/v1.0/spaces/data/webhooks/" + str(at(hook, "id"))
	a.do(call{method: "GET", path: "/api/v1.0/spaces/data/webhooks", want: 200})
	a.do(call{method: "GET", path: hookPath, want: 200})
	a.do(call{method: "PATCH", path: hookPath, body: `{"active": false, "secret": "0123456789abcdef0123"}`, want: 200})
	a.do(call{method: "GET", path: hookPath + "/deliveries", want: 200})
	a.do(call{method: "DELETE", path: hookPath, want: 204})
	a.do(call{method: "GET", path: hookPath, want: 404})

	// A viewer may read but not write: 403 on both surfaces.
	viewer := *a
	viewer.key = str(at(anaKey, "key"))
	viewer.do(call{method: "GET", path: "/api/pipelines?space=data", want: 200})
	viewer.do(call{method: "POST", path: "/api/pipelines?space=data", body: `{"pipeline": {"uuid": "mine"}}`, want: 403})
	viewer.do(call{method: "POST", path: "/api/v1.0/spaces/data/teams", body: `{"name": "Mine"}`, want: 403})
	viewer.do(call{method: "POST", path: "/api/v1.0/spaces", body: `{"slug": "mine", "name": "Mine"}`, want: 403})
	viewer.do(call{method: "GET", path: "/api/v1.0/users/usr_admin", want: 403})
	viewer.do(call{method: "GET", path: "/api/pipelines", want: 404}) // not a member of the default space

	a.do(call{method: "DELETE", path: teamPath, want: 204})
	a.do(call{method: "DELETE", path: "/api/v1.0/spaces/data/members/" + anaID, want: 204})
	a.do(call{method: "DELETE", path: "/api/v1.0/spaces/data/members/" + anaID, want: 404})

	var notSeen []string
	for _, r := range documentedRoutes(doc) {
		if !slices.ContainsFunc(mapKeys(a.seen), func(s string) bool { return strings.HasPrefix(s, r+" ") }) {
			notSeen = append(notSeen, r)
		}
	}
	if len(notSeen) > 0 {
		t.Logf("operations this test does not exercise:\n  %s", strings.Join(notSeen, "\n  "))
	}
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
