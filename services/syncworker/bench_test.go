package syncworker_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/airflow/airflowtest"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/services/syncworker"
)

// BenchmarkSyncLarge measures a first full sync of 1,000 DAGs, 50,000 runs and 250,000 task
// instances (RUNYARD_BENCH_SYNC_DAGS changes the DAG count; runs and task instances scale
// with it) from the fake Airflow over loopback into the SQLite store, then a re-sync with no
// change. The client's rate limit is lifted: the figure is the sync's own cost, not the
// politeness toward a real server (10 requests/s by default).
//
// It runs only with RUNYARD_BENCH_SYNC=1 (make bench sets it), since one iteration takes
// minutes.
func BenchmarkSyncLarge(b *testing.B) {
	if os.Getenv("RUNYARD_BENCH_SYNC") != "1" {
		b.Skip("set RUNYARD_BENCH_SYNC=1 to run the large sync benchmark")
	}
	dags := 1000
	if v := os.Getenv("RUNYARD_BENCH_SYNC_DAGS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RUNYARD_BENCH_SYNC_DAGS=%q is not a positive number", v)
		}
		dags = n
	}
	fetches := 32
	if v := os.Getenv("RUNYARD_BENCH_SYNC_FETCHES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RUNYARD_BENCH_SYNC_FETCHES=%q is not a positive number", v)
		}
		fetches = n
	}
	for b.Loop() {
		b.StopTimer()
		h := newHarness(b, harnessConfig{
			fake:   airflowtest.Config{APIVersion: "v2", DAGs: dags, RunsPerDAG: 50, TasksPerDAG: 4, MappedTasks: 2},
			worker: syncworker.Config{RateLimit: 1e6, Fetches: fetches},
		})
		conn, err := h.st.UpdateConnector(h.ctx, space, h.conn.ID, func(c *connector.Connector) error { c.Sync.LookbackDays = 365; return nil })
		if err != nil {
			b.Fatal(err)
		}
		wantDAGs, wantRuns, wantTIs := h.fake.Counts()
		b.StartTimer()
		start := time.Now()
		queued, _, err := command.StartSync(h.ctx, h.st, h.bus, conn, "bench")
		if err != nil {
			b.Fatal(err)
		}
		j := h.waitJob(queued.ID, 15*time.Minute)
		full := time.Since(start)
		b.StopTimer()
		h.mustComplete(j)
		if j.DAGs.Created != int64(wantDAGs) || j.Runs.Created != int64(wantRuns) || j.TaskRuns.Created != int64(wantTIs) {
			b.Fatalf("synced %+v %+v %+v of %d dags, %d runs, %d task instances", j.DAGs, j.Runs, j.TaskRuns, wantDAGs, wantRuns, wantTIs)
		}
		fullRequests := len(h.fake.Requests())
		h.fake.ResetLog()
		start = time.Now()
		j = h.sync(h.reload(conn))
		again := time.Since(start)
		h.mustComplete(j)
		b.ReportMetric(full.Seconds(), "s/full-sync")
		b.ReportMetric(float64(fullRequests), "requests/full-sync")
		b.ReportMetric(again.Seconds(), "s/no-change-resync")
		b.ReportMetric(float64(len(h.fake.Requests())), "requests/no-change-resync")
		b.Logf("full sync of %d dags, %d runs, %d task instances: %s, %d requests; no-change re-sync: %s, %d requests (%d runs re-read)",
			wantDAGs, wantRuns, wantTIs, full.Round(time.Millisecond), fullRequests, again.Round(time.Millisecond), len(h.fake.Requests()), j.Runs.Seen)
		b.StartTimer()
	}
}
