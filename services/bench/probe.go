package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/natsserver"
	"github.com/runyard/runyard/libs/pipeline"
	librun "github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/sqlitestore"
	"github.com/runyard/runyard/libs/store"
)

// probeResult is the raw speed of Runyard's two dependencies, measured in this process on a
// single goroutine each, without Runyard's services.
type probeResult struct {
	MessageBytes       int     `json:"message_bytes"`
	PublishPerSec      float64 `json:"js_publish_per_sec"`
	ConsumePerSec      float64 `json:"js_consume_per_sec"`
	Published          int64   `json:"js_published"`
	Consumed           int64   `json:"js_consumed"`
	RunInsertsPerSec   float64 `json:"store_run_inserts_per_sec"`
	BlockInsertTxPerS  float64 `json:"store_block_run_insert_tx_per_sec"`
	RunUpdatesPerSec   float64 `json:"store_run_updates_per_sec"`
	BlockUpdatesPerSec float64 `json:"store_block_run_updates_per_sec"`
}

// probeMessageBytes is the payload of the probe's messages: between a work message (~80 B)
// and a run event (~2 KB, the whole run).
const probeMessageBytes = 512

// probeStack measures JetStream and the SQLite store for window each.
func probeStack(ctx context.Context, window time.Duration) (probeResult, error) {
	dir, err := os.MkdirTemp("", "runyard-bench-probe-")
	if err != nil {
		return probeResult{}, fmt.Errorf("probe directory: %w", err)
	}
	defer os.RemoveAll(dir)
	res := probeResult{MessageBytes: probeMessageBytes}
	if err := probeJetStream(ctx, filepath.Join(dir, "nats"), window, &res); err != nil {
		return res, fmt.Errorf("jetstream probe: %w", err)
	}
	if err := probeStore(ctx, filepath.Join(dir, "store"), window, &res); err != nil {
		return res, fmt.Errorf("store probe: %w", err)
	}
	return res, nil
}

