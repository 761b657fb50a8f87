package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runyard/runyard/libs/mongostore"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/sqlitestore"
)

// seedStore is the system's own store, opened next to it, to write what only a provider sync
// writes (Airflow pipelines, their owners and states) and runs of past days.
type seedStore interface {
	CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error
	UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error)
	CreateRun(ctx context.Context, r *run.PipelineRun) error
	NextIDs(ctx context.Context, name string, n int64) (int64, error)
	Close(ctx context.Context) error
}

func (e *env) seedStore() seedStore {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		s   seedStore
		err error
	)
	if uri := e.vars["RUNYARD_MONGO_URI"]; uri != "" {
		s, err = mongostore.Open(ctx, uri, e.vars["RUNYARD_MONGO_DATABASE"])
	} else {
		s, err = sqlitestore.Open(ctx, e.vars["RUNYARD_DATA_DIR"])
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func seedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// airflowPipeline is a pipeline as the Airflow sync would mirror it.
func airflowPipeline(space, uuid, connector, state string, owners ...string) *pipeline.Pipeline {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &pipeline.Pipeline{
		Space: space, UUID: uuid, Name: strings.ToUpper(uuid), Variables: map[string]any{}, Blocks: []pipeline.Block{},
		Provider: pipeline.ProviderAirflow, ConnectorID: connector, ProviderID: uuid + "_dag", Owners: owners, Tags: []string{"finance"},
		State: state, ScheduleDescription: "0 6 * * *", ProviderMetadata: map[string]any{"fileloc": "/dags/" + uuid + ".py"},
		CreatedAt: now, UpdatedAt: now,
	}
}

// names returns the uuid of every pipeline of a list answer.
func names(r qres) []string {
	var out []string
	for _, p := range r.List {
		out = append(out, p.(map[string]any)["uuid"].(string))
	}
	return out
}

const orch = "/api/v1.0/spaces/fin/orchestration"

// orchestrationPaths are the routes of one space a caller may be refused: method, path, body.
func orchestrationPaths(slug string) [][3]any {
	base := "/api/v1.0/spaces/" + slug + "/orchestration"
	return [][3]any{
		{"GET", base + "/pipelines", nil},
		{"GET", base + "/pipelines/orders", nil},
		{"PATCH", base + "/pipelines/orders/team", map[string]any{"team_id": nil}},
		{"PATCH", base + "/pipelines/orders/criticality", map[string]any{"criticality": "low"}},
		{"POST", base + "/pipelines/orders/trigger", nil},
		{"GET", base + "/pipelines/orders/runs", nil},
		{"GET", base + "/runs/1", nil},
	}
}

func TestOrchestrationPipelines(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	viewerID, viewerKey := e.newUser("viewer")
	editorID, editorKey := e.newUser("editor")
	_, outsiderKey := e.newUser("outsider")

	// A non-member is answered exactly as for a space that does not exist.
	var missing [][]byte
	for _, p := range orchestrationPaths("fin") {
		r := e.q(p[0].(string), p[1].(string), outsiderKey, p[2])
		e.detail(r, 404, "space fin not found")
		missing = append(missing, r.Raw)
	}
	e.newSpace("fin")
	e.newSpace("other")
	e.setRole(adminKey, "fin", viewerID, "viewer")
	e.setRole(adminKey, "fin", editorID, "editor")
	for i, p := range orchestrationPaths("fin") {
		if r := e.q(p[0].(string), p[1].(string), outsiderKey, p[2]); r.Status != 404 || !bytes.Equal(r.Raw, missing[i]) {
			t.Fatalf("%s %s: a non-member got %d %s, a missing space %s", p[0], p[1], r.Status, r.Raw, missing[i])
		}
	}

	for _, uuid := range []string{"orders", "payroll"} {
		e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{
			"uuid": uuid, "name": strings.ToUpper(uuid[:1]) + uuid[1:] + " loader", "description": "Loads " + uuid, "blocks": []any{block("a", noop)}}}))
	}
	e.must(200, e.call("POST", "/api/pipelines?space=other", map[string]any{"pipeline": map[string]any{"uuid": "secret", "blocks": []any{block("a", noop)}}}))
	st := e.seedStore()
	ctx := seedCtx(t)
	for _, p := range []*pipeline.Pipeline{
		airflowPipeline("fin", "af_billing", "conn_1", pipeline.StatePaused, "airflow", "alice"),
		airflowPipeline("fin", "af_ledger", "conn_1", pipeline.StateActive, "bob"),
		airflowPipeline("fin", "af_gone", "conn_2", pipeline.StateInactive, "alice"),
		airflowPipeline("other", "af_billing", "conn_9", pipeline.StateActive, "alice"),
	} {
		if err := st.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Owners and tags of a native pipeline are set through the Mage-compatible surface.
	upd := e.must(200, e.call("PUT", "/api/pipelines/orders?space=fin", map[string]any{"pipeline": map[string]any{"owners": []any{"alice"}, "tags": []any{"finance"}}}))
	if p := upd.Body["pipeline"].(map[string]any); fmt.Sprintf("%v %v %v", p["owners"], p["tags"], p["provider"]) != "[alice] [finance] native" {
		t.Fatalf("updated pipeline = %v", p)
	}
	if r := e.call("PUT", "/api/pipelines/orders?space=fin", map[string]any{"pipeline": map[string]any{"tags": []any{""}}}); r.Status != 400 || !strings.Contains(r.Raw, "pipeline.tags[0]") {
		t.Fatalf("empty tag: %d %s", r.Status, r.Raw)
	}
	// A mirrored pipeline belongs to its provider: the Mage-compatible surface cannot change,
	// delete, schedule or backfill it.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/pipelines/af_ledger?space=fin", map[string]any{"pipeline": map[string]any{"description": "x"}}},
		{"DELETE", "/api/pipelines/af_ledger?space=fin", nil},
		{"POST", "/api/pipelines/af_ledger/pipeline_schedules?space=fin", map[string]any{"pipeline_schedule": map[string]any{"schedule_type": "api"}}},
		{"POST", "/api/pipelines/af_ledger/backfills?space=fin", map[string]any{"backfill": map[string]any{"start_datetime": "2026-01-01T00:00:00Z", "end_datetime": "2026-01-02T00:00:00Z", "interval_type": "day", "interval_units": 1}}},
	} {
		if r := e.call(c.method, c.path, c.body); r.Status != 409 || !strings.Contains(r.Raw, "mirrored from airflow connector conn_1") {
			t.Errorf("%s %s on a mirrored pipeline: %d %s", c.method, c.path, r.Status, r.Raw)
		}
	}
	team := e.qmust(201, e.q("POST", "/api/v1.0/spaces/fin/teams", editorKey, map[string]any{"name": "Finance data"})).Obj["id"].(string)
	otherTeam := e.qmust(201, e.q("POST", "/api/v1.0/spaces/other/teams", adminKey, map[string]any{"name": "Elsewhere"})).Obj["id"].(string)

	// The whole list, by uuid, with the pagination headers.
	all := e.qmust(200, e.q("GET", orch+"/pipelines", viewerKey, nil))
	if got := names(all); !slices.Equal(got, []string{"af_billing", "af_gone", "af_ledger", "orders", "payroll"}) {
		t.Fatalf("pipelines = %v", got)
	}
	if h := all.Header; h.Get("X-Total-Count") != "5" || h.Get("X-Page") != "1" || h.Get("X-Page-Size") != "100" || h.Get("X-Total-Pages") != "1" {
		t.Fatalf("pagination headers = %v", h)
	}
	billing := all.List[0].(map[string]any)
	for k, want := range map[string]any{
		"id": "af_billing", "uuid": "af_billing", "name": "AF_BILLING", "provider": "airflow", "connector_id": "conn_1",
		"provider_id": "af_billing_dag", "team_id": nil, "criticality": nil, "watched": false, "status": "paused", "schedule": "0 6 * * *",
	} {
		if billing[k] != want {
			t.Errorf("af_billing.%s = %v, want %v", k, billing[k], want)
		}
	}
	if fmt.Sprint(billing["owners"], billing["tags"], billing["provider_metadata"]) != "[airflow alice] [finance] map[fileloc:/dags/af_billing.py]" {
		t.Errorf("af_billing owners, tags, metadata = %v %v %v", billing["owners"], billing["tags"], billing["provider_metadata"])
	}
	m := obj(billing, "metrics")
	if m["days"] != 7.0 || m["total"] != 0.0 || m["success_rate"] != nil || m["mean_duration_seconds"] != nil || m["last_run"] != nil ||
		fmt.Sprint(m["runs"]) != "map[cancelled:0 completed:0 failed:0 initial:0 running:0]" {
		t.Errorf("metrics of a pipeline without runs = %v", m)
	}
	orders := all.List[3].(map[string]any)
	if orders["provider"] != "native" || orders["status"] != "active" || orders["connector_id"] != nil || orders["schedule"] != nil || orders["name"] != "Orders loader" {
		t.Errorf("native pipeline = %v", orders)
	}

	// Governance: editors set team and criticality; viewers may not.
	e.detail(e.q("PATCH", orch+"/pipelines/orders/team", viewerKey, map[string]any{"team_id": team}), 403, "editor role")
	e.detail(e.q("PATCH", orch+"/pipelines/orders/criticality", viewerKey, map[string]any{"criticality": "high"}), 403, "editor role")
	r := e.qmust(200, e.q("PATCH", orch+"/pipelines/orders/team", editorKey, map[string]any{"team_id": team}))
	if r.Obj["team_id"] != team || r.Obj["uuid"] != "orders" || obj(r.Obj, "metrics") == nil {
		t.Fatalf("team set = %s", r.Raw)
	}
	e.qmust(200, e.q("PATCH", orch+"/pipelines/af_ledger/team", editorKey, map[string]any{"team_id": team}))
	r = e.qmust(200, e.q("PATCH", orch+"/pipelines/orders/criticality", editorKey, map[string]any{"criticality": "critical"}))
	if r.Obj["criticality"] != "critical" || r.Obj["team_id"] != team {
		t.Fatalf("criticality set = %s", r.Raw)
	}
	e.qmust(200, e.q("PATCH", orch+"/pipelines/af_billing/criticality", editorKey, map[string]any{"criticality": "high"}))
	for _, tc := range []struct {
		path string
		body any
		loc  string
	}{
		{"/team", map[string]any{"team_id": "team_nope"}, `["body","team_id"]`},
		{"/team", map[string]any{"team_id": otherTeam}, `["body","team_id"]`},
		{"/team", map[string]any{"team_id": 7}, `["body","team_id"]`},
		{"/team", map[string]any{"team": team}, `["body","team_id"]`},
		{"/team", []any{}, `["body"]`},
		{"/criticality", map[string]any{"criticality": "urgent"}, `["body","criticality"]`},
		{"/criticality", map[string]any{}, `["body","criticality"]`},
		{"/criticality", map[string]any{"criticality": ""}, `["body","criticality"]`},
	} {
		if got := e.locs(e.q("PATCH", orch+"/pipelines/orders"+tc.path, editorKey, tc.body)); fmt.Sprint(got) != "["+tc.loc+"]" {
			t.Errorf("PATCH %s %v located at %v, want %s", tc.path, tc.body, got, tc.loc)
		}
	}
	e.detail(e.q("PATCH", orch+"/pipelines/ghost/team", editorKey, map[string]any{"team_id": team}), 404, "pipeline ghost not found")

	// Watching, for the viewer only.
	e.qmust(200, e.q("PUT", orch+"/pipelines/payroll/watch", viewerKey, nil))
	e.qmust(200, e.q("PUT", orch+"/pipelines/af_gone/watch", viewerKey, nil))

	// Every filter, alone and together.
	for _, tc := range []struct {
		query string
		key   string
		want  []string
	}{
		{"provider=airflow", viewerKey, []string{"af_billing", "af_gone", "af_ledger"}},
		{"provider=native", viewerKey, []string{"orders", "payroll"}},
		{"status=active", viewerKey, []string{"af_ledger", "orders", "payroll"}},
		{"status=paused", viewerKey, []string{"af_billing"}},
		{"status=inactive", viewerKey, []string{"af_gone"}},
		{"owner=alice", viewerKey, []string{"af_billing", "af_gone", "orders"}},
		{"owner=ALICE", viewerKey, nil},
		{"criticality=critical", viewerKey, []string{"orders"}},
		{"criticality=high", viewerKey, []string{"af_billing"}},
		{"criticality=low", viewerKey, nil},
		{"team_id=" + team, viewerKey, []string{"af_ledger", "orders"}},
		{"connector_id=conn_1", viewerKey, []string{"af_billing", "af_ledger"}},
		{"q=LOADER", viewerKey, []string{"orders", "payroll"}},
		{"q=ledger_dag", viewerKey, []string{"af_ledger"}},
		{"q=loads+pay", viewerKey, []string{"payroll"}},
		{"q=af_", viewerKey, []string{"af_billing", "af_gone", "af_ledger"}},
		{"watched_only=true", viewerKey, []string{"af_gone", "payroll"}},
		{"watched_only=false", viewerKey, []string{"af_billing", "af_gone", "af_ledger", "orders", "payroll"}},
		{"watched_only=true", editorKey, nil},
		{"provider=airflow&owner=alice", viewerKey, []string{"af_billing", "af_gone"}},
		{"provider=airflow&status=active&team_id=" + team, viewerKey, []string{"af_ledger"}},
		{"connector_id=conn_1&owner=bob&q=ledger", viewerKey, []string{"af_ledger"}},
		{"watched_only=true&provider=native", viewerKey, []string{"payroll"}},
		{"owner=alice&criticality=critical&team_id=" + team + "&provider=native&status=active", viewerKey, []string{"orders"}},
		{"connector_id=conn_9", viewerKey, nil}, // another space's connector
	} {
		r := e.qmust(200, e.q("GET", orch+"/pipelines?"+tc.query, tc.key, nil))
		if got := names(r); !slices.Equal(got, tc.want) || r.Header.Get("X-Total-Count") != fmt.Sprint(len(tc.want)) {
			t.Errorf("?%s: %v (total %s), want %v", tc.query, got, r.Header.Get("X-Total-Count"), tc.want)
		}
		for _, p := range r.List {
			p := p.(map[string]any)
			if want := p["uuid"] == "payroll" || p["uuid"] == "af_gone"; tc.key == viewerKey && p["watched"] != want {
				t.Errorf("?%s: %s watched = %v", tc.query, p["uuid"], p["watched"])
			}
		}
	}

	// A page of a filtered list; its links keep the filters.
	r = e.qmust(200, e.q("GET", orch+"/pipelines?provider=airflow&size=2&page=2", viewerKey, nil))
	if got := names(r); !slices.Equal(got, []string{"af_ledger"}) || r.Header.Get("X-Total-Count") != "3" || r.Header.Get("X-Total-Pages") != "2" ||
		!strings.Contains(r.Header.Get("Link"), "provider=airflow") || !strings.Contains(r.Header.Get("Link"), `rel="prev"`) {
		t.Fatalf("page 2 = %v %v", got, r.Header)
	}
	if r := e.qmust(200, e.q("GET", orch+"/pipelines?page=9", viewerKey, nil)); len(r.List) != 0 || r.Header.Get("X-Total-Count") != "5" {
		t.Fatalf("page past the end = %s", r.Raw)
	}

	// Bad values, each located at its parameter.
	for _, tc := range []struct{ query, want string }{
		{"provider=dagster", `[["query","provider"]]`},
		{"status=running", `[["query","status"]]`},
		{"criticality=urgent", `[["query","criticality"]]`},
		{"watched_only=maybe", `[["query","watched_only"]]`},
		{"days=0", `[["query","days"]]`},
		{"days=366", `[["query","days"]]`},
		{"days=week", `[["query","days"]]`},
		{"q=" + strings.Repeat("x", 256), `[["query","q"]]`},
		{"owner=" + strings.Repeat("x", 256), `[["query","owner"]]`},
		{"size=0", `[["query","size"]]`},
		{"page=0", `[["query","page"]]`},
		{"provider=x&status=y&days=-1&page=-1", `[["query","provider"] ["query","status"] ["query","days"] ["query","page"]]`},
	} {
		if got := e.locs(e.q("GET", orch+"/pipelines?"+tc.query, viewerKey, nil)); fmt.Sprint(got) != tc.want {
			t.Errorf("?%s located at %v, want %s", tc.query, got, tc.want)
		}
	}
	if got := e.locs(e.q("GET", orch+"/pipelines/orders?days=400", viewerKey, nil)); fmt.Sprint(got) != `[["query","days"]]` {
		t.Errorf("one pipeline's days located at %v", got)
	}

	// One pipeline; another space's is as missing as one that does not exist.
	one := e.qmust(200, e.q("GET", orch+"/pipelines/payroll?days=30", viewerKey, nil))
	if one.Obj["watched"] != true || obj(one.Obj, "metrics")["days"] != 30.0 || one.Obj["description"] != "Loads payroll" {
		t.Fatalf("pipeline = %s", one.Raw)
	}
	if e.qmust(200, e.q("GET", orch+"/pipelines/payroll", editorKey, nil)).Obj["watched"] != false {
		t.Fatal("watched is the caller's own")
	}
	for _, id := range []string{"secret", "ghost"} {
		for _, p := range []string{"/pipelines/" + id, "/pipelines/" + id + "/runs"} {
			r := e.q("GET", orch+p, viewerKey, nil)
			if want := fmt.Sprintf(`{"detail":"pipeline %s not found"}`, id); r.Status != 404 || string(r.Raw) != want {
				t.Errorf("GET %s = %d %s, want 404 %s", p, r.Status, r.Raw, want)
			}
		}
	}
	// The other space's af_billing is its own.
	if r := e.qmust(200, e.q("GET", "/api/v1.0/spaces/other/orchestration/pipelines/af_billing", adminKey, nil)); r.Obj["connector_id"] != "conn_9" || r.Obj["criticality"] != nil {
		t.Fatalf("other space's af_billing = %s", r.Raw)
	}
	// Clearing.
	r = e.qmust(200, e.q("PATCH", orch+"/pipelines/orders/team", editorKey, map[string]any{"team_id": nil}))
	r2 := e.qmust(200, e.q("PATCH", orch+"/pipelines/orders/criticality", editorKey, map[string]any{"criticality": nil}))
	if r.Obj["team_id"] != nil || r2.Obj["criticality"] != nil || r2.Obj["team_id"] != nil {
		t.Fatalf("cleared = %s %s", r.Raw, r2.Raw)
	}
	if got := names(e.qmust(200, e.q("GET", orch+"/pipelines?team_id="+team, viewerKey, nil))); !slices.Equal(got, []string{"af_ledger"}) {
		t.Fatalf("team after clearing = %v", got)
	}
}

