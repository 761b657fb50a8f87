package executor

import (
	"context"
	"errors"
	"sync"
)

// errRunCancelled is the cause given to a block's context when its run is cancelled.
var errRunCancelled = errors.New("the pipeline run was cancelled")

// cancels tracks the blocks this process is running, by run, so that a cancel broadcast
// can stop them here.
type cancels struct {
	mu   sync.Mutex
	runs map[int64]map[int64]context.CancelCauseFunc
}

func newCancels() *cancels { return &cancels{runs: map[int64]map[int64]context.CancelCauseFunc{}} }

// track registers a running block run and returns its untrack.
func (c *cancels) track(runID, blockRunID int64, cancel context.CancelCauseFunc) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs[runID] == nil {
		c.runs[runID] = map[int64]context.CancelCauseFunc{}
	}
	c.runs[runID][blockRunID] = cancel
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.runs[runID], blockRunID)
		if len(c.runs[runID]) == 0 {
			delete(c.runs, runID)
		}
	}
}

// cancelRun stops every block of run id running in this process.
func (c *cancels) cancelRun(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cancel := range c.runs[id] {
		cancel(errRunCancelled)
	}
}
