package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/sqlitestore"
)

// runCost is what one run of the 3-block noop pipeline costs, counted on the running server.
type runCost struct {
	Runs int `json:"runs"`
	// JetStream messages stored per run, from the streams' last sequence numbers.
	CmdMessages   float64 `json:"cmd_messages"`
	WorkMessages  float64 `json:"work_messages"`
	EventMessages float64 `json:"event_messages"`
	Published     float64 `json:"published"` // all three
	Consumed      float64 `json:"consumed"`  // command and work messages, each delivered and acked
	// EventSubjects is how many distinct subjects a run adds to the event stream, which keeps
	// an index entry per subject for as long as it holds the subject's events.
	EventSubjects float64 `json:"event_subjects"`
	// EventBytes is how much of the event stream's byte limit (RUNYARD_EVENT_MAX_BYTES) a run
	// takes.
	EventBytes float64 `json:"event_bytes"`
	// Store writes per run, from the events: one per resource's creation (the run's insert,
	// and one transaction inserting all its block runs) and one per later event.
	DistinctEvents float64 `json:"distinct_events"`
	RunInserts     float64 `json:"run_inserts"`
	BlockInsertTx  float64 `json:"block_run_insert_tx"`
	RunUpdates     float64 `json:"run_updates"`
	BlockUpdates   float64 `json:"block_run_updates"`
	StoreWrites    float64 `json:"store_writes"`
	// The same count from the database file (rows and their versions), as a cross-check.
	StoreWritesFromFile float64 `json:"store_writes_from_file,omitempty"`
	FileCheck           string  `json:"file_check"`
}

// costEvent is the part of an event payload the count needs.
type costEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Sequence    int64  `json:"sequence"`
	PipelineRun *struct {
		ID int64 `json:"id"`
	} `json:"pipeline_run"`
	BlockRun *struct {
		ID            int64 `json:"id"`
		PipelineRunID int64 `json:"pipeline_run_id"`
	} `json:"block_run"`
}

// eventTally counts distinct events per resource.
type eventTally struct {
	mu        sync.Mutex
	seen      map[string]bool  // event ids
	perRes    map[string]int64 // "run-<id>" or "block-<id>" → distinct events
	runsWithB map[int64]bool   // runs that have block runs
	bad       int
}

func newEventTally() *eventTally {
	return &eventTally{seen: map[string]bool{}, perRes: map[string]int64{}, runsWithB: map[int64]bool{}}
}

func (t *eventTally) add(data []byte) {
	var ev costEvent
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := json.Unmarshal(data, &ev); err != nil || ev.ID == "" {
		t.bad++
		return
	}
	if t.seen[ev.ID] {
		return // the same state published twice
	}
	t.seen[ev.ID] = true
	switch {
	case ev.PipelineRun != nil:
		t.perRes[fmt.Sprintf("run-%d", ev.PipelineRun.ID)]++
	case ev.BlockRun != nil:
		t.perRes[fmt.Sprintf("block-%d", ev.BlockRun.ID)]++
		t.runsWithB[ev.BlockRun.PipelineRunID] = true
	default:
		t.bad++
	}
}

// writes turns the tally into store writes: each resource was created by one write (block
// runs of a run share one insert transaction) and changed once per further event.
func (t *eventTally) writes() (runInserts, blockInsertTx, runUpdates, blockUpdates, events int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, n := range t.perRes {
		events += n
		if key[:4] == "run-" {
			runInserts++
			runUpdates += n - 1
		} else {
			blockUpdates += n - 1
		}
	}
	return runInserts, int64(len(t.runsWithB)), runUpdates, blockUpdates, events
}

