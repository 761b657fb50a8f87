package airflow_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/airflow/airflowtest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func newClient(t *testing.T, cfg airflow.Config) *airflow.Client {
	t.Helper()
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 1000
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
		cfg.MaxBackoff = 5 * time.Millisecond
	}
	c, err := airflow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fake(t *testing.T, cfg airflowtest.Config) *airflowtest.Server {
	t.Helper()
	srv := airflowtest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

func auth(version string) airflow.Auth {
	if version == "v1" {
		return airflow.Auth{Kind: airflow.AuthBasic, Username: "admin", Password: "admin"}
	}
	return airflow.Auth{Kind: airflow.AuthPassword, Username: "admin", Password: "admin"}
}

func TestDetectsVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv := fake(t, airflowtest.Config{APIVersion: v, DAGs: 1})
			c := newClient(t, airflow.Config{BaseURL: srv.URL + "/", Auth: auth(v)})
			got, err := c.APIVersion(ctx(t))
			if err != nil || string(got) != v {
				t.Fatalf("APIVersion() = %q, %v; want %s", got, err, v)
			}
			info, err := c.Version(ctx(t))
			if err != nil || info.Version == "" {
				t.Fatalf("Version() = %+v, %v", info, err)
			}
			// v2 answers the first probe; v1 needs both, then one more for Version.
			want := map[string]int{"v1": 3, "v2": 2}[v]
			if c.Requests() != int64(want) {
				t.Errorf("client sent %d requests, want %d", c.Requests(), want)
			}
		})
	}
	unreachable := newClient(t, airflow.Config{BaseURL: "http://127.0.0.1:1", MaxRetries: airflow.NoRetries})
	if _, err := unreachable.APIVersion(ctx(t)); !errors.Is(err, airflow.ErrVersionUndetected) {
		t.Fatalf("unreachable server: %v", err)
	}
	notAirflow := httptest.NewServer(http.NotFoundHandler())
	defer notAirflow.Close()
	c := newClient(t, airflow.Config{BaseURL: notAirflow.URL})
	if _, err := c.APIVersion(ctx(t)); !errors.Is(err, airflow.ErrVersionUndetected) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a server without Airflow: %v", err)
	}
}

// TestListsPastThePageCap reads every DAG, run and task instance of servers whose page cap
// is far below the page size the client asks for, and checks the normalised fields.
func TestListsPastThePageCap(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv := fake(t, airflowtest.Config{APIVersion: v, DAGs: 23, RunsPerDAG: 4, TasksPerDAG: 5, MappedTasks: 6, PageCap: 7})
			ids := srv.DAGIDs()
			if err := srv.RemoveDAGFile(ids[3]); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, airflow.Config{BaseURL: srv.URL, Version: airflow.APIVersion(v), Auth: auth(v)})
			dags, err := c.ListDAGs(ctx(t), airflow.DAGFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(dags) != 23 {
				t.Fatalf("got %d dags, want 23", len(dags))
			}
			if n := srv.RequestCount(airflowtest.RouteDAGs); n != 4 {
				t.Errorf("dag pages read: %d, want 4 (23 rows at 7 a page)", n)
			}
			byID := map[string]airflow.DAG{}
			for _, d := range dags {
				byID[d.DAGID] = d
			}
			if byID[ids[3]].IsActive || !byID[ids[4]].IsActive {
				t.Errorf("IsActive: removed file %v, present file %v", byID[ids[3]].IsActive, byID[ids[4]].IsActive)
			}
			for id, want := range map[string]string{ids[0]: "0 * * * *", ids[1]: "0 0 * * *", ids[2]: "6:00:00", ids[3]: ""} {
				if got := byID[id].Schedule; got != want {
					t.Errorf("%s schedule %q, want %q", id, got, want)
				}
			}
			if !byID[ids[8]].IsPaused || len(byID[ids[0]].Owners) == 0 || len(byID[ids[0]].Tags) == 0 || byID[ids[0]].Raw["dag_id"] != ids[0] {
				t.Errorf("dag fields: %+v", byID[ids[0]])
			}
			active, err := c.ListDAGs(ctx(t), airflow.DAGFilter{ActiveOnly: true})
			if err != nil || len(active) != 22 {
				t.Fatalf("active dags: %d, %v", len(active), err)
			}

			runs, err := c.ListDAGRuns(ctx(t), airflow.AllDAGs, airflow.RunFilter{OrderBy: "logical_date"})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 23*4 {
				t.Fatalf("got %d runs, want %d", len(runs), 23*4)
			}
			var running *airflow.DAGRun
			for i := range runs {
				r := &runs[i]
				if r.LogicalDate == nil || r.RunAfter == nil || r.RunType == "" || r.State == "" {
					t.Fatalf("run fields missing: %+v", r)
				}
				if r.State == airflow.RunRunning {
					running = r
				}
				if i > 0 && runs[i-1].LogicalDate.After(*r.LogicalDate) {
					t.Fatalf("runs not in logical date order at %d", i)
				}
			}
			one, err := c.GetDAGRun(ctx(t), running.DAGID, running.RunID)
			if err != nil || one.RunID != running.RunID || one.State != airflow.RunRunning {
				t.Fatalf("GetDAGRun(%s) = %+v, %v", running.RunID, one, err)
			}
			srv.ResetLog()
			tis, err := c.ListTaskInstances(ctx(t), running.DAGID, running.RunID)
			if err != nil {
				t.Fatal(err)
			}
			// 4 unmapped tasks and one mapped over 6 indices, at 7 a page.
			if len(tis) != 10 || srv.RequestCount(airflowtest.RouteTaskInst) != 2 {
				t.Fatalf("got %d task instances in %d requests, want 10 in 2", len(tis), srv.RequestCount(airflowtest.RouteTaskInst))
			}
			mapped, noState := 0, 0
			for _, ti := range tis {
				if ti.MapIndex >= 0 {
					mapped++
				}
				if ti.State == "" {
					noState++
				}
			}
			if mapped != 6 || noState == 0 {
				t.Errorf("mapped %d (want 6), without state %d (want some)", mapped, noState)
			}
			retried := false
			for _, r := range runs {
				if r.State != airflow.RunSuccess && r.State != airflow.RunFailed {
					continue
				}
				tis, err := c.ListTaskInstances(ctx(t), r.DAGID, r.RunID)
				if err != nil {
					t.Fatal(err)
				}
				for _, ti := range tis {
					retried = retried || ti.TryNumber > 1
				}
			}
			if !retried {
				t.Error("no finished task instance has try_number > 1")
			}
		})
	}
}

