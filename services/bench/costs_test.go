package main

import (
	"math"
	"testing"
)

func TestEventTallyCountsWrites(t *testing.T) {
	t.Parallel()
	tally := newEventTally()
	events := []string{
		// The run: created (v0), completed (v1); v1 published twice.
		`{"id":"pipeline_run-7-v0","type":"pipeline_run.status_changed","sequence":0,"pipeline_run":{"id":7}}`,
		`{"id":"pipeline_run-7-v1","type":"pipeline_run.status_changed","sequence":1,"pipeline_run":{"id":7}}`,
		`{"id":"pipeline_run-7-v1","type":"pipeline_run.status_changed","sequence":1,"pipeline_run":{"id":7}}`,
		// Two block runs: created, then two and one changes.
		`{"id":"block_run-1-v0","type":"block_run.status_changed","sequence":0,"block_run":{"id":1,"pipeline_run_id":7}}`,
		`{"id":"block_run-1-v1","type":"block_run.status_changed","sequence":1,"block_run":{"id":1,"pipeline_run_id":7}}`,
		`{"id":"block_run-1-v2","type":"block_run.status_changed","sequence":2,"block_run":{"id":1,"pipeline_run_id":7}}`,
		`{"id":"block_run-2-v0","type":"block_run.status_changed","sequence":0,"block_run":{"id":2,"pipeline_run_id":7}}`,
		`{"id":"block_run-2-v1","type":"block_run.status_changed","sequence":1,"block_run":{"id":2,"pipeline_run_id":7}}`,
	}
	for _, e := range events {
		tally.add([]byte(e))
	}
	tally.add([]byte(`not json`))
	ri, bi, ru, bu, evs := tally.writes()
	if ri != 1 || bi != 1 || ru != 1 || bu != 3 || evs != 7 {
		t.Fatalf("writes = run inserts %d, block insert tx %d, run updates %d, block updates %d, events %d", ri, bi, ru, bu, evs)
	}
	if tally.bad != 1 {
		t.Fatalf("bad = %d", tally.bad)
	}
}

func TestComputeBound(t *testing.T) {
	t.Parallel()
	p := probeResult{PublishPerSec: 20000, ConsumePerSec: 40000, RunInsertsPerSec: 5000, BlockInsertTxPerS: 5000, RunUpdatesPerSec: 5000, BlockUpdatesPerSec: 20000}
	c := runCost{Published: 17, Consumed: 4, RunInserts: 1, BlockInsertTx: 1, RunUpdates: 1, BlockUpdates: 8}
	b, err := computeBound(p, c)
	if err != nil {
		t.Fatal(err)
	}
	// JetStream: 17/20000 + 4/40000 = 0.00095 s per run; store: 3/5000 + 8/20000 = 0.001 s.
	if math.Abs(b.JetStreamRunsPerSec-1/0.00095) > 1e-6 || math.Abs(b.StoreRunsPerSec-1000) > 1e-6 {
		t.Fatalf("bound = %+v", b)
	}
	if math.Abs(b.SerialRunsPerSec-1/0.00195) > 1e-6 {
		t.Fatalf("serial bound = %v", b.SerialRunsPerSec)
	}
	if b.RunsPerSec != b.StoreRunsPerSec || b.LimitedBy != "store" {
		t.Fatalf("the smaller bound must win: %+v", b)
	}
	p.PublishPerSec = 0
	if _, err := computeBound(p, c); err == nil {
		t.Fatal("a missing probe rate must be an error")
	}
	p.PublishPerSec = 20000
	if _, err := computeBound(p, runCost{}); err == nil {
		t.Fatal("missing costs must be an error")
	}
}

func TestLogWatchCountsLevels(t *testing.T) {
	t.Parallel()
	l := newLogWatch(2, 3)
	_, _ = l.Write([]byte(`{"level":"warn","message":"event not published","error":"timeout"}` + "\n" + `{"level":"info","message":"x"}` + "\n"))
	_, _ = l.Write([]byte(`{"level":"warn","message":"event not pub`))
	_, _ = l.Write([]byte(`lished","error":"timeout"}` + "\nplain text line\n" + `{"level":"error","message":"boom"}` + "\n" + `{"level":"error","message":"other"}` + "\n"))
	s := l.summary()
	if s.Warnings != 2 || s.Errors != 2 {
		t.Fatalf("summary = %+v", s)
	}
	if len(s.First) != 2 || s.Counts["warn: event not published: timeout"] != 2 || s.Counts["error: boom"] != 1 {
		t.Fatalf("distinct = %+v", s)
	}
	if tail := l.tailText(); tail != "plain text line\n"+`{"level":"error","message":"boom"}`+"\n"+`{"level":"error","message":"other"}` {
		t.Fatalf("tail = %q", tail)
	}
}