// waitOrchestrationRun polls a run until it ends and returns it.
func (e *env) waitOrchestrationRun(key string, id int64) map[string]any {
	e.t.Helper()
	var out map[string]any
	poll(e.t, 30*time.Second, fmt.Sprintf("run %d to end", id), func() bool {
		out = e.qmust(200, e.q("GET", fmt.Sprintf("%s/runs/%d", orch, id), key, nil)).Obj
		return out["status"] == "completed" || out["status"] == "failed" || out["status"] == "cancelled"
	})
	return out
}

func qRunIDs(r qres) []int64 {
	var out []int64
	for _, x := range r.List {
		out = append(out, int64(x.(map[string]any)["id"].(float64)))
	}
	return out
}

func TestOrchestrationTriggerRunsAndMetrics(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	testOrchestrationTriggerRunsAndMetrics(t, e)
}

func TestOrchestrationOnMongo(t *testing.T) {
	t.Parallel()
	e := startMongo(t, nil)
	testOrchestrationTriggerRunsAndMetrics(t, e)
}

func testOrchestrationTriggerRunsAndMetrics(t *testing.T, e *env) {
	viewerID, viewerKey := e.newUser("viewer")
	editorID, editorKey := e.newUser("editor")
	e.newSpace("fin")
	e.newSpace("other")
	e.setRole(adminKey, "fin", viewerID, "viewer")
	e.setRole(adminKey, "fin", editorID, "editor")
	e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{"uuid": "etl", "blocks": []any{
		block("extract", noop), block("load", shell(`test "$RUNYARD_VAR_TARGET" = warehouse`), "extract")}}}))
	e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{"uuid": "broken", "blocks": []any{block("a", shell("exit 3"))}}}))
	e.must(200, e.call("POST", "/api/pipelines?space=other", map[string]any{"pipeline": map[string]any{"uuid": "etl", "blocks": []any{block("a", noop)}}}))
	st := e.seedStore()
	ctx := seedCtx(t)
	for _, p := range []*pipeline.Pipeline{
		airflowPipeline("fin", "af_billing", "conn_1", pipeline.StateActive),
		airflowPipeline("fin", "af_gone", "conn_1", pipeline.StateInactive),
	} {
		if err := st.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// Triggering needs an editor; the run comes back in the orchestration shape.
	trigger := orch + "/pipelines/etl/trigger"
	e.detail(e.q("POST", trigger, viewerKey, nil), 403, "editor role")
	body := map[string]any{"conf": map[string]any{"target": "warehouse"}, "note": "rerun after the fix"}
	first := e.qmust(201, e.q("POST", trigger, editorKey, body)).Obj
	if first["pipeline_id"] != "etl" || first["run_type"] != "manual" || first["provider"] != "native" || first["note"] != "rerun after the fix" ||
		obj(first, "conf")["target"] != "warehouse" || first["provider_run_id"] != nil || first["connector_id"] != nil {
		t.Fatalf("triggered run = %v", first)
	}
	tasks, _ := first["task_runs"].([]any)
	if len(tasks) != 2 || tasks[0].(map[string]any)["task_id"] != "extract" || tasks[1].(map[string]any)["task_id"] != "load" {
		t.Fatalf("task runs of the triggered run = %v", first["task_runs"])
	}
	firstID := int64(first["id"].(float64))
	done := e.waitOrchestrationRun(viewerKey, firstID)
	if done["status"] != "completed" || done["ended_at"] == nil || done["duration_seconds"] == nil {
		t.Fatalf("run = %v", done)
	}
	for _, x := range done["task_runs"].([]any) {
		tr := x.(map[string]any)
		if tr["status"] != "completed" || tr["try_number"] != 1.0 || tr["map_index"] != nil || tr["provider_task_id"] != nil ||
			tr["log_url"] != fmt.Sprintf("/api/block_runs/%d/logs", int64(tr["id"].(float64))) || tr["run_id"] != float64(firstID) ||
			tr["name"] != tr["task_id"] || tr["started_at"] == nil || tr["ended_at"] == nil || tr["duration_seconds"] == nil {
			t.Errorf("task run = %v", tr)
		}
	}
	// The same Idempotency-Key is the same run.
	again := e.qmust(201, e.q("POST", trigger, editorKey, body))
	e.waitOrchestrationRun(viewerKey, int64(again.Obj["id"].(float64)))
	keyed := func() qres {
		return e.qmust(201, e.q("POST", trigger, editorKey, body, "Idempotency-Key", "deploy-42"))
	}
	k1 := keyed()
	k2 := keyed()
	if k1.Obj["id"] != k2.Obj["id"] || k1.Obj["id"] == again.Obj["id"] {
		t.Fatalf("idempotent triggers made runs %v and %v", k1.Obj["id"], k2.Obj["id"])
	}
	e.waitOrchestrationRun(viewerKey, int64(k1.Obj["id"].(float64)))
	// A run without the variable its block tests fails; no body at all is fine.
	failed := e.qmust(201, e.q("POST", trigger, editorKey, nil)).Obj
	if failed["note"] != nil || fmt.Sprint(obj(failed, "conf")["execution_partition"]) == "" {
		t.Fatalf("run without a body = %v", failed)
	}
	if r := e.waitOrchestrationRun(viewerKey, int64(failed["id"].(float64))); r["status"] != "failed" {
		t.Fatalf("run without target = %v", r)
	}
	brokenRun := e.qmust(201, e.q("POST", orch+"/pipelines/broken/trigger", editorKey, map[string]any{})).Obj
	e.waitOrchestrationRun(viewerKey, int64(brokenRun["id"].(float64)))

	// Bodies and pipelines that cannot be triggered.
	for _, tc := range []struct {
		body any
		loc  string
	}{
		{map[string]any{"conf": []any{1}}, `["body","conf"]`},
		{map[string]any{"note": 5}, `["body","note"]`},
		{map[string]any{"note": strings.Repeat("n", 4001)}, `["body","note"]`},
	} {
		if got := e.locs(e.q("POST", trigger, editorKey, tc.body)); fmt.Sprint(got) != "["+tc.loc+"]" {
			t.Errorf("trigger body %v located at %v, want %s", tc.body, got, tc.loc)
		}
	}
	e.detail(e.q("POST", orch+"/pipelines/af_billing/trigger", editorKey, nil), 409, "mirrored by connector conn_1, which no longer exists")
	e.detail(e.q("POST", orch+"/pipelines/af_gone/trigger", editorKey, nil), 409, "inactive")
	e.detail(e.q("POST", orch+"/pipelines/ghost/trigger", editorKey, nil), 404, "pipeline ghost not found")

	// A run of the Mage-compatible API's api schedule is of run type api.
	sid, token := e.pipelineScheduleIn("fin", "etl")
	apiRun := obj(e.must(200, e.trigger(sid, token, map[string]any{"pipeline_run": map[string]any{"variables": map[string]any{"target": "warehouse"}}})).Body, "pipeline_run")
	apiID := num(apiRun, "id")
	e.waitOrchestrationRun(viewerKey, apiID)

	// The runs of a pipeline, newest first, filtered.
	runs := orch + "/pipelines/etl/runs"
	all := e.qmust(200, e.q("GET", runs, viewerKey, nil))
	want := []int64{apiID, int64(failed["id"].(float64)), int64(k1.Obj["id"].(float64)), int64(again.Obj["id"].(float64)), firstID}
	if got := qRunIDs(all); fmt.Sprint(got) != fmt.Sprint(want) || all.Header.Get("X-Total-Count") != "5" {
		t.Fatalf("runs = %v, want %v", got, want)
	}
	if tr := all.List[0].(map[string]any)["task_runs"]; tr != nil {
		t.Fatalf("a run list carries task runs: %v", tr)
	}
	first2 := e.qmust(200, e.q("GET", fmt.Sprintf("%s/runs/%d", orch, firstID), viewerKey, nil)).Obj
	startedFirst := first2["started_at"].(string)
	startedAPI := e.qmust(200, e.q("GET", fmt.Sprintf("%s/runs/%d", orch, apiID), viewerKey, nil)).Obj["started_at"].(string)
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"status=failed", []int64{int64(failed["id"].(float64))}},
		{"status=completed&run_type=manual", []int64{int64(k1.Obj["id"].(float64)), int64(again.Obj["id"].(float64)), firstID}},
		{"run_type=api", []int64{apiID}},
		{"run_type=backfill", nil},
		{"started_from=" + url.QueryEscape(startedAPI), []int64{apiID}},
		{"started_to=" + url.QueryEscape(startedFirst), []int64{firstID}},
		{"started_from=" + url.QueryEscape(startedFirst) + "&started_to=" + url.QueryEscape(startedAPI), want},
		{"started_from=" + url.QueryEscape(startedFirst) + "&status=failed&run_type=manual", []int64{int64(failed["id"].(float64))}},
		{"started_from=2020-01-01T00:00:00Z&started_to=2020-12-31T23:59:59Z", nil},
		{"size=2&page=2", want[2:4]},
	} {
		r := e.qmust(200, e.q("GET", runs+"?"+tc.query, viewerKey, nil))
		if got := qRunIDs(r); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("runs?%s = %v, want %v", tc.query, got, tc.want)
		}
		if tc.query == "size=2&page=2" && (r.Header.Get("X-Total-Count") != "5" || r.Header.Get("X-Total-Pages") != "3" || r.Header.Get("X-Page-Size") != "2") {
			t.Errorf("run page headers = %v", r.Header)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{"status=queued", `[["query","status"]]`},
		{"run_type=cron", `[["query","run_type"]]`},
		{"started_from=yesterday", `[["query","started_from"]]`},
		{"started_to=2026-01-01", `[["query","started_to"]]`},
		{"started_from=2026-02-01T00:00:00Z&started_to=2026-01-01T00:00:00Z", `[["query","started_from"]]`},
		{"status=x&run_type=y&size=5000", `[["query","status"] ["query","run_type"] ["query","size"]]`},
	} {
		if got := e.locs(e.q("GET", runs+"?"+tc.query, viewerKey, nil)); fmt.Sprint(got) != tc.want {
			t.Errorf("runs?%s located at %v, want %s", tc.query, got, tc.want)
		}
	}

	// A run of another space is as missing as a run that does not exist.
	otherRun := e.qmust(201, e.q("POST", "/api/v1.0/spaces/other/orchestration/pipelines/etl/trigger", adminKey, nil)).Obj
	for _, id := range []string{fmt.Sprint(int64(otherRun["id"].(float64))), "99999999", "abc"} {
		r := e.q("GET", orch+"/runs/"+id, viewerKey, nil)
		if want := fmt.Sprintf(`{"detail":"run %s not found"}`, id); r.Status != 404 || string(r.Raw) != want {
			t.Errorf("GET runs/%s = %d %s, want 404 %s", id, r.Status, r.Raw, want)
		}
	}

	// Metrics follow the runs: 4 completed (3 manual, 1 api) and 1 failed in the window.
	m := obj(e.qmust(200, e.q("GET", orch+"/pipelines/etl", viewerKey, nil)).Obj, "metrics")
	if m["total"] != 5.0 || obj(m, "runs")["completed"] != 4.0 || obj(m, "runs")["failed"] != 1.0 || m["success_rate"] != 0.8 ||
		m["mean_duration_seconds"] == nil || obj(m, "last_run")["id"] != float64(apiID) || obj(m, "last_run")["status"] != "completed" {
		t.Fatalf("metrics of etl = %v", m)
	}
	bm := obj(e.qmust(200, e.q("GET", orch+"/pipelines/broken", viewerKey, nil)).Obj, "metrics")
	if bm["total"] != 1.0 || bm["success_rate"] != 0.0 || bm["mean_duration_seconds"] != nil {
		t.Fatalf("metrics of broken = %v", bm)
	}

	// Runs of past days count only in a window that reaches them; durations are exact.
	e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{"uuid": "history", "blocks": []any{}}}))
	last, err := st.NextIDs(ctx, "pipeline_runs", 3)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(time.Millisecond)
	for i, r := range []struct {
		daysAgo int
		status  run.Status
		seconds int
	}{{10, run.StatusCompleted, 60}, {0, run.StatusCompleted, 30}, {3, run.StatusCancelled, 0}} {
		at := today.AddDate(0, 0, -r.daysAgo)
		end := at.Add(time.Duration(r.seconds) * time.Second)
		if err := st.CreateRun(ctx, &run.PipelineRun{
			ID: last - 2 + int64(i), Space: "fin", PipelineUUID: "history", CommandID: fmt.Sprint("seed-", i), ExecutionDate: at,
			Status: r.status, StartedAt: &at, CompletedAt: &end, RunType: run.TypeScheduled, CreatedAt: at, UpdatedAt: at,
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		days    string
		total   float64
		rate    float64
		meanSec float64
	}{{"", 2, 0.5, 30}, {"?days=30", 3, 2.0 / 3.0, 45}, {"?days=1", 1, 1, 30}} {
		r := e.qmust(200, e.q("GET", orch+"/pipelines/history"+tc.days, viewerKey, nil))
		m := obj(r.Obj, "metrics")
		if m["total"] != tc.total || m["success_rate"] != tc.rate || m["mean_duration_seconds"] != tc.meanSec || obj(m, "last_run")["id"] != float64(last-1) {
			t.Errorf("history%s metrics = %v, want total %v, rate %v, mean %v", tc.days, m, tc.total, tc.rate, tc.meanSec)
		}
	}
	// The list carries the same metrics as the detail.
	list := e.qmust(200, e.q("GET", orch+"/pipelines?q=history&days=30", viewerKey, nil))
	if len(list.List) != 1 || obj(list.List[0].(map[string]any), "metrics")["total"] != 3.0 {
		t.Fatalf("history in the list = %s", list.Raw)
	}
	js, _ := json.Marshal(obj(list.List[0].(map[string]any), "metrics")["runs"])
	if string(js) != `{"cancelled":1,"completed":2,"failed":0,"initial":0,"running":0}` {
		t.Fatalf("runs by status = %s", js)
	}
}

// pipelineScheduleIn creates an active api schedule of a pipeline of space and returns its id
// and token.
func (e *env) pipelineScheduleIn(space, uuid string) (int64, string) {
	e.t.Helper()
	r := e.must(200, e.call("POST", "/api/pipelines/"+uuid+"/pipeline_schedules?space="+space,
		map[string]any{"pipeline_schedule": map[string]any{"name": uuid + " api", "schedule_type": "api", "status": "active"}}))
	s := obj(r.Body, "pipeline_schedule")
	return num(s, "id"), s["token"].(string)
}

// TestOrchestrationTriggerAnswersLate: a trigger whose run the executor has not reported
// within the command wait is answered 202 with the command to poll; the same Idempotency-Key
// then answers 201 with that command's run.
func TestOrchestrationTriggerAnswersLate(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"RUNYARD_COMMAND_WAIT": "1ns"})
	e.newSpace("fin")
	e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{"uuid": "etl", "blocks": []any{block("a", noop)}}}))
	late := e.q("POST", orch+"/pipelines/etl/trigger", adminKey, map[string]any{"note": "late"}, "Idempotency-Key", "k-1")
	cmd := obj(late.Obj, "command")
	if late.Status != 202 || cmd["status"] != "pending" || cmd["url"] != "/api/commands/"+fmt.Sprint(cmd["id"]) {
		t.Fatalf("late trigger = %d %s", late.Status, late.Raw)
	}
	var runID float64
	poll(t, 20*time.Second, "the command to succeed", func() bool {
		c := obj(e.must(200, e.call("GET", cmd["url"].(string), nil)).Body, "command")
		if c["status"] == "succeeded" {
			runID = obj(c, "pipeline_run")["id"].(float64)
		}
		return c["status"] == "succeeded"
	})
	again := e.q("POST", orch+"/pipelines/etl/trigger", adminKey, map[string]any{"note": "late"}, "Idempotency-Key", "k-1")
	if again.Status != 201 || again.Obj["id"] != runID || again.Obj["note"] != "late" {
		t.Fatalf("the same key after the run was made = %d %s, want run %v", again.Status, again.Raw, runID)
	}
	if r := e.q("POST", orch+"/pipelines/etl/trigger", adminKey, nil, "Idempotency-Key", strings.Repeat("k", 256)); r.Status != 400 ||
		!strings.Contains(fmt.Sprint(r.Obj["detail"]), "Idempotency-Key") {
		t.Fatalf("overlong key = %d %s", r.Status, r.Raw)
	}
}