// TestIncrementalRuns lists the runs changed since a watermark taken from the data's clock.
func TestIncrementalRuns(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	var now atomic.Pointer[time.Time]
	now.Store(&clock)
	srv := fake(t, airflowtest.Config{APIVersion: "v1", DAGs: 9, RunsPerDAG: 3, Now: func() time.Time { return *now.Load() }})
	c := newClient(t, airflow.Config{BaseURL: srv.URL, Auth: auth("v1"), PageSize: 5})
	later := clock.Add(time.Hour)
	now.Store(&later)
	changed, err := c.ListDAGRuns(ctx(t), airflow.AllDAGs, airflow.RunFilter{UpdatedAtGTE: &later, OrderBy: "updated_at"})
	if err != nil || len(changed) != 0 {
		t.Fatalf("runs changed before any change: %d, %v", len(changed), err)
	}
	if err := srv.PauseDAG(srv.DAGIDs()[0], true); err != nil {
		t.Fatal(err)
	}
	adv := srv.Step()
	changed, err = c.ListDAGRuns(ctx(t), airflow.AllDAGs, airflow.RunFilter{UpdatedAtGTE: &later, OrderBy: "updated_at"})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != adv.NewRuns+adv.ChangedRuns {
		t.Fatalf("changed runs %d, want %d", len(changed), adv.NewRuns+adv.ChangedRuns)
	}
	for _, r := range changed {
		if r.DAGID == srv.DAGIDs()[0] {
			t.Errorf("a run of the paused DAG changed: %+v", r)
		}
	}
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv := fake(t, airflowtest.Config{APIVersion: v, DAGs: 10})
			c := newClient(t, airflow.Config{BaseURL: srv.URL, Auth: auth(v)})
			dag := srv.DAGIDs()[0]
			run, err := c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{DAGRunID: "runyard__cmd_1", Conf: map[string]any{"rows": 3.0}, Note: "hello"})
			if err != nil {
				t.Fatal(err)
			}
			if run.RunID != "runyard__cmd_1" || run.State != airflow.RunQueued || run.RunType != airflow.RunTypeManual || run.Conf["rows"] != 3.0 || run.Note != "hello" {
				t.Fatalf("triggered run: %+v", run)
			}
			if (v == "v2") != (run.LogicalDate == nil) {
				t.Errorf("logical date %v: v2 triggers with null, v1 defaults to now", run.LogicalDate)
			}
			_, err = c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{DAGRunID: "runyard__cmd_1"})
			var ae *airflow.APIError
			if !errors.As(err, &ae) || ae.StatusCode != 409 || !errors.Is(err, airflow.ErrConflict) || ae.Message == "" {
				t.Fatalf("duplicate run id: %v", err)
			}
			_, err = c.TriggerDAGRun(ctx(t), "no_such_dag", airflow.TriggerRequest{})
			if airflow.StatusOf(err) != 404 || !errors.Is(err, airflow.ErrNotFound) || !strings.Contains(err.Error(), "no_such_dag") {
				t.Fatalf("unknown dag: %v", err)
			}
			_, err = c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{DAGRunID: "not valid!"})
			if airflow.StatusOf(err) != 400 || !errors.Is(err, airflow.ErrBadRequest) {
				t.Fatalf("bad run id: %v", err)
			}
			paused := srv.DAGIDs()[8]
			run, err = c.TriggerDAGRun(ctx(t), paused, airflow.TriggerRequest{})
			if err != nil || run.State != airflow.RunQueued {
				t.Fatalf("paused dag: %+v, %v", run, err)
			}
			srv.Step()
			again, err := c.GetDAGRun(ctx(t), paused, run.RunID)
			if err != nil || again.State != airflow.RunQueued {
				t.Fatalf("a paused DAG's run left the queue: %+v, %v", again, err)
			}
		})
	}
}

