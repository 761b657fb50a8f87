package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

var benchBlocks = []pipeline.Block{
	{UUID: "root", Name: "root", Type: "custom", UpstreamBlocks: []string{}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
	{UUID: "left", Name: "left", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
	{UUID: "right", Name: "right", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
}

func newRun(id int64, commandID string) *run.PipelineRun {
	now := store.Now()
	return &run.PipelineRun{ID: id, Space: "default", PipelineUUID: "p", PipelineScheduleID: 1, CommandID: commandID,
		ExecutionDate: now, Status: run.StatusRunning, StartedAt: &now, Variables: map[string]any{"execution_partition": "x"},
		ExecutorType: "local_python", Blocks: benchBlocks, CreatedAt: now, UpdatedAt: now}
}

// Concurrent writers share transactions, yet each keeps its own outcome: of many deliveries
// of one command exactly one creates the run, a conditional update that declines writes
// nothing, and the others' writes stand.
func TestGroupWriterKeepsEachCallersOutcome(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	ctx := context.Background()
	const callers = 64
	var created, dups atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Every fourth caller redelivers command "same".
			cmd := fmt.Sprint("cmd-", i)
			if i%4 == 0 {
				cmd = "same"
			}
			err := s.CreateRun(ctx, newRun(int64(i+1), cmd))
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, store.ErrDuplicate):
				dups.Add(1)
			default:
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := s.UpdateRun(ctx, 1_000_000, func(*run.PipelineRun) error { return nil })
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("update of a missing run: %v, want not found", err)
			}
		}()
	}
	wg.Wait()
	if want := int64(callers - callers/4 + 1); created.Load() != want || dups.Load() != callers/4-1 {
		t.Fatalf("created %d, duplicates %d; want %d and %d", created.Load(), dups.Load(), want, callers/4-1)
	}
	runs, total, err := s.ListRuns(ctx, store.RunFilter{Space: "default"}, store.Page{})
	if err != nil || total != created.Load() || len(runs) != int(total) {
		t.Fatalf("stored %d runs (%d listed, %v), want %d", total, len(runs), err, created.Load())
	}

	// Half the updates decline: they must write nothing while the others commit.
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := runs[i].ID
			r, err := s.UpdateRun(ctx, id, func(r *run.PipelineRun) error {
				if id%2 == 0 {
					return run.ErrNoChange
				}
				r.Status = run.StatusCompleted
				return nil
			})
			if id%2 == 0 && (!errors.Is(err, run.ErrNoChange) || r == nil || r.Version != 0) {
				t.Errorf("declined update of run %d: %v, %+v", id, err, r)
			}
			if id%2 == 1 && (err != nil || r.Version != 1) {
				t.Errorf("update of run %d: %v", id, err)
			}
		}()
	}
	wg.Wait()
	for _, r := range runs {
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := run.StatusRunning
		if r.ID%2 == 1 {
			want = run.StatusCompleted
		}
		if got.Status != want {
			t.Errorf("run %d is %s, want %s", r.ID, got.Status, want)
		}
	}
	completed, _, err := s.ListRuns(ctx, store.RunFilter{Space: "default", Status: run.StatusCompleted}, store.Page{Limit: 1})
	if err != nil || len(completed) == 0 {
		t.Fatalf("completed runs not counted: %v", err)
	}
}

// A write submitted after Close fails instead of waiting forever.
func TestGroupWriterAfterClose(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(context.Background(), newRun(1, "c")); !errors.Is(err, errClosed) {
		t.Fatalf("write after close: %v, want %v", err, errClosed)
	}
}

// runWrites makes the store writes of one 3-block run as the executor does: the run, its
// block runs in one transaction, root running and completed, both branches queued, running
// and completed, and the run completed.
func runWrites(ctx context.Context, s *Store, id int64) error {
	r := newRun(id, fmt.Sprint("cmd-", id))
	if err := s.CreateRun(ctx, r); err != nil {
		return err
	}
	now := store.Now()
	brs := make([]run.BlockRun, len(benchBlocks))
	for i, b := range benchBlocks {
		st := run.StatusInitial
		if i == 0 {
			st = run.StatusQueued
		}
		brs[i] = run.BlockRun{ID: id*3 + int64(i), Space: "default", PipelineRunID: id, PipelineUUID: "p", BlockUUID: b.UUID, Status: st, CreatedAt: now, UpdatedAt: now}
	}
	if err := s.CreateBlockRuns(ctx, brs); err != nil {
		return err
	}
	step := func(brID int64, from, to run.Status) error {
		_, err := s.UpdateBlockRun(ctx, brID, func(b *run.BlockRun) error {
			if b.Status != from {
				return run.ErrNoChange
			}
			b.Status = to
			return nil
		})
		return err
	}
	for _, st := range []struct {
		br       int64
		from, to run.Status
	}{
		{0, run.StatusQueued, run.StatusRunning}, {0, run.StatusRunning, run.StatusCompleted},
		{1, run.StatusInitial, run.StatusQueued}, {2, run.StatusInitial, run.StatusQueued},
		{1, run.StatusQueued, run.StatusRunning}, {2, run.StatusQueued, run.StatusRunning},
		{1, run.StatusRunning, run.StatusCompleted}, {2, run.StatusRunning, run.StatusCompleted},
	} {
		if err := step(id*3+st.br, st.from, st.to); err != nil {
			return err
		}
	}
	_, err := s.UpdateRun(ctx, id, func(r *run.PipelineRun) error {
		r.Status = run.StatusCompleted
		return nil
	})
	return err
}

