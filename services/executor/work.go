package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
	// The checks run inside the update that takes the block, on the stored state: one read
	// of the block run, not a read and then the update's own.
	started := store.Now()
	var (
		seen  run.Status
		block pipeline.Block
	)
	br, err := e.store.UpdateBlockRun(ctx, w.BlockRunID, func(b *run.BlockRun) error {
		seen = b.Status
		if b.Status.Terminal() || r.Status.Terminal() {
			return run.ErrNoChange
		}
		takeOver := b.Status == run.StatusRunning && d.NumDelivered > 1
		if b.Status != run.StatusQueued && !takeOver {
			return run.ErrNoChange
		}
		var ok bool
		if block, ok = findBlock(r, b.BlockUUID); !ok {
			return fmt.Errorf("executor: block %q is not in run %d: %w", b.BlockUUID, r.ID, errBlockNotInRun)
		}
		b.Status, b.StartedAt = run.StatusRunning, &started
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return natsbus.Permanent(fmt.Errorf("executor: block run %d not found", w.BlockRunID))
	case errors.Is(err, errBlockNotInRun):
		return natsbus.Permanent(err)
	case errors.Is(err, run.ErrNoChange):
		if seen.Terminal() || r.Status.Terminal() {
			// Finished by an earlier delivery that may have died before advancing the run,
			// or the run ended meanwhile.
			return e.advance(ctx, r.ID)
		}
		return nil
	case err != nil:
		return err
	}
	e.emitBlockRun(ctx, r, br)

	res, runErr, attempts := e.execute(ctx, r, br, block)
	if ctx.Err() != nil {
		// This process is shutting down: hand the block back rather than record a failure
		// that is ours, not the block's.
		return fmt.Errorf("executor: block run %d interrupted: %w", br.ID, ctx.Err())
	}
	done := store.Now()
	br, err = e.store.UpdateBlockRun(ctx, br.ID, func(b *run.BlockRun) error {
		if b.Status != run.StatusRunning {
			return run.ErrNoChange // cancelled meanwhile
		}
		b.CompletedAt, b.Log = &done, res.Log
		b.Metrics = res.Metrics
		if b.Metrics == nil {
			b.Metrics = map[string]any{}
		}
		b.Metrics["attempts"] = attempts
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
		zerolog.Ctx(ctx).WithLevel(lvl).Str(logging.KeyBlock, br.BlockUUID).Str(logging.KeyStatus, string(br.Status)).Int("attempts", attempts).Msg("block run finished")
		e.emitBlockRun(ctx, r, br)
	}
	if r.Settings.BlockRunLimit > 0 {
		if err := e.release(ctx, run.RunGateKey(r.ID), br.ID); err != nil {
			return err
		}
	}
	return e.advance(ctx, r.ID)
}

// errBlockNotInRun marks a block run whose block is missing from its run's snapshot.
var errBlockNotInRun = errors.New("block not in run")

// errBlockTimeout is the cause given to a block's context when its block timeout passes.
var errBlockTimeout = errors.New("block timed out")

// execute runs a block with its retries, inside the block's timeout and its run's
// cancellation. It returns the last attempt's result, its error, and the number of attempts.
func (e *Executor) execute(ctx context.Context, r *run.PipelineRun, br *run.BlockRun, block pipeline.Block) (runner.Result, error, int) {
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer e.cancels.track(r.ID, br.ID, cancel)()
	if block.Timeout > 0 {
		var stop context.CancelFunc
		bctx, stop = context.WithTimeoutCause(bctx, seconds(block.Timeout), errBlockTimeout)
		defer stop()
	}
	spec, err := renderRunner(block.Runner, map[string]any{"variables": r.RuntimeVariables, "block_uuid": block.UUID, "pipeline_run_id": r.ID})
	if err != nil {
		// A template error is the same on every attempt: no retries.
		return runner.Result{}, fmt.Errorf("template: %w", err), 1
	}
	opts := runner.Options{LogLimit: e.cfg.LogLimit, Env: variableEnv(r.RuntimeVariables, r, br)}
	rc := pipeline.EffectiveRetry(r.Settings.RetryConfig, block.RetryConfig)
	var (
		res      runner.Result
		attempts int
		failures []string
	)
	for {
		attempts++
		res, err = e.runners.Run(bctx, spec, opts)
		if err == nil || bctx.Err() != nil || attempts > rc.Retries {
			break
		}
		failures = append(failures, err.Error())
		wait := rc.Backoff(attempts)
		zerolog.Ctx(ctx).Debug().Str(logging.KeyBlock, block.UUID).Int("attempt", attempts).Dur("retry_in", wait).Err(err).Msg("block attempt failed")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-bctx.Done():
		}
		t.Stop()
		if bctx.Err() != nil {
			break
		}
	}
	if len(failures) > 0 {
		if res.Metrics == nil {
			res.Metrics = map[string]any{}
		}
		res.Metrics["attempt_errors"] = failures
	}
	if err != nil || bctx.Err() != nil {
		switch cause := context.Cause(bctx); {
		case errors.Is(cause, errBlockTimeout):
			err = fmt.Errorf("block timed out after %s (block timeout, %d attempts)", seconds(block.Timeout), attempts)
		case errors.Is(cause, errRunCancelled):
			err = errRunCancelled
		}
	}
	return res, err, attempts
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

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
