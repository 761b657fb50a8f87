package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/services/executor/runner"
)

// blockWork is the message that hands one queued block run to a worker.
type blockWork struct {
	Space      string `json:"space"`
	RunID      int64  `json:"pipeline_run_id"`
	BlockRunID int64  `json:"block_run_id"`
}

// dispatch hands a queued block run to a worker. The message id includes the block run's
// version, so re-dispatching the same queued state is dropped by the server while a later
// re-queue (a retry) is not.
func (e *Executor) dispatch(ctx context.Context, br *run.BlockRun) error {
	msgID := fmt.Sprintf("block-%d-v%d", br.ID, br.Version)
	return e.bus.PublishWork(ctx, natsbus.SubjectBlockWork, msgID, blockWork{Space: br.Space, RunID: br.PipelineRunID, BlockRunID: br.ID})
}

// handleWork executes one block run: queued → running → completed | failed, then advances
// its run. Delivery is at least once: a block run no longer queued was taken by an earlier
// delivery, except that a redelivered message finding it running means the worker that took
// it died (a live worker keeps its message in progress), so the block runs again.
func (e *Executor) handleWork(ctx context.Context, d natsbus.Delivery) error {
	var w blockWork
	if err := json.Unmarshal(d.Data, &w); err != nil {
		return natsbus.Permanent(fmt.Errorf("executor: undecodable work: %w", err))
	}
	log := e.log.With().Str(logging.KeySpace, w.Space).Int64(logging.KeyRunID, w.RunID).Int64(logging.KeyBlockRun, w.BlockRunID).Logger()
	ctx = log.WithContext(ctx)

	r, err := e.store.GetRun(ctx, w.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return natsbus.Permanent(fmt.Errorf("executor: run %d of block run %d not found", w.RunID, w.BlockRunID))
	} else if err != nil {
		return err
	}
	br, err := e.store.GetBlockRun(ctx, w.BlockRunID)
	if errors.Is(err, store.ErrNotFound) {
		return natsbus.Permanent(fmt.Errorf("executor: block run %d not found", w.BlockRunID))
	} else if err != nil {
		return err
	}
	if br.Status.Terminal() {
		// Finished by an earlier delivery that may have died before advancing the run.
		return e.advance(ctx, r.ID)
	}
	if r.Status.Terminal() {
		return e.advance(ctx, r.ID)
	}
	takeOver := br.Status == run.StatusRunning && d.NumDelivered > 1
	if br.Status != run.StatusQueued && !takeOver {
		return nil
	}
	block, ok := findBlock(r, br.BlockUUID)
	if !ok {
		return natsbus.Permanent(fmt.Errorf("executor: block %q is not in run %d", br.BlockUUID, r.ID))
	}

	started := store.Now()
	br, err = e.store.UpdateBlockRun(ctx, br.ID, func(b *run.BlockRun) error {
		if b.Status != run.StatusQueued && !(takeOver && b.Status == run.StatusRunning) {
			return run.ErrNoChange
		}
		b.Status, b.StartedAt = run.StatusRunning, &started
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	e.emitBlockRun(ctx, r, br)

	res, runErr := e.runners.Run(ctx, block.Runner, runner.Options{LogLimit: e.cfg.LogLimit})
	if runErr != nil && ctx.Err() != nil {
		// This process is shutting down: hand the block back rather than record a failure
		// that is ours, not the block's.
		return fmt.Errorf("executor: block run %d interrupted: %w", br.ID, ctx.Err())
	}
	done := store.Now()
	br, err = e.store.UpdateBlockRun(context.WithoutCancel(ctx), br.ID, func(b *run.BlockRun) error {
		if b.Status != run.StatusRunning {
			return run.ErrNoChange // cancelled meanwhile
		}
		b.CompletedAt, b.Log = &done, res.Log
		b.Metrics = res.Metrics
		if b.Metrics == nil {
			b.Metrics = map[string]any{}
		}
		if runErr != nil {
			b.Status = run.StatusFailed
			b.Metrics["error"] = map[string]any{"message": runErr.Error(), "error": runErr.Error(), "errors": lastLines(res.Log, 20)}
		} else {
			b.Status = run.StatusCompleted
		}
		return nil
	})
	switch {
	case errors.Is(err, run.ErrNoChange):
	case err != nil:
		return err
	default:
		lvl := zerolog.DebugLevel
		if br.Status == run.StatusFailed {
			lvl = zerolog.InfoLevel
		}
		zerolog.Ctx(ctx).WithLevel(lvl).Str(logging.KeyBlock, br.BlockUUID).Str(logging.KeyStatus, string(br.Status)).Msg("block run finished")
		e.emitBlockRun(ctx, r, br)
	}
	return e.advance(context.WithoutCancel(ctx), r.ID)
}

func findBlock(r *run.PipelineRun, uuid string) (pipeline.Block, bool) {
	for _, b := range r.Blocks {
		if b.UUID == uuid {
			return b, true
		}
	}
	return pipeline.Block{}, false
}

func lastLines(s string, n int) []string {
	lines := []string{}
	end := len(s)
	for end > 0 && len(lines) < n {
		for end > 0 && s[end-1] == '\n' {
			end--
		}
		start := end
		for start > 0 && s[start-1] != '\n' {
			start--
		}
		if start < end {
			lines = append([]string{s[start:end]}, lines...)
		}
		end = start
	}
	return lines
}
