package run_test

import (
	"cmp"
	"slices"
	"testing"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
)

func block(uuid string, ups ...string) pipeline.Block {
	if ups == nil {
		ups = []string{}
	}
	return pipeline.Block{UUID: uuid, UpstreamBlocks: ups, Runner: pipeline.Runner{Kind: pipeline.KindNoop}}
}

// diamond is a -> b, a -> c, b -> d, c -> d.
var diamond = []pipeline.Block{
	block("a"),
	block("b", "a"),
	block("c", "a"),
	block("d", "b", "c"),
}

// chainAndBranch is a chain a -> b -> c and an independent branch x -> y.
var chainAndBranch = []pipeline.Block{
	block("a"),
	block("b", "a"),
	block("c", "b"),
	block("x"),
	block("y", "x"),
}

// chainReversed is the chain a -> b -> c listed downstream first, so that upstream_failed
// has to spread against list order.
var chainReversed = []pipeline.Block{
	block("c", "b"),
	block("b", "a"),
	block("a"),
}

const (
	initial   = run.StatusInitial
	queued    = run.StatusQueued
	running   = run.StatusRunning
	completed = run.StatusCompleted
	failed    = run.StatusFailed
	cancelled = run.StatusCancelled
	upFailed  = run.StatusUpstreamFailed
)

// blockRunID gives each block run a recognisable id, so that the test can check the plan
// carries the caller's block runs and not zero values.
func blockRunID(uuid string) int64 {
	var id int64
	for _, r := range uuid {
		id = id*256 + int64(r)
	}
	return id
}

