package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow/airflowtest"
	"github.com/runyard/runyard/libs/config"
	"github.com/runyard/runyard/libs/testenv"
	"github.com/runyard/runyard/services/standalone/system"
)

// lockedBuffer collects a system's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged runs a system of mode whose every log line, down to debug, goes to the
// returned buffer.
func startLogged(t *testing.T, mode config.Mode, extra map[string]string) (*env, *lockedBuffer) {
	t.Helper()
	natsURL := testenv.NATS(t)
	vars := map[string]string{
		"RUNYARD_HTTP_ADDR":               "127.0.0.1:0",
		"RUNYARD_DATA_DIR":                t.TempDir(),
		"RUNYARD_NATS_URL":                natsURL,
		"RUNYARD_ADMIN_API_KEY":           adminKey,
		"RUNYARD_LOG_LEVEL":               "debug",
		"RUNYARD_CONNECTOR_ALLOW_PRIVATE": "true",
		"RUNYARD_SYNC_RATE_LIMIT":         "1000",
	}
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := config.Load(mode, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	cfg.Log(log)
	sys, err := system.Start(ctx, mode, cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sys.Stop(ctx)
	})
	return &env{t: t, base: "http://" + sys.HTTPAddr().String(), natsURL: natsURL, vars: vars}, logs
}

const (
	airflowUser     = "af-operator"
	airflowPassword = "pw-Zq8Xr2-never-shown"
	airflowToken    = "tok-Hh31Lm-never-shown"
	connectorsPath  = "/api/v1.0/spaces/default/orchestration/connectors"
	pipelinesPath   = "/api/v1.0/spaces/default/orchestration/pipelines"
)

