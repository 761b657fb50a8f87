package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/config"
	"github.com/runyard/runyard/libs/testenv"
	"github.com/runyard/runyard/services/standalone/system"
)

const adminKey = "test-admin-key-0123456789"

// env is one Runyard system for one test: its own NATS server and database, the gateway on
// a free loopback port.
type env struct {
	t       testing.TB
	base    string
	natsURL string
	vars    map[string]string // the configuration the system was started with
}

// start runs the system as the standalone binary does by default: on the embedded SQLite
// store.
func start(t testing.TB, extra map[string]string) *env {
	t.Helper()
	return startWith(t, extra, false)
}

// startMongo runs the system on the MongoDB store (embedded FerretDB, or the MongoDB of
// RUNYARD_TEST_MONGO_URI).
func startMongo(t testing.TB, extra map[string]string) *env {
	t.Helper()
	return startWith(t, extra, true)
}

func startWith(t testing.TB, extra map[string]string, mongo bool) *env {
	t.Helper()
	natsURL := testenv.NATS(t)
	vars := map[string]string{
		"RUNYARD_HTTP_ADDR":        "127.0.0.1:0",
		"RUNYARD_DATA_DIR":         t.TempDir(),
		"RUNYARD_NATS_URL":         natsURL,
		"RUNYARD_ADMIN_API_KEY":    adminKey,
		"RUNYARD_LOG_LEVEL":        "warn",
		"RUNYARD_EXECUTOR_WORKERS": "8",
	}
	if mongo {
		vars["RUNYARD_MONGO_URI"], vars["RUNYARD_MONGO_DATABASE"] = testenv.Mongo(t)
	}
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := config.Load(config.ModeStandalone, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	sys, err := system.Start(ctx, config.ModeStandalone, cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sys.Stop(ctx)
	})
	return &env{t: t, base: "http://" + sys.HTTPAddr().String(), natsURL: natsURL, vars: vars}
}

type response struct {
	Status int
	Body   map[string]any
	Raw    string
	Header http.Header
}

// call sends a request authenticated with the admin key unless the path already carries
// credentials or headers say otherwise.
func (e *env) call(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	auth := true
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "no-auth" {
			auth = false
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	if auth && req.Header.Get("Authorization") == "" && !strings.Contains(path, "api_key=") {
		req.Header.Set("X-API-KEY", adminKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := response{Status: res.StatusCode, Raw: string(raw), Header: res.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, raw)
		}
	}
	return out
}

func (e *env) must(status int, r response) response {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// noAuth is a header pair that turns off the default admin key.
var noAuth = []string{"no-auth", ""}

func obj(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func num(m map[string]any, key string) int64 {
	v, _ := m[key].(float64)
	return int64(v)
}

func block(uuid string, runner map[string]any, upstream ...string) map[string]any {
	if upstream == nil {
		upstream = []string{}
	}
	return map[string]any{"uuid": uuid, "upstream_blocks": upstream, "runner": runner}
}

var noop = map[string]any{"kind": "noop"}

func shell(script string) map[string]any {
	return map[string]any{"kind": "command", "command": []string{"sh", "-c", script}}
}

// pipelineWithSchedule creates a pipeline of blocks and an active api schedule for it, and
// returns the schedule's id and token.
func (e *env) pipelineWithSchedule(uuid string, blocks ...map[string]any) (int64, string) {
	e.t.Helper()
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{"uuid": uuid, "blocks": blocks}}))
	r := e.must(200, e.call("POST", "/api/pipelines/"+uuid+"/pipeline_schedules",
		map[string]any{"pipeline_schedule": map[string]any{"name": uuid + " api", "schedule_type": "api", "status": "active"}}))
	s := obj(r.Body, "pipeline_schedule")
	return num(s, "id"), s["token"].(string)
}

func (e *env) trigger(id int64, token string, body any, headers ...string) response {
	e.t.Helper()
	return e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", id, token), body, append(headers, noAuth...)...)
}

// waitRun polls the run until it reaches a terminal status or the deadline passes.
func (e *env) waitRun(id int64) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_runs/%d", id), nil))
		pr := obj(r.Body, "pipeline_run")
		switch pr["status"] {
		case "completed", "failed", "cancelled":
			return pr
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %d still %v after 30s: %s", id, pr["status"], r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func blockRuns(pr map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, b := range pr["block_runs"].([]any) {
		br := b.(map[string]any)
		out[br["block_uuid"].(string)] = br
	}
	return out
}

// addExecutor starts one more executor on the same NATS server and store, as a second
// executor process would, so tests can check what holds across executors.
func (e *env) addExecutor() {
	e.t.Helper()
	cfg, err := config.Load(config.ModeExecutor, func(k string) (string, bool) { v, ok := e.vars[k]; return v, ok })
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, config.ModeExecutor, cfg, zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel), io.Discard)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sys.Stop(ctx)
	})
}