// TestTriggerRetryIsIdempotent: with our own run id, a trigger is retried after a 500, and a
// 409 on the retry (the run exists, as after an attempt whose answer was lost) resolves to
// that run; without an id a 500 is final, since a retry could create a second run.
func TestTriggerRetryIsIdempotent(t *testing.T) {
	t.Parallel()
	srv := fake(t, airflowtest.Config{APIVersion: "v2", DAGs: 1})
	c := newClient(t, airflow.Config{BaseURL: srv.URL, Auth: auth("v2")})
	dag := srv.DAGIDs()[0]
	if _, err := c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{DAGRunID: "runyard__cmd_9"}); err != nil {
		t.Fatal(err)
	}
	// The first attempt fails with 500 and the retry meets the run: as after a lost answer.
	srv.FailNext(airflowtest.FaultServerError)
	run, err := c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{DAGRunID: "runyard__cmd_9"})
	if err != nil || run.RunID != "runyard__cmd_9" {
		t.Fatalf("retried trigger: %+v, %v", run, err)
	}
	// Without our own id a 500 is not retried: a retry could create a second run.
	srv.FailNext(airflowtest.FaultServerError)
	before := c.Requests()
	if _, err := c.TriggerDAGRun(ctx(t), dag, airflow.TriggerRequest{}); !errors.Is(err, airflow.ErrServer) || c.Requests()-before != 1 {
		t.Fatalf("trigger without id after a 500: %v after %d requests", err, c.Requests()-before)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	t.Run("jwt renewed before expiry and after rejection", func(t *testing.T) {
		t.Parallel()
		srv := fake(t, airflowtest.Config{APIVersion: "v2", DAGs: 2})
		var skew atomic.Int64
		c := newClient(t, airflow.Config{BaseURL: srv.URL, Version: airflow.V2, Auth: auth("v2"),
			Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
		for range 3 {
			if _, err := c.GetDAG(ctx(t), srv.DAGIDs()[0]); err != nil {
				t.Fatal(err)
			}
		}
		if srv.TokensIssued() != 1 {
			t.Fatalf("tokens issued for 3 calls: %d, want 1", srv.TokensIssued())
		}
		skew.Store(int64(24*time.Hour - 2*time.Minute)) // the token has two minutes left
		if _, err := c.GetDAG(ctx(t), srv.DAGIDs()[0]); err != nil {
			t.Fatal(err)
		}
		if srv.TokensIssued() != 2 {
			t.Fatalf("a token about to expire was not renewed: %d issued", srv.TokensIssued())
		}
		skew.Store(0)
		srv.RotateSigningKey()
		if _, err := c.GetDAG(ctx(t), srv.DAGIDs()[0]); err != nil {
			t.Fatalf("after the server's key changed: %v", err)
		}
		if srv.TokensIssued() != 3 {
			t.Fatalf("tokens after a 403 Invalid JWT token: %d, want 3", srv.TokensIssued())
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"v1", "v2"} {
			srv := fake(t, airflowtest.Config{APIVersion: v, DAGs: 1})
			var logs bytes.Buffer
			a := auth(v)
			a.Password = "s3cret-wrong"
			c := newClient(t, airflow.Config{BaseURL: srv.URL, Version: airflow.APIVersion(v), Auth: a, Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
			_, err := c.ListDAGs(ctx(t), airflow.DAGFilter{})
			if !errors.Is(err, airflow.ErrUnauthorized) {
				t.Fatalf("%s: %v", v, err)
			}
			if c.Requests() != 1 {
				t.Errorf("%s: %d requests for refused credentials, want 1", v, c.Requests())
			}
			if strings.Contains(err.Error()+logs.String()+a.String(), "s3cret") {
				t.Errorf("%s: the password leaks: %v / %s", v, err, logs.String())
			}
		}
	})
	t.Run("static token", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"v1", "v2"} {
			srv := fake(t, airflowtest.Config{APIVersion: v, DAGs: 3, Token: "tok-123"})
			c := newClient(t, airflow.Config{BaseURL: srv.URL, Auth: airflow.Auth{Kind: airflow.AuthToken, Token: "tok-123"}})
			dags, err := c.ListDAGs(ctx(t), airflow.DAGFilter{})
			if err != nil || len(dags) != 3 {
				t.Fatalf("%s: %d dags, %v", v, len(dags), err)
			}
			for _, r := range srv.Requests() {
				if r.Route == airflowtest.RouteDAGs && r.Auth != "Bearer" {
					t.Errorf("%s: request sent %q credentials", v, r.Auth)
				}
			}
		}
	})
}

func TestRetries(t *testing.T) {
	t.Parallel()
	srv := fake(t, airflowtest.Config{APIVersion: "v1", DAGs: 4})
	c := newClient(t, airflow.Config{BaseURL: srv.URL, Version: airflow.V1, Auth: auth("v1"), MaxRetries: 3})
	srv.FailNext(airflowtest.FaultTooMany, airflowtest.FaultServerError, airflowtest.FaultDrop)
	dags, err := c.ListDAGs(ctx(t), airflow.DAGFilter{})
	if err != nil || len(dags) != 4 {
		t.Fatalf("after three faults: %d dags, %v", len(dags), err)
	}
	// Go's transport itself resends a GET whose reused connection was dropped before any
	// answer, so the drop may cost no retry of the client's.
	if srv.RequestCount(airflowtest.RouteDAGs) != 4 || c.Retries() < 2 || c.Requests() != c.Retries()+1 {
		t.Errorf("server saw %d requests; client retries %d, requests %d", srv.RequestCount(airflowtest.RouteDAGs), c.Retries(), c.Requests())
	}
	srv.FailNext(airflowtest.FaultServerError, airflowtest.FaultServerError, airflowtest.FaultServerError, airflowtest.FaultServerError, airflowtest.FaultServerError)
	before := c.Requests()
	if _, err := c.GetDAG(ctx(t), "dag_0000"); !errors.Is(err, airflow.ErrServer) || airflow.StatusOf(err) != 500 {
		t.Fatalf("after more 500s than retries: %v", err)
	}
	if n := c.Requests() - before; n != 4 {
		t.Errorf("bounded retries sent %d requests, want 4", n)
	}

	// A Retry-After is honoured: the retry waits at least that long.
	srv.SetFaults(airflowtest.Faults{RetryAfter: time.Second})
	srv.FailNext(airflowtest.FaultTooMany)
	start := time.Now()
	if _, err := c.GetDAG(ctx(t), "dag_0000"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %s despite Retry-After: 1", waited)
	}
	// One longer than the client will wait fails at once.
	srv.SetFaults(airflowtest.Faults{RetryAfter: time.Hour})
	srv.FailNext(airflowtest.FaultTooMany)
	if _, err := c.GetDAG(ctx(t), "dag_0000"); !errors.Is(err, airflow.ErrRateLimited) {
		t.Fatalf("Retry-After of an hour: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := fake(t, airflowtest.Config{APIVersion: "v1", DAGs: 1})
	c, err := airflow.New(airflow.Config{BaseURL: srv.URL, Version: airflow.V1, Auth: auth("v1"), RateLimit: 20})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 11 {
		if _, err := c.GetDAG(ctx(t), "dag_0000"); err != nil {
			t.Fatal(err)
		}
	}
	// 11 requests at 20 a second with a burst of 1 take at least 10 intervals of 50 ms.
	if el := time.Since(start); el < 450*time.Millisecond {
		t.Fatalf("11 requests took %s at 20 req/s", el)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	target := fake(t, airflowtest.Config{APIVersion: "v1", DAGs: 1})
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirect.Close()
	c := newClient(t, airflow.Config{BaseURL: redirect.URL, Version: airflow.V1, Auth: auth("v1")})
	_, err := c.TriggerDAGRun(ctx(t), "dag_0000", airflow.TriggerRequest{})
	if !errors.Is(err, airflow.ErrRedirected) || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("redirected trigger: %v", err)
	}
	if target.RequestCount("") != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]airflow.Config{
		"no scheme":        {BaseURL: "airflow.example:8080"},
		"credentials":      {BaseURL: "http://u:p@airflow.example"},
		"version":          {BaseURL: "http://airflow.example", Version: "v3"},
		"basic without id": {BaseURL: "http://airflow.example", Auth: airflow.Auth{Kind: airflow.AuthBasic}},
		"empty token":      {BaseURL: "http://airflow.example", Auth: airflow.Auth{Kind: airflow.AuthToken}},
	} {
		if _, err := airflow.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
}