// airflowProxy serves a fake Airflow through a reverse proxy that answers the triggers of
// DAG unprocessable as Airflow 3 answers a body its schema refuses, which the fake itself
// does only for malformed bodies.
func airflowProxy(t *testing.T, fake *airflowtest.Server, unprocessable string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/dags/"+unprocessable+"/dagRuns") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"detail":[{"type":"extra_forbidden","loc":["body","conf","size"],"msg":"Extra inputs are not permitted","input":3}]}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (e *env) waitSync(key, connID, jobID string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.qmust(200, e.q("GET", connectorsPath+"/"+connID+"/syncs/"+jobID, key, nil))
		switch r.Obj["status"] {
		case "completed":
			return r.Obj
		case "failed":
			e.t.Fatalf("sync failed: %s", r.Raw)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sync still %v: %s", r.Obj["status"], r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAirflowConnectorSyncAndTrigger drives the connector routes end to end on both API
// versions: create, test, sync, trigger with Airflow's errors passed through, and no secret
// in any answer or log line.
func TestAirflowConnectorSyncAndTrigger(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			e, logs := startLogged(t, config.ModeStandalone, nil)
			fake := airflowtest.NewServer(airflowtest.Config{APIVersion: version, DAGs: 4, RunsPerDAG: 2, Username: airflowUser, Password: airflowPassword, Token: airflowToken})
			t.Cleanup(fake.Close)
			ids := fake.DAGIDs()
			proxy := airflowProxy(t, fake, ids[2])
			var answers []string
			keep := func(r qres) qres { answers = append(answers, string(r.Raw)); return r }

			kind := "basic"
			if version == "v2" {
				kind = "password"
			}
			created := keep(e.qmust(201, e.q("POST", connectorsPath, adminKey, map[string]any{
				"name": "prod airflow", "type": "airflow", "base_url": proxy.URL + "/", "api_version": "auto",
				"auth": map[string]any{"kind": kind, "username": airflowUser, "password": airflowPassword},
				"sync": map[string]any{"interval_seconds": 3600, "lookback_days": 30},
			})))
			id := created.Obj["id"].(string)
			auth := obj(created.Obj, "auth")
			if auth["kind"] != kind || auth["username"] != airflowUser || auth["has_password"] != true || auth["has_token"] != false || created.Obj["base_url"] != proxy.URL {
				t.Fatalf("created connector: %s", created.Raw)
			}
			keep(e.qmust(200, e.q("GET", connectorsPath, adminKey, nil)))
			keep(e.qmust(200, e.q("GET", connectorsPath+"/"+id, adminKey, nil)))

			test := keep(e.qmust(200, e.q("POST", connectorsPath+"/"+id+"/test", adminKey, nil)))
			if test.Obj["ok"] != true || test.Obj["api_version"] != version || test.Obj["airflow_version"] == nil || test.Obj["latency_ms"] == nil {
				t.Fatalf("connection test: %s", test.Raw)
			}

			job := keep(e.qmust(202, e.q("POST", connectorsPath+"/"+id+"/sync", adminKey, nil)))
			if job.Obj["status"] != "queued" || job.Obj["connector_id"] != id {
				t.Fatalf("sync answer: %s", job.Raw)
			}
			done := e.waitSync(adminKey, id, job.Obj["id"].(string))
			dags, runs, tis := fake.Counts()
			if num(obj(done, "dags"), "created") != int64(dags) || num(obj(done, "runs"), "created") != int64(runs) || num(obj(done, "task_runs"), "created") != int64(tis) {
				t.Fatalf("sync job: %v; the fake holds %d dags, %d runs, %d task instances", done, dags, runs, tis)
			}
			list := keep(e.qmust(200, e.q("GET", connectorsPath+"/"+id+"/syncs", adminKey, nil)))
			if len(list.List) != 1 || list.Header.Get("X-Total-Count") != "1" {
				t.Fatalf("sync jobs: %s", list.Raw)
			}
			conn := keep(e.qmust(200, e.q("GET", connectorsPath+"/"+id, adminKey, nil)))
			if ls := obj(conn.Obj, "last_sync"); ls["status"] != "completed" || conn.Obj["detected_version"] != version {
				t.Fatalf("connector after its sync: %s", conn.Raw)
			}
			ps := e.qmust(200, e.q("GET", pipelinesPath+"?provider=airflow&connector_id="+id, adminKey, nil))
			if len(ps.List) != dags {
				t.Fatalf("%d airflow pipelines, want %d", len(ps.List), dags)
			}
			uuidOf := map[string]string{}
			for _, p := range ps.List {
				m := p.(map[string]any)
				uuidOf[m["provider_id"].(string)] = m["id"].(string)
			}
			trigger := func(dag string, body any) qres {
				return keep(e.q("POST", pipelinesPath+"/"+uuidOf[dag]+"/trigger", adminKey, body))
			}

			// Success: 201 with the stored run, readable at once.
			r := e.qmust(201, trigger(ids[0], map[string]any{"conf": map[string]any{"size": 3}, "note": "from runyard"}))
			if r.Obj["provider"] != "airflow" || r.Obj["connector_id"] != id || !strings.HasPrefix(r.Obj["provider_run_id"].(string), "runyard__") ||
				obj(r.Obj, "conf")["size"] != float64(3) || r.Obj["note"] != "from runyard" || r.Obj["status"] != "initial" {
				t.Fatalf("triggered run: %s", r.Raw)
			}
			got := e.qmust(200, e.q("GET", fmt.Sprintf("/api/v1.0/spaces/default/orchestration/runs/%d", num(r.Obj, "id")), adminKey, nil))
			if got.Obj["provider_run_id"] != r.Obj["provider_run_id"] {
				t.Fatalf("stored run: %s", got.Raw)
			}
			// The caller's own run id, then the same again: Airflow's 409.
			r = e.qmust(201, trigger(ids[0], map[string]any{"dag_run_id": "nightly_fix_1", "logical_date": "2020-01-01T00:00:00Z"}))
			if r.Obj["provider_run_id"] != "nightly_fix_1" {
				t.Fatalf("run with the caller's id: %s", r.Raw)
			}
			e.detail(trigger(ids[0], map[string]any{"dag_run_id": "nightly_fix_1"}), 409, "Airflow")
			// Airflow's 400 (import errors) and 404 (DAG gone) keep their status.
			if err := fake.SetImportErrors(ids[1], true); err != nil {
				t.Fatal(err)
			}
			e.detail(trigger(ids[1], nil), 400, "import errors")
			if err := fake.DeleteDAG(ids[3]); err != nil {
				t.Fatal(err)
			}
			e.detail(trigger(ids[3], nil), 404, "not found")
			e.detail(trigger(ids[2], map[string]any{"conf": map[string]any{"size": 3}}), 422, "Extra inputs are not permitted")
			// Ours to refuse, before Airflow: 422 naming the field.
			if got := e.locs(trigger(ids[0], map[string]any{"dag_run_id": "has space", "logical_date": "yesterday"})); fmt.Sprint(got) != `[["body","logical_date"] ["body","dag_run_id"]]` {
				t.Fatalf("locs %v", got)
			}
			// Airflow unreachable: 502.
			proxy.Close()
			e.detail(trigger(ids[0], nil), 502, "could not be reached")

			for _, a := range answers {
				if strings.Contains(a, airflowPassword) || strings.Contains(a, airflowToken) || strings.Contains(a, "secret_sealed") {
					t.Fatalf("an answer shows a credential: %s", a)
				}
			}
			out := logs.String()
			if !strings.Contains(out, "sync finished") {
				t.Fatalf("the log capture holds no sync: %.2000s", out)
			}
			for _, secret := range []string{airflowPassword, airflowToken} {
				if strings.Contains(out, secret) {
					i := strings.Index(out, secret)
					t.Fatalf("the log shows a credential: …%s…", out[max(0, i-300):min(len(out), i+100)])
				}
			}
		})
	}
}

