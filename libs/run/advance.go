package run

import "github.com/runyard/runyard/libs/pipeline"

// Plan is what must happen next in a run, computed from a snapshot of its block runs.
// Applying a plan is idempotent when every transition is written as a conditional update
// from the status the plan saw, so several executors may compute and apply plans for the
// same run concurrently.
type Plan struct {
	Queue          []BlockRun // initial → queued, then handed to a worker
	UpstreamFailed []BlockRun // initial → upstream_failed
	Cancel         []BlockRun // initial|queued|running → cancelled (fail-fast)
	// RunStatus is the run's terminal status once the plan is applied, or "" while work remains.
	RunStatus Status
}

// Advance computes the next plan for a run whose DAG is blocks and whose block runs are brs.
//
// A block is queued when every upstream block completed. A block with a failed, cancelled or
// upstream_failed upstream becomes upstream_failed. When a block has failed and the run does
// not allow blocks to fail, the run fails at once and its other unfinished blocks are
// cancelled. Otherwise the run ends when every block run is terminal: completed when all
// completed, failed when any did not.
func Advance(blocks []pipeline.Block, brs []BlockRun, s Settings) Plan {
	status := make(map[string]Status, len(brs))
	byUUID := make(map[string]BlockRun, len(brs))
	for _, br := range brs {
		status[br.BlockUUID] = br.Status
		byUUID[br.BlockUUID] = br
	}
	var p Plan
	anyFailed := false
	for _, br := range brs {
		if br.Status == StatusFailed {
			anyFailed = true
		}
	}
	// upstream_failed spreads downstream to a fixed point; blocks are few, so a simple
	// iteration over the list costs less than building a topological order.
	for changed := true; changed; {
		changed = false
		for _, b := range blocks {
			if status[b.UUID] != StatusInitial {
				continue
			}
			for _, up := range b.UpstreamBlocks {
				if st := status[up]; st == StatusFailed || st == StatusUpstreamFailed || st == StatusCancelled {
					status[b.UUID] = StatusUpstreamFailed
					p.UpstreamFailed = append(p.UpstreamFailed, byUUID[b.UUID])
					changed = true
					break
				}
			}
		}
	}
	if anyFailed && !s.AllowBlocksToFail {
		for _, b := range blocks {
			switch status[b.UUID] {
			case StatusInitial, StatusQueued, StatusRunning:
				p.Cancel = append(p.Cancel, byUUID[b.UUID])
			}
		}
		p.RunStatus = StatusFailed
		return p
	}
	allTerminal, allCompleted := true, true
	for _, b := range blocks {
		st := status[b.UUID]
		if st != StatusCompleted {
			allCompleted = false
		}
		if !st.Terminal() {
			allTerminal = false
		}
		if st != StatusInitial {
			continue
		}
		ready := true
		for _, up := range b.UpstreamBlocks {
			ready = ready && status[up] == StatusCompleted
		}
		if ready {
			p.Queue = append(p.Queue, byUUID[b.UUID])
		}
	}
	switch {
	case allCompleted:
		p.RunStatus = StatusCompleted
	case allTerminal:
		p.RunStatus = StatusFailed
	}
	return p
}