// BenchmarkRunWrites is the store's share of one run: 11 write transactions, one caller at
// a time.
func BenchmarkRunWrites(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := runWrites(ctx, s, int64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkRunWritesParallel is the same with 64 runs written at once, as an executor under
// load does: the group writer batches their transactions.
func BenchmarkRunWritesParallel(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(max(1, 64/max(1, testingProcs())))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := runWrites(ctx, s, next.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }

// A caller failing after it wrote makes the batch run again caller by caller: its writes
// are gone, everyone else's stand, and a caller that declined is told so without the mark.
func TestGroupWriterFailureAfterWrite(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	ctx := context.Background()
	counter := func(name string) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES (?, 1)`, name)
			return err
		}
	}
	boom := errors.New("boom")
	var failedRuns, okRuns atomic.Int64
	names := []string{"ok-1", "declined", "failed", "ok-2"}
	fns := []func(tx *sql.Tx) error{
		func(tx *sql.Tx) error { okRuns.Add(1); return counter("ok-1")(tx) },
		func(*sql.Tx) error { return declined(run.ErrNoChange) },
		func(tx *sql.Tx) error {
			failedRuns.Add(1)
			if err := counter("failed")(tx); err != nil {
				return err
			}
			return boom
		},
		counter("ok-2"),
	}
	// One batch, run as the writer's loop would run it.
	batch := make([]*writeReq, len(fns))
	for i, fn := range fns {
		batch[i] = &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	}
	s.g.run(batch)
	results := map[string]error{}
	for i, r := range batch {
		results[names[i]] = <-r.done
	}
	if results["ok-1"] != nil || results["ok-2"] != nil || !errors.Is(results["failed"], boom) || !errors.Is(results["declined"], run.ErrNoChange) {
		t.Fatalf("results %v", results)
	}
	var d declinedError
	if errors.As(results["declined"], &d) {
		t.Fatal("the declined mark reached the caller")
	}
	// Shared, rolled back, then alone: every caller ran twice.
	if failedRuns.Load() != 2 || okRuns.Load() != 2 {
		t.Fatalf("the failing write ran %d times and ok-1 %d times, want 2 and 2", failedRuns.Load(), okRuns.Load())
	}
	for name, want := range map[string]bool{"ok-1": true, "ok-2": true, "failed": false} {
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM counters WHERE name = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if (n == 1) != want {
			t.Errorf("counter %s stored %d times, want stored: %v", name, n, want)
		}
	}

	// Without a failure the batch shares one transaction: each caller runs once.
	okRuns.Store(0)
	batch = []*writeReq{
		{ctx: ctx, fn: func(tx *sql.Tx) error { okRuns.Add(1); return counter("ok-3")(tx) }, done: make(chan error, 1)},
		{ctx: ctx, fn: func(*sql.Tx) error { return declined(run.ErrNoChange) }, done: make(chan error, 1)},
	}
	s.g.run(batch)
	if err := <-batch[0].done; err != nil || okRuns.Load() != 1 {
		t.Fatalf("shared batch: %v, %d runs", err, okRuns.Load())
	}
	if err := <-batch[1].done; !errors.Is(err, run.ErrNoChange) {
		t.Fatalf("declined in a shared batch: %v", err)
	}
}

// The readers' page cache is the smaller one (memory grows with it per reader).
func TestPageCacheSizes(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	for db, want := range map[*sql.DB]int{s.w: -32000, s.r: -8000} {
		var got int
		if err := db.QueryRowContext(context.Background(), `PRAGMA cache_size`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("cache_size %d, want %d", got, want)
		}
	}
}