// TestAirflowConnectorRoutes holds the connector routes to their roles and their input
// rules, and keeps credentials write-only through updates.
func TestAirflowConnectorRoutes(t *testing.T) {
	t.Parallel()
	e, logs := startLogged(t, config.ModeStandalone, nil)
	fake := airflowtest.NewServer(airflowtest.Config{APIVersion: "v2", DAGs: 2, RunsPerDAG: 1, Token: airflowToken})
	t.Cleanup(fake.Close)
	adminID, spaceAdmin := e.newUser("conn-admin")
	editorID, editor := e.newUser("conn-editor")
	_, outsider := e.newUser("conn-outsider")
	e.newSpace("ops")
	e.setRole(adminKey, "ops", adminID, "admin")
	e.setRole(adminKey, "ops", editorID, "editor")
	base := "/api/v1.0/spaces/ops/orchestration/connectors"
	body := map[string]any{"name": "a", "base_url": fake.URL, "auth": map[string]any{"kind": "token", "token": airflowToken}}

	// An editor cannot manage connectors; a non-member sees the space as missing, exactly as
	// a missing space.
	e.detail(e.q("POST", base, editor, body), 403, "")
	missing := e.q("POST", "/api/v1.0/spaces/nope/orchestration/connectors", outsider, body)
	hidden := e.q("POST", base, outsider, body)
	if hidden.Status != 404 || strings.ReplaceAll(string(hidden.Raw), "ops", "nope") != string(missing.Raw) {
		t.Fatalf("non-member: %d %s; missing space: %s", hidden.Status, hidden.Raw, missing.Raw)
	}
	e.qmust(404, e.q("GET", base, outsider, nil))

	c := e.qmust(201, e.q("POST", base, spaceAdmin, body))
	id := c.Obj["id"].(string)
	if a := obj(c.Obj, "auth"); a["has_token"] != true || a["has_password"] != false || a["username"] != nil {
		t.Fatalf("token connector: %s", c.Raw)
	}
	for _, call := range []struct{ method, path string }{
		{"PATCH", base + "/" + id}, {"DELETE", base + "/" + id}, {"POST", base + "/" + id + "/test"}, {"POST", base + "/" + id + "/sync"},
	} {
		e.detail(e.q(call.method, call.path, editor, map[string]any{"name": "b"}), 403, "")
		e.qmust(404, e.q(call.method, call.path, outsider, map[string]any{"name": "b"}))
	}
	// Members read them, without secrets.
	e.qmust(200, e.q("GET", base+"/"+id, editor, nil))
	e.qmust(200, e.q("GET", base+"/"+id+"/syncs", editor, nil))
	e.qmust(404, e.q("GET", base+"/con_missing", editor, nil))
	e.qmust(404, e.q("GET", base+"/"+id+"/syncs/sync_missing", editor, nil))

	// Bad bodies: 422 naming each field.
	bad := e.q("POST", base, spaceAdmin, map[string]any{
		"name": "", "type": "luigi", "base_url": "ftp://x", "api_version": "v9",
		"auth": map[string]any{"kind": "basic"}, "sync": map[string]any{"interval_seconds": 1, "lookback_days": 0, "dag_id_pattern": "("},
	})
	want := []string{`["body","name"]`, `["body","type"]`, `["body","base_url"]`, `["body","api_version"]`, `["body","auth","username"]`,
		`["body","auth","password"]`, `["body","sync","interval_seconds"]`, `["body","sync","dag_id_pattern"]`}
	got := strings.Join(e.locs(bad), " ")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("locs %s lack %s", got, w)
		}
	}
	if got := e.locs(e.q("POST", base, spaceAdmin, map[string]any{"name": "x", "base_url": fake.URL, "auth": map[string]any{"kind": 5}})); fmt.Sprint(got) != `[["body","auth","kind"]]` {
		t.Fatalf("locs %v", got)
	}
	if got := e.locs(e.q("POST", base, spaceAdmin, map[string]any{"nmae": "x"})); fmt.Sprint(got) != `[["body","nmae"]]` {
		t.Fatalf("locs %v", got)
	}
	if got := e.locs(e.q("POST", base, spaceAdmin, map[string]any{"name": "m", "base_url": "http://169.254.169.254", "auth": map[string]any{"kind": "token", "token": "t"}})); fmt.Sprint(got) != `[["body","base_url"]]` {
		t.Fatalf("metadata address: locs %v", got)
	}
	e.detail(e.q("POST", base, spaceAdmin, body), 409, "already has a connector")

	// Switching to password auth needs a password: the token is not reused as one.
	if got := e.locs(e.q("PATCH", base+"/"+id, spaceAdmin, map[string]any{"auth": map[string]any{"kind": "password", "username": "u"}})); fmt.Sprint(got) != `[["body","auth","password"]]` {
		t.Fatalf("locs %v", got)
	}
	p := e.qmust(200, e.q("PATCH", base+"/"+id, spaceAdmin, map[string]any{"name": "renamed", "sync": map[string]any{"dag_id_pattern": "^team_"}}))
	if p.Obj["name"] != "renamed" || obj(p.Obj, "auth")["has_token"] != true || obj(p.Obj, "sync")["dag_id_pattern"] != "^team_" {
		t.Fatalf("patched: %s", p.Raw)
	}
	test := e.qmust(200, e.q("POST", base+"/"+id+"/test", spaceAdmin, nil))
	if test.Obj["ok"] != true || test.Obj["api_version"] != "v2" {
		t.Fatalf("test with the kept token: %s", test.Raw)
	}
	e.qmust(202, e.q("POST", base+"/"+id+"/sync", spaceAdmin, nil))
	e.qmust(204, e.q("DELETE", base+"/"+id, spaceAdmin, nil))
	e.qmust(404, e.q("GET", base+"/"+id, spaceAdmin, nil))
	if strings.Contains(logs.String(), airflowToken) {
		t.Fatal("the log shows the token")
	}
}

// TestAirflowConnectorsNeedASecretKey: a gateway without RUNYARD_SECRET_KEY refuses to store
// or use credentials, with a 503 that says why.
func TestAirflowConnectorsNeedASecretKey(t *testing.T) {
	t.Parallel()
	e, _ := startLogged(t, config.ModeGateway, nil)
	r := e.q("POST", connectorsPath, adminKey, map[string]any{"name": "a", "base_url": "http://127.0.0.1:9", "auth": map[string]any{"kind": "token", "token": "t"}})
	e.detail(r, 503, "RUNYARD_SECRET_KEY")
	var detail map[string]any
	_ = json.Unmarshal(r.Raw, &detail)
}
