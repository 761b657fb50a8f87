package airflowtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/airflow/airflowtest"
)

type call struct {
	method   string
	route    string // the spec's path template, without the /api/vN prefix
	path     string // the concrete path, without the prefix
	query    string
	body     any
	auth     string // "" = the user's credentials; "none"; "bad"
	status   int
	noSchema bool // the spec does not describe this answer (the token endpoint)
}

// do sends c to srv with the version's credentials and returns the status and body.
func do(t *testing.T, srv *airflowtest.Server, c call) (int, []byte) {
	t.Helper()
	prefix := "/api/" + srv.APIVersion()
	if c.route == "/auth/token" {
		prefix = ""
	}
	u := srv.URL + prefix + c.path
	if c.query != "" {
		u += "?" + c.query
	}
	var rd io.Reader
	if c.body != nil {
		if s, ok := c.body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			rd = bytes.NewReader(mustJSON(t, c.body))
		}
	}
	req, err := http.NewRequest(c.method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch c.auth {
	case "":
		if srv.APIVersion() == "v1" {
			req.SetBasicAuth("admin", "admin")
		} else {
			req.Header.Set("Authorization", "Bearer "+token(t, srv))
		}
	case "bad":
		if srv.APIVersion() == "v1" {
			req.SetBasicAuth("admin", "wrong")
		} else {
			req.Header.Set("Authorization", "Bearer not.a.jwt")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func token(t *testing.T, srv *airflowtest.Server) string {
	t.Helper()
	resp, err := http.Post(srv.URL+"/auth/token", "application/json", strings.NewReader(`{"username":"admin","password":"admin"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// TestAnswersFollowTheSpecs calls every endpoint the client uses, on both versions, with good
// and bad requests, and validates each answer against the vendored OpenAPI spec of its
// version: the status must be documented for the operation and the body must match its
// schema.
func TestAnswersFollowTheSpecs(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			sp := loadSpec(t, map[string]string{"v1": "airflow2-v1.yaml", "v2": "airflow3-v2.yaml"}[version], map[string]string{"v1": "/api/v1", "v2": ""}[version])
			srv := airflowtest.NewServer(airflowtest.Config{APIVersion: version, DAGs: 12, RunsPerDAG: 3, MappedTasks: 2})
			defer srv.Close()
			dags := srv.DAGIDs()
			if err := srv.RemoveDAGFile(dags[2]); err != nil {
				t.Fatal(err)
			}
			var running, failed airflowtest.RunInfo
			for _, r := range srv.Runs() {
				switch r.State {
				case "running":
					running = r
				case "failed":
					failed = r
				}
			}
			if running.RunID == "" || failed.RunID == "" {
				t.Fatalf("generated data lacks a running or a failed run: %+v", srv.Runs())
			}
			since := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
			dotted := ""
			for _, id := range dags {
				if strings.Contains(id, ".") {
					dotted = id
				}
			}
			logicalKey := "logical_date"
			trigger := map[string]any{"dag_run_id": "runyard__spec_1", "logical_date": "2026-01-02T03:04:05Z", "conf": map[string]any{"k": "v"}, "note": "from the spec test"}
			calls := []call{
				{method: "GET", route: "/version", path: "/version", auth: "none", status: 200},
				{method: "GET", route: "/dags", path: "/dags", status: 200},
				{method: "GET", route: "/dags", path: "/dags", query: "limit=3&offset=2&order_by=-dag_id", status: 200},
				{method: "GET", route: "/dags", path: "/dags", query: map[string]string{"v1": "only_active=false", "v2": "exclude_stale=false"}[version], status: 200},
				{method: "GET", route: "/dags", path: "/dags", auth: "none", status: 401},
				{method: "GET", route: "/dags/{dag_id}", path: "/dags/" + dotted, status: 200},
				{method: "GET", route: "/dags/{dag_id}", path: "/dags/" + dags[2], status: 200},
				{method: "GET", route: "/dags/{dag_id}", path: "/dags/nope", status: 404},
				{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/~/dagRuns", query: "order_by=updated_at&updated_at_gte=" + since, status: 200},
				{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", query: "limit=1000", status: 200},
				{method: "GET", route: "/dags/{dag_id}/dagRuns/{dag_run_id}", path: "/dags/" + running.DAGID + "/dagRuns/" + url.PathEscape(running.RunID), status: 200},
				{method: "GET", route: "/dags/{dag_id}/dagRuns/{dag_run_id}", path: "/dags/" + dags[0] + "/dagRuns/nope", status: 404},
				{method: "GET", route: "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", path: "/dags/" + running.DAGID + "/dagRuns/" + url.PathEscape(running.RunID) + "/taskInstances", status: 200},
				{method: "GET", route: "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", path: "/dags/" + failed.DAGID + "/dagRuns/" + url.PathEscape(failed.RunID) + "/taskInstances", query: "limit=2&offset=1", status: 200},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: trigger, status: 200},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: trigger, status: 409},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/nope/dagRuns", body: map[string]any{logicalKey: nil}, status: 404},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[2] + "/dagRuns", body: map[string]any{logicalKey: nil}, status: 404},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{logicalKey: nil, "dag_run_id": "has spaces"}, status: 400},
				{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{logicalKey: nil}, auth: "bad", status: map[string]int{"v1": 401, "v2": 403}[version]},
			}
			if version == "v1" {
				calls = append(calls,
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[1] + "/dagRuns", body: map[string]any{}, status: 200},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"state": "running"}, status: 400},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"logical_date": "2026-01-02T03:04:05"}, status: 400},
					call{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/nope/dagRuns", status: 200},
				)
			} else {
				calls = append(calls,
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[1] + "/dagRuns", body: map[string]any{"logical_date": nil}, status: 200},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"conf": map[string]any{}}, status: 422},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"logical_date": nil, "state": "running"}, status: 422},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"logical_date": "2026-01-02T03:04:05"}, status: 422},
					call{method: "POST", route: "/dags/{dag_id}/dagRuns", path: "/dags/" + dags[0] + "/dagRuns", body: map[string]any{"logical_date": nil, "dag_run_id": "scheduled__x"}, status: 400},
					call{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/nope/dagRuns", status: 404},
					call{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/~/dagRuns", query: "limit=-1", status: 422},
					call{method: "GET", route: "/dags/{dag_id}/dagRuns", path: "/dags/~/dagRuns", query: "state=exploded", status: 422},
					call{method: "GET", route: "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", path: "/dags/" + dags[0] + "/dagRuns/nope/taskInstances", status: 404},
					call{method: "GET", route: "/dags", path: "/dags", auth: "bad", status: 403},
				)
			}
			for _, c := range calls {
				status, body := do(t, srv, c)
				name := c.method + " " + c.path + "?" + c.query
				if status != c.status {
					t.Errorf("%s: status %d, want %d: %s", name, status, c.status, body)
					continue
				}
				template := "/api/v2" + c.route
				if version == "v1" {
					template = "/api/v1" + c.route
				}
				schema, ok := sp.responseSchema(t, c.method, template, status)
				if !ok {
					t.Errorf("%s: the spec does not document status %d for %s %s", name, status, c.method, c.route)
					continue
				}
				for _, e := range sp.validate(schema, decodeJSON(t, body), "$", true) {
					t.Errorf("%s (%d): %s", name, status, e)
				}
			}
		})
	}
}

// TestTokenEndpoint covers Airflow 3's POST /auth/token: 201 with a JWT the API accepts, 401
// for wrong credentials, 400 for empty ones, 422 for a malformed body, and 403 "Invalid JWT
// token" after the signing key changes.
func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	srv := airflowtest.NewServer(airflowtest.Config{APIVersion: "v2", DAGs: 1})
	defer srv.Close()
	for body, want := range map[string]int{
		`{"username":"admin","password":"admin"}`: 201,
		`{"username":"admin","password":"nope"}`:  401,
		`{"username":"","password":""}`:           400,
		`{"username":"admin"}`:                    422,
		`not json`:                                422,
	} {
		resp, err := http.Post(srv.URL+"/auth/token", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST /auth/token %s: %d, want %d: %s", body, resp.StatusCode, want, b)
		}
	}
	tok := token(t, srv)
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2/dags", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := get(); code != 200 {
		t.Fatalf("GET /dags with a fresh token: %d %s", code, b)
	}
	srv.RotateSigningKey()
	if code, b := get(); code != 403 || !strings.Contains(b, "Invalid JWT token") {
		t.Fatalf("GET /dags with a token of the old key: %d %s", code, b)
	}
	if srv.TokensIssued() != 2 || srv.RequestCount(airflowtest.RouteToken) != 6 || srv.RequestCount(airflowtest.RouteDAGs) != 2 {
		t.Errorf("counters: tokens %d, token requests %d, dag requests %d", srv.TokensIssued(), srv.RequestCount(airflowtest.RouteToken), srv.RequestCount(airflowtest.RouteDAGs))
	}
}

// TestPageCapAndMutation checks the server's page cap and that Step changes what a run list
// filtered by updated_at returns.
func TestPageCapAndMutation(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := airflowtest.NewServer(airflowtest.Config{APIVersion: "v2", DAGs: 30, RunsPerDAG: 5, PageCap: 25, Token: "static-token", Now: func() time.Time { return clock }})
	defer srv.Close()
	get := func(q string) (total, n int) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2/dags/~/dagRuns?"+q, nil)
		req.Header.Set("Authorization", "Bearer static-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Runs  []json.RawMessage `json:"dag_runs"`
			Total int               `json:"total_entries"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.Total, len(body.Runs)
	}
	if total, n := get("limit=1000"); total != 150 || n != 25 {
		t.Fatalf("limit=1000: total %d, rows %d; want 150 and the cap 25", total, n)
	}
	if _, n := get("limit=0"); n != 0 {
		t.Fatalf("v2 limit=0 gave %d rows, want 0", n)
	}
	clock = clock.Add(10 * time.Minute)
	since := url.QueryEscape(clock.Format(time.RFC3339))
	if total, _ := get("updated_at_gte=" + since); total != 0 {
		t.Fatalf("runs updated since the clock moved: %d before any change", total)
	}
	adv := srv.Step()
	if adv.NewRuns == 0 || adv.ChangedRuns == 0 {
		t.Fatalf("Step changed nothing: %+v", adv)
	}
	if total, _ := get("updated_at_gte=" + since); total != adv.NewRuns+adv.ChangedRuns {
		t.Fatalf("runs updated after Step: %d, want %d", total, adv.NewRuns+adv.ChangedRuns)
	}
}

// TestFaults checks forced and random faults and that the log records them.
func TestFaults(t *testing.T) {
	t.Parallel()
	srv := airflowtest.NewServer(airflowtest.Config{APIVersion: "v1", DAGs: 1})
	defer srv.Close()
	srv.SetFaults(airflowtest.Faults{RetryAfter: 2 * time.Second})
	srv.FailNext(airflowtest.FaultTooMany, airflowtest.FaultServerError, airflowtest.FaultDrop)
	resp, err := http.Get(srv.URL + "/api/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("first: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Get(srv.URL + "/api/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("second: %d", resp.StatusCode)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if _, err := (&http.Client{Transport: tr}).Get(srv.URL + "/api/v1/version"); err == nil {
		t.Fatal("third: the connection was not dropped")
	}
	log := srv.Requests()
	if len(log) != 3 || log[0].Status != 429 || log[1].Status != 500 || log[2].Status != 0 || srv.RequestCount(airflowtest.RouteVersion) != 3 {
		t.Fatalf("log: %+v", log)
	}
}