// countRunCosts runs n runs of a fresh 3-block noop pipeline one after the other and counts
// what they cost: JetStream messages from the streams' last sequences (the work-queue streams
// delete acked messages, so their message counts say nothing), store writes from the events.
func countRunCosts(ctx context.Context, srv *server, cl *apiClient, nc *nats.Conn, n int) (runCost, error) {
	const pipelineUUID = "bench_count"
	scheduleID, token, err := cl.createNoopSchedule(ctx, pipelineUUID)
	if err != nil {
		return runCost{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return runCost{}, fmt.Errorf("jetstream: %w", err)
	}
	tally := newEventTally()
	sub, err := nc.Subscribe("runyard.evt.default.*."+pipelineUUID+".>", func(m *nats.Msg) { tally.add(m.Data) })
	if err != nil {
		return runCost{}, fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	tr := newTracker()
	if err := tr.subscribe(nc, "default", pipelineUUID); err != nil {
		return runCost{}, err
	}
	defer tr.unsubscribe()

	streams := []string{natsbus.StreamCommands, natsbus.StreamWork, natsbus.StreamEvents}
	before, err := lastSeqs(ctx, js, streams)
	if err != nil {
		return runCost{}, err
	}
	for i := range n {
		res, err := cl.trigger(ctx, scheduleID, token)
		if err != nil {
			return runCost{}, err
		}
		if res.Status != http.StatusOK {
			return runCost{}, fmt.Errorf("trigger %d: HTTP %d", i, res.Status)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tres, err := tr.wait(wctx, res.RunID)
		cancel()
		if err != nil {
			return runCost{}, err
		}
		if tres.Status != "completed" {
			return runCost{}, fmt.Errorf("run %d ended %s", res.RunID, tres.Status)
		}
	}
	after, err := stableLastSeqs(ctx, js, streams, 5*time.Second)
	if err != nil {
		return runCost{}, err
	}
	// The last events may still be in flight to this client.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return runCost{}, fmt.Errorf("flush: %w", err)
	}

	f := float64(n)
	c := runCost{Runs: n}
	c.CmdMessages = float64(after[0]-before[0]) / f
	c.WorkMessages = float64(after[1]-before[1]) / f
	c.EventMessages = float64(after[2]-before[2]) / f
	c.Published = c.CmdMessages + c.WorkMessages + c.EventMessages
	c.Consumed = c.CmdMessages + c.WorkMessages
	c.EventSubjects = float64(after[5]-before[5]) / f
	c.EventBytes = float64(after[8]-before[8]) / f
	ri, bi, ru, bu, evs := tally.writes()
	c.DistinctEvents = float64(evs) / f
	c.RunInserts, c.BlockInsertTx, c.RunUpdates, c.BlockUpdates = float64(ri)/f, float64(bi)/f, float64(ru)/f, float64(bu)/f
	c.StoreWrites = c.RunInserts + c.BlockInsertTx + c.RunUpdates + c.BlockUpdates
	if tally.bad > 0 {
		return c, fmt.Errorf("%d undecodable events", tally.bad)
	}
	if w, err := storeWritesFromFile(ctx, filepath.Join(srv.dataDir, sqlitestore.FileName), pipelineUUID); err != nil {
		c.FileCheck = "unavailable: " + err.Error()
	} else {
		c.StoreWritesFromFile = float64(w) / f
		if w == int64(c.StoreWrites*f+0.5) {
			c.FileCheck = "agrees"
		} else {
			c.FileCheck = fmt.Sprintf("DISAGREES: %d writes from the file, %.0f from the events", w, c.StoreWrites*f)
		}
	}
	return c, nil
}

// lastSeqs reads each stream's last sequence number, then each one's number of distinct
// subjects, then each one's stored bytes.
func lastSeqs(ctx context.Context, js jetstream.JetStream, streams []string) ([]uint64, error) {
	out := make([]uint64, 3*len(streams))
	for i, name := range streams {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(ictx, name)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := s.Info(ictx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("stream %s info: %w", name, err)
		}
		out[i] = info.State.LastSeq
		out[len(streams)+i] = info.State.NumSubjects
		out[2*len(streams)+i] = info.State.Bytes
	}
	return out, nil
}

// stableLastSeqs reads the streams' last sequences until two readings 100 ms apart agree.
func stableLastSeqs(ctx context.Context, js jetstream.JetStream, streams []string, limit time.Duration) ([]uint64, error) {
	deadline := time.Now().Add(limit)
	prev, err := lastSeqs(ctx, js, streams)
	if err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		cur, err := lastSeqs(ctx, js, streams)
		if err != nil {
			return nil, err
		}
		same := true
		for i := range cur {
			same = same && cur[i] == prev[i]
		}
		if same {
			return cur, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("streams still growing after %s", limit)
		}
		prev = cur
	}
}

// storeWritesFromFile counts the write transactions that built pipeline's runs from the
// database itself, read-only: one insert per run, one insert transaction per run with block
// runs, and one update per version increment (records are inserted at version 0 and every
// update adds one).
func storeWritesFromFile(ctx context.Context, path, pipelineUUID string) (int64, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var runs, runVersions, blockTx, blockVersions sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT count(*), sum(version) FROM pipeline_runs WHERE pipeline_uuid = ?`, pipelineUUID).Scan(&runs, &runVersions); err != nil {
		return 0, fmt.Errorf("count runs: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT pipeline_run_id), sum(version) FROM block_runs WHERE pipeline_uuid = ?`, pipelineUUID).Scan(&blockTx, &blockVersions); err != nil {
		return 0, fmt.Errorf("count block runs: %w", err)
	}
	if !runs.Valid || runs.Int64 == 0 {
		return 0, errors.New("no runs in the file")
	}
	return runs.Int64 + runVersions.Int64 + blockTx.Int64 + blockVersions.Int64, nil
}

// bound is the best runs/s the dependencies allow, from the stack probe's rates and the
// per-run costs: each dependency's time per run is the sum of its operations' times.
type bound struct {
	JetStreamRunsPerSec float64 `json:"jetstream_runs_per_sec"`
	StoreRunsPerSec     float64 `json:"store_runs_per_sec"`
	RunsPerSec          float64 `json:"runs_per_sec"`
	LimitedBy           string  `json:"limited_by"`
	// SerialRunsPerSec is the bound if JetStream and the store could not work in parallel
	// (one core for both): 1 / (JetStream time + store time). For context only.
	SerialRunsPerSec float64 `json:"serial_runs_per_sec"`
}

func computeBound(p probeResult, c runCost) (bound, error) {
	rates := []float64{p.PublishPerSec, p.ConsumePerSec, p.RunInsertsPerSec, p.BlockInsertTxPerS, p.RunUpdatesPerSec, p.BlockUpdatesPerSec}
	for _, r := range rates {
		if r <= 0 {
			return bound{}, errors.New("a stack-probe rate is missing")
		}
	}
	jsTime := c.Published/p.PublishPerSec + c.Consumed/p.ConsumePerSec
	storeTime := c.RunInserts/p.RunInsertsPerSec + c.BlockInsertTx/p.BlockInsertTxPerS + c.RunUpdates/p.RunUpdatesPerSec + c.BlockUpdates/p.BlockUpdatesPerSec
	if jsTime <= 0 || storeTime <= 0 {
		return bound{}, errors.New("per-run costs are missing")
	}
	b := bound{JetStreamRunsPerSec: 1 / jsTime, StoreRunsPerSec: 1 / storeTime, SerialRunsPerSec: 1 / (jsTime + storeTime)}
	b.RunsPerSec, b.LimitedBy = b.JetStreamRunsPerSec, "jetstream"
	if b.StoreRunsPerSec < b.RunsPerSec {
		b.RunsPerSec, b.LimitedBy = b.StoreRunsPerSec, "store"
	}
	return b, nil
}