// TestOrchestrationPipelineUpdatedEvents: every change of a pipeline's definition or
// governance is announced as pipeline.updated on the pipeline's subject, and deleting a team
// clears it from the pipelines it owned, with an event each.
func TestOrchestrationPipelineUpdatedEvents(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	editorID, editorKey := e.newUser("editor")
	e.newSpace("fin")
	e.setRole(adminKey, "fin", editorID, "editor")

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(natsbus.PipelineUpdatedSubject("fin", "etl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func(what string) map[string]any {
		t.Helper()
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no pipeline.updated after %s: %v", what, err)
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev["type"] != "pipeline.updated" || ev["space"] != "fin" || obj(ev, "pipeline")["uuid"] != "etl" {
			t.Fatalf("after %s: event %v", what, ev)
		}
		return obj(ev, "pipeline")
	}

	e.must(200, e.call("POST", "/api/pipelines?space=fin", map[string]any{"pipeline": map[string]any{"uuid": "etl", "blocks": []any{block("a", noop)}}}))
	next("create")
	e.must(200, e.call("PUT", "/api/pipelines/etl?space=fin", map[string]any{"pipeline": map[string]any{"description": "nightly"}}))
	if p := next("update"); p["description"] != "nightly" {
		t.Fatalf("updated pipeline in the event = %v", p)
	}
	orch := "/api/v1.0/spaces/fin/orchestration/pipelines/etl"
	e.qmust(200, e.q("PATCH", orch+"/criticality", editorKey, map[string]any{"criticality": "high"}))
	if p := next("criticality"); p["criticality"] != "high" {
		t.Fatalf("pipeline in the criticality event = %v", p)
	}
	team := e.qmust(201, e.q("POST", "/api/v1.0/spaces/fin/teams", editorKey, map[string]any{"name": "Data"})).Obj["id"].(string)
	e.qmust(200, e.q("PATCH", orch+"/team", editorKey, map[string]any{"team_id": team}))
	if p := next("team"); p["team_id"] != team {
		t.Fatalf("pipeline in the team event = %v", p)
	}

	// The team goes: the pipeline no longer names it.
	e.qmust(204, e.q("DELETE", "/api/v1.0/spaces/fin/teams/"+team, editorKey, nil))
	if p := next("team deletion"); p["team_id"] != nil {
		t.Fatalf("pipeline after its team was deleted = %v", p)
	}
	if got := e.qmust(200, e.q("GET", orch, editorKey, nil)).Obj["team_id"]; got != nil {
		t.Fatalf("team_id after the team was deleted = %v", got)
	}
}
