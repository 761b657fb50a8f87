package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// The large store: 100 pipelines with one schedule each and RUNYARD_BENCH_RUNS runs
// (default 1,000,000), each with three block runs; half of the runs belong to schedule 1, so
// listing it pages through half a million runs.
var (
	largeOnce  sync.Once
	largeStore *Store
	largeErr   error
)

const largePipelines = 100

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("RUNYARD_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

func openLarge(b *testing.B) *Store {
	largeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runyard-bench-")
		if err != nil {
			largeErr = err
			return
		}
		t0 := time.Now()
		largeStore, largeErr = fillLarge(context.Background(), dir, benchRuns())
		fmt.Fprintf(os.Stderr, "built a store of %d runs in %s\n", benchRuns(), time.Since(t0).Round(time.Second))
	})
	if largeErr != nil {
		b.Fatal(largeErr)
	}
	return largeStore
}

func fillLarge(ctx context.Context, dir string, runs int) (*Store, error) {
	s, err := Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	blocks := []pipeline.Block{
		{UUID: "root", Name: "root", Type: "custom", UpstreamBlocks: []string{}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
		{UUID: "left", Name: "left", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
		{UUID: "right", Name: "right", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
	}
	now := store.Now()
	for p := range largePipelines {
		uuid := fmt.Sprintf("pipeline_%03d", p)
		if err := s.CreatePipeline(ctx, &pipeline.Pipeline{Space: "default", UUID: uuid, Name: uuid, Blocks: blocks, CreatedAt: now, UpdatedAt: now}); err != nil {
			return nil, err
		}
		if err := s.CreateSchedule(ctx, &schedule.Schedule{ID: int64(p + 1), Space: "default", PipelineUUID: uuid, Name: "api", ScheduleType: "api", Status: "active", Token: schedule.NewToken(), CreatedAt: now, UpdatedAt: now}); err != nil {
			return nil, err
		}
	}
	const batch = 5000
	for start := 0; start < runs; start += batch {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		insRun, err := tx.PrepareContext(ctx, `INSERT INTO pipeline_runs (id, space, pipeline_uuid, pipeline_schedule_id, command_id, status, execution_date, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return nil, err
		}
		insBlock, err := tx.PrepareContext(ctx, `INSERT INTO block_runs (id, space, pipeline_run_id, pipeline_uuid, block_uuid, version, doc, log) VALUES (?, ?, ?, ?, ?, ?, ?, '')`)
		if err != nil {
			return nil, err
		}
		for i := start; i < min(start+batch, runs); i++ {
			sched := 1
			if i%2 == 1 {
				sched = 2 + i%(largePipelines-1)
			}
			at := now.Add(-time.Duration(runs-i) * time.Minute)
			done := at.Add(3 * time.Second)
			st := run.StatusCompleted
			if i%10 == 0 {
				st = run.StatusFailed
			}
			r := &run.PipelineRun{ID: int64(i + 1), Space: "default", PipelineUUID: fmt.Sprintf("pipeline_%03d", sched-1), PipelineScheduleID: int64(sched),
				CommandID: fmt.Sprint("cmd-", i), ExecutionDate: at, Status: st, StartedAt: &at, CompletedAt: &done,
				Variables: map[string]any{"execution_partition": "x"}, ExecutorType: "local_python", Blocks: blocks, CreatedAt: at, UpdatedAt: done, Version: 2}
			doc, err := encode(r)
			if err != nil {
				return nil, err
			}
			if _, err := insRun.ExecContext(ctx, append(runColumns(r), doc)...); err != nil {
				return nil, err
			}
			for j, b := range blocks {
				br := &run.BlockRun{ID: int64(i*3 + j + 1), Space: "default", PipelineRunID: r.ID, PipelineScheduleID: r.PipelineScheduleID, PipelineUUID: r.PipelineUUID,
					BlockUUID: b.UUID, Status: run.StatusCompleted, StartedAt: &at, CompletedAt: &done, Metrics: map[string]any{"duration_seconds": 0.001}, CreatedAt: at, UpdatedAt: done, Version: 2}
				doc, err := encode(br)
				if err != nil {
					return nil, err
				}
				if _, err := insBlock.ExecContext(ctx, br.ID, br.Space, br.PipelineRunID, br.PipelineUUID, br.BlockUUID, br.Version, doc); err != nil {
					return nil, err
				}
			}
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// benchMedian runs op b.N times and reports the median latency, which is what the targets
// name (ns/op is the mean).
func benchMedian(b *testing.B, op func(ctx context.Context) error) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkLargeStore measures the reads behind the API's lists on a store of a million runs:
// each op is what the gateway asks the store for one request.
func BenchmarkLargeStore(b *testing.B) {
	s := openLarge(b)
	b.Run("RunsOfSchedulePage", func(b *testing.B) {
		page := 0
		benchMedian(b, func(ctx context.Context) error {
			page = (page + 1) % 50
			runs, total, err := s.ListRuns(ctx, store.RunFilter{Space: "default", ScheduleID: 1}, store.Page{Limit: 20, Offset: page * 20})
			if err != nil || len(runs) != 20 || total < 20 {
				return fmt.Errorf("list: %d runs of %d: %w", len(runs), total, err)
			}
			ids := make([]int64, len(runs))
			for i := range runs {
				ids[i] = runs[i].ID
			}
			if _, err := s.BlockRunsOf(ctx, ids...); err != nil {
				return err
			}
			_, err = s.GetSchedules(ctx, []int64{1})
			return err
		})
	})
	b.Run("RunByID", func(b *testing.B) {
		id := int64(0)
		n := int64(benchRuns())
		benchMedian(b, func(ctx context.Context) error {
			id = id*7919%n + 1
			r, err := s.GetRun(ctx, id)
			if err != nil {
				return err
			}
			if _, err := s.BlockRunsOf(ctx, r.ID); err != nil {
				return err
			}
			_, err = s.GetSchedules(ctx, []int64{r.PipelineScheduleID})
			return err
		})
	})
	b.Run("PipelinesWithStats", func(b *testing.B) {
		benchMedian(b, func(ctx context.Context) error {
			ps, _, err := s.ListPipelines(ctx, "default", store.Page{Limit: 100})
			if err != nil || len(ps) != largePipelines {
				return fmt.Errorf("pipelines: %d: %w", len(ps), err)
			}
			uuids := make([]string, len(ps))
			for i := range ps {
				uuids[i] = ps[i].UUID
			}
			_, err = s.PipelineStats(ctx, "default", uuids, time.Now().Add(-30*24*time.Hour))
			return err
		})
	})
}