// blockRuns builds block runs from uuid/status pairs.
func blockRuns(st map[string]run.Status) []run.BlockRun {
	brs := make([]run.BlockRun, 0, len(st))
	for uuid, s := range st {
		brs = append(brs, run.BlockRun{ID: blockRunID(uuid), PipelineRunID: 7, BlockUUID: uuid, Status: s})
	}
	slices.SortFunc(brs, func(a, b run.BlockRun) int { return cmp.Compare(a.ID, b.ID) })
	return brs
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		blocks         []pipeline.Block
		status         map[string]run.Status
		allowFail      bool
		queue          []string
		upstreamFailed []string
		cancel         []string
		runStatus      run.Status
	}{
		{
			name:   "fresh run queues only the root",
			blocks: diamond,
			status: map[string]run.Status{"a": initial, "b": initial, "c": initial, "d": initial},
			queue:  []string{"a"},
		},
		{
			name:   "fresh run queues every root",
			blocks: chainAndBranch,
			status: map[string]run.Status{"a": initial, "b": initial, "c": initial, "x": initial, "y": initial},
			queue:  []string{"a", "x"},
		},
		{
			name:   "queued root is not queued again",
			blocks: diamond,
			status: map[string]run.Status{"a": queued, "b": initial, "c": initial, "d": initial},
		},
		{
			name:   "running root blocks its downstream",
			blocks: diamond,
			status: map[string]run.Status{"a": running, "b": initial, "c": initial, "d": initial},
		},
		{
			name:   "completed root queues both branches",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": initial, "c": initial, "d": initial},
			queue:  []string{"b", "c"},
		},
		{
			name:   "already queued branch is not queued again",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": queued, "c": initial, "d": initial},
			queue:  []string{"c"},
		},
		{
			name:   "join waits while one upstream is running",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": completed, "c": running, "d": initial},
		},
		{
			name:   "join waits while one upstream is queued",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": queued, "c": completed, "d": initial},
		},
		{
			name:   "join queued when both upstreams completed",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": completed, "c": completed, "d": initial},
			queue:  []string{"d"},
		},
		{
			name:   "join running: nothing to do",
			blocks: diamond,
			status: map[string]run.Status{"a": completed, "b": completed, "c": completed, "d": running},
		},
		{
			name:      "all completed completes the run",
			blocks:    diamond,
			status:    map[string]run.Status{"a": completed, "b": completed, "c": completed, "d": completed},
			runStatus: completed,
		},
		{
			name:      "all completed completes the run when blocks may fail",
			blocks:    diamond,
			status:    map[string]run.Status{"a": completed, "b": completed, "c": completed, "d": completed},
			allowFail: true,
			runStatus: completed,
		},
		{
			name:           "fail fast: failed branch fails the run, join upstream_failed, sibling cancelled",
			blocks:         diamond,
			status:         map[string]run.Status{"a": completed, "b": failed, "c": running, "d": initial},
			upstreamFailed: []string{"d"},
			cancel:         []string{"c"},
			runStatus:      failed,
		},
		{
			name:           "fail fast: failed root makes every downstream upstream_failed",
			blocks:         diamond,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "d": initial},
			upstreamFailed: []string{"b", "c", "d"},
			runStatus:      failed,
		},
		{
			name:           "fail fast: independent initial, queued and running blocks cancelled",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "x": queued, "y": initial},
			upstreamFailed: []string{"b", "c"},
			cancel:         []string{"x", "y"},
			runStatus:      failed,
		},
		{
			name:           "fail fast: running block cancelled, completed block left alone",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": completed, "b": failed, "c": initial, "x": completed, "y": running},
			upstreamFailed: []string{"c"},
			cancel:         []string{"y"},
			runStatus:      failed,
		},
		{
			name:           "blocks may fail: chain becomes upstream_failed transitively, branch keeps running",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "x": running, "y": initial},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
		},
		{
			name:           "blocks may fail: queued branch is neither cancelled nor re-queued",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "x": queued, "y": initial},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
		},
		{
			name:           "blocks may fail: root of independent branch is still queued",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "x": initial, "y": initial},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
			queue:          []string{"x"},
		},
		{
			name:      "blocks may fail: branch advances after upstream_failed was applied",
			blocks:    chainAndBranch,
			status:    map[string]run.Status{"a": failed, "b": upFailed, "c": upFailed, "x": completed, "y": initial},
			allowFail: true,
			queue:     []string{"y"},
		},
		{
			name:      "blocks may fail: run fails once every block is terminal",
			blocks:    chainAndBranch,
			status:    map[string]run.Status{"a": failed, "b": upFailed, "c": upFailed, "x": completed, "y": completed},
			allowFail: true,
			runStatus: failed,
		},
		{
			name:           "blocks may fail: run fails with the plan that makes the last blocks upstream_failed",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial, "x": completed, "y": completed},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
			runStatus:      failed,
		},
		{
			name:           "blocks may fail: upstream_failed spreads against list order",
			blocks:         chainReversed,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
			runStatus:      failed,
		},
		{
			name:           "fail fast: upstream_failed spreads against list order",
			blocks:         chainReversed,
			status:         map[string]run.Status{"a": failed, "b": initial, "c": initial},
			upstreamFailed: []string{"b", "c"},
			runStatus:      failed,
		},
		{
			name:           "blocks may fail: cancelled upstream makes downstream upstream_failed",
			blocks:         chainAndBranch,
			status:         map[string]run.Status{"a": cancelled, "b": initial, "c": initial, "x": completed, "y": running},
			allowFail:      true,
			upstreamFailed: []string{"b", "c"},
		},
		{
			name:           "blocks may fail: join with one failed upstream is upstream_failed even while the other runs",
			blocks:         diamond,
			status:         map[string]run.Status{"a": completed, "b": failed, "c": running, "d": initial},
			allowFail:      true,
			upstreamFailed: []string{"d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := run.Advance(tt.blocks, blockRuns(tt.status), run.Settings{AllowBlocksToFail: tt.allowFail})
			checkBlockRuns(t, "Queue", p.Queue, tt.queue)
			checkBlockRuns(t, "UpstreamFailed", p.UpstreamFailed, tt.upstreamFailed)
			checkBlockRuns(t, "Cancel", p.Cancel, tt.cancel)
			if p.RunStatus != tt.runStatus {
				t.Errorf("RunStatus = %q, want %q", p.RunStatus, tt.runStatus)
			}
		})
	}
}

// checkBlockRuns checks that got holds exactly the block runs of the want uuids, each once,
// carrying the caller's block run (its id), in any order.
func checkBlockRuns(t *testing.T, what string, got []run.BlockRun, want []string) {
	t.Helper()
	uuids := make([]string, len(got))
	for i, br := range got {
		uuids[i] = br.BlockUUID
		if br.ID != blockRunID(br.BlockUUID) || br.PipelineRunID != 7 {
			t.Errorf("%s[%d] = %+v: not the block run passed in", what, i, br)
		}
	}
	slices.Sort(uuids)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(uuids, want) {
		t.Errorf("%s = %v, want %v", what, uuids, want)
	}
}

func TestStatusTerminal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status run.Status
		want   bool
	}{
		{run.StatusInitial, false},
		{run.StatusQueued, false},
		{run.StatusRunning, false},
		{run.StatusCompleted, true},
		{run.StatusFailed, true},
		{run.StatusCancelled, true},
		{run.StatusUpstreamFailed, true},
		{"", false},
		{"bogus", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			t.Parallel()
			if got := tt.status.Terminal(); got != tt.want {
				t.Errorf("Status(%q).Terminal() = %v, want %v", tt.status, got, tt.want)
			}
		})
	}
}