// probeJetStream publishes to a stream configured like RUNYARD_CMD (work queue, file storage,
// 2-minute duplicate window), one message at a time waiting for each ack and carrying a
// Nats-Msg-Id, then consumes them all through a durable pull consumer configured like
// Runyard's, acking each.
func probeJetStream(ctx context.Context, dir string, window time.Duration, res *probeResult) error {
	ns, err := natsserver.Start(natsserver.Config{Addr: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.URL(), nats.Name("runyard-bench-probe"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{
		Name:       "BENCH_CMD",
		Subjects:   []string{"bench.cmd.>"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: natsbus.DuplicateWindow,
		MaxAge:     7 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}

	payload := make([]byte, probeMessageBytes)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	var n int64
	t0 := time.Now()
	for time.Since(t0) < window {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Publish(pctx, "bench.cmd.pipeline_run.trigger", payload, jetstream.WithMsgID("probe-"+strconv.FormatInt(n, 10)))
		cancel()
		if err != nil {
			return fmt.Errorf("publish %d: %w", n, err)
		}
		n++
	}
	res.Published, res.PublishPerSec = n, perSecond(n, time.Since(t0))

	const workers = 32 // RUNYARD_EXECUTOR_WORKERS' default; natsbus sizes the consumer from it
	cons, err := stream.CreateOrUpdateConsumer(sctx, jetstream.ConsumerConfig{
		Durable:   "bench-consumer",
		AckPolicy: jetstream.AckExplicitPolicy,
		// Short, unlike Runyard's: on a loaded machine the client may drop deliveries (slow
		// consumer), which then hold ack slots until redelivered.
		AckWait:       2 * time.Second,
		MaxAckPending: workers * 4,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	t1 := time.Now()
	seen := make(map[uint64]bool, n)
	var mu sync.Mutex
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if m.Ack() != nil {
			return
		}
		// A redelivered message counts once.
		md, err := m.Metadata()
		if err != nil {
			return
		}
		mu.Lock()
		first := !seen[md.Sequence.Stream]
		seen[md.Sequence.Stream] = true
		mu.Unlock()
		if first && got.Add(1) == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(workers*2))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	limit := max(30*time.Second, 10*window)
	select {
	case <-done:
	case <-time.After(limit):
		return fmt.Errorf("consumed %d of %d messages within %s", got.Load(), n, limit)
	case <-ctx.Done():
		return ctx.Err()
	}
	res.Consumed, res.ConsumePerSec = n, perSecond(n, time.Since(t1))
	return nil
}

// probeStore measures the SQLite store's writes, one at a time on one goroutine, as the
// store's single writer connection serializes them anyway: run inserts, block-run insert
// transactions (three block runs each), and conditional read-modify-write updates of runs
// and of block runs.
func probeStore(ctx context.Context, dir string, window time.Duration, res *probeResult) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store directory: %w", err)
	}
	st, err := sqlitestore.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))

	blocks := []pipeline.Block{
		{UUID: "root", Name: "root", Type: "custom", UpstreamBlocks: []string{}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
		{UUID: "left", Name: "left", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
		{UUID: "right", Name: "right", Type: "custom", UpstreamBlocks: []string{"root"}, Runner: pipeline.Runner{Kind: pipeline.KindNoop}},
	}
	// Inserts.
	var runs int64
	t0 := time.Now()
	for time.Since(t0) < window {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := store.Now()
		id := runs + 1
		r := &librun.PipelineRun{
			ID: id, Space: "default", PipelineUUID: "bench", PipelineScheduleID: 1, CommandID: "probe-" + strconv.FormatInt(id, 10),
			ExecutionDate: now, Status: librun.StatusRunning, StartedAt: &now, LastStartedAt: &now,
			Variables: map[string]any{"source": "runyard-bench", "execution_partition": "1/" + now.Format("20060102T150405")}, ExecutorType: "local_python", RunType: "api",
			Blocks: blocks, CreatedAt: now, UpdatedAt: now,
		}
		if err := st.CreateRun(ctx, r); err != nil {
			return err
		}
		runs++
	}
	res.RunInsertsPerSec = perSecond(runs, time.Since(t0))
	if runs == 0 {
		return errors.New("no run inserted")
	}

	// Block-run insert transactions, for the runs just inserted.
	var txs int64
	t0 = time.Now()
	for time.Since(t0) < window && txs < runs {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := store.Now()
		runID := txs + 1
		brs := make([]librun.BlockRun, 0, len(blocks))
		for i, b := range blocks {
			status := librun.StatusInitial
			if i == 0 {
				status = librun.StatusQueued
			}
			brs = append(brs, librun.BlockRun{ID: runID*10 + int64(i), Space: "default", PipelineRunID: runID, PipelineScheduleID: 1,
				PipelineUUID: "bench", BlockUUID: b.UUID, Status: status, CreatedAt: now, UpdatedAt: now})
		}
		if err := st.CreateBlockRuns(ctx, brs); err != nil {
			return err
		}
		txs++
	}
	res.BlockInsertTxPerS = perSecond(txs, time.Since(t0))

	// Conditional run updates, round-robin over the runs: read, check the status, write a
	// status change as the executor's completion of a run does (so the list counters and
	// statistics triggers fire), flipping back on the next round.
	var updates int64
	t0 = time.Now()
	for time.Since(t0) < window {
		id := updates%runs + 1
		if _, err := st.UpdateRun(ctx, id, func(r *librun.PipelineRun) error {
			switch r.Status {
			case librun.StatusRunning:
				now := store.Now()
				r.Status, r.CompletedAt = librun.StatusCompleted, &now
			case librun.StatusCompleted:
				r.Status, r.CompletedAt = librun.StatusRunning, nil
			default:
				return librun.ErrNoChange
			}
			return nil
		}); err != nil {
			return err
		}
		updates++
	}
	res.RunUpdatesPerSec = perSecond(updates, time.Since(t0))

	// Conditional block-run updates over the block runs inserted.
	updates = 0
	t0 = time.Now()
	for time.Since(t0) < window {
		runID := updates%txs + 1
		id := runID*10 + updates%int64(len(blocks))
		if _, err := st.UpdateBlockRun(ctx, id, func(b *librun.BlockRun) error {
			if b.Status.Terminal() {
				return librun.ErrNoChange
			}
			if b.Status == librun.StatusInitial {
				b.Status = librun.StatusQueued
			} else {
				b.Status = librun.StatusRunning
			}
			return nil
		}); err != nil {
			return err
		}
		updates++
	}
	res.BlockUpdatesPerSec = perSecond(updates, time.Since(t0))
	return nil
}
