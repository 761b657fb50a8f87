package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// decodePayload decodes a command's payload; an undecodable one is answered, recorded and
// terminated, since no redelivery can fix it.
func (e *Executor) decodePayload(ctx context.Context, env command.Envelope, payload any) error {
	if err := json.Unmarshal(env.Payload, payload); err != nil {
		e.fail(ctx, env, http.StatusBadRequest, "undecodable payload")
		return natsbus.Permanent(fmt.Errorf("executor: decode %s %s: %w", env.Type, env.ID, err))
	}
	return nil
}

// loadCommandRun decodes a command's payload and loads the run it names, answering the
// command itself when the run does not exist in the command's space.
func (e *Executor) loadCommandRun(ctx context.Context, env command.Envelope, payload any, runID func() int64) (*run.PipelineRun, error) {
	if err := e.decodePayload(ctx, env, payload); err != nil {
		return nil, err
	}
	// A redelivered command that already took effect only answers again.
	if o, err := e.store.GetOutcome(ctx, env.ID); err == nil {
		if o.Status == command.ReplySucceeded {
			if r, err := e.store.GetRun(ctx, o.RunID); err == nil {
				return nil, e.replyRun(ctx, env, r)
			}
		}
		return nil, e.bus.Reply(command.Reply{CommandID: env.ID, Status: o.Status, Code: o.Code, Message: o.Message})
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	r, err := e.store.GetRun(ctx, runID())
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.Space != env.Space) {
		e.fail(ctx, env, http.StatusNotFound, fmt.Sprintf("pipeline run %d not found", runID()))
		return nil, nil
	}
	return r, err
}

// cancelRun cancels a run that has not finished: the run and its unfinished block runs
// become cancelled, then every executor is told to kill the run's running blocks. A run
// already finished is returned unchanged, as Mage does.
func (e *Executor) cancelRun(ctx context.Context, env command.Envelope) error {
	var p command.CancelRun
	r, err := e.loadCommandRun(ctx, env, &p, func() int64 { return p.PipelineRunID })
	if r == nil {
		return err
	}
	now := store.Now()
	cancelled, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if r.Status.Terminal() {
			return run.ErrNoChange
		}
		r.Status, r.CompletedAt = run.StatusCancelled, &now
		return nil
	})
	switch {
	case errors.Is(err, run.ErrNoChange):
		return e.succeed(ctx, env, cancelled)
	case err != nil:
		return err
	}
	e.emitRun(ctx, cancelled)
	if err := e.cancelBlocks(ctx, cancelled); err != nil {
		return err
	}
	e.finished(ctx, cancelled)
	zerolog.Ctx(ctx).Info().Int64(logging.KeyRunID, r.ID).Msg("run cancelled")
	return e.succeed(ctx, env, cancelled)
}

// cancelBlocks cancels the unfinished block runs of r and broadcasts the kill of its running
// blocks to every executor.
func (e *Executor) cancelBlocks(ctx context.Context, r *run.PipelineRun) error {
	brs, err := e.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return err
	}
	now := store.Now()
	for _, br := range brs {
		if br.Status.Terminal() {
			continue
		}
		upd, err := e.store.UpdateBlockRun(ctx, br.ID, func(b *run.BlockRun) error {
			if b.Status.Terminal() {
				return run.ErrNoChange
			}
			b.Status, b.CompletedAt = run.StatusCancelled, &now
			return nil
		})
		if errors.Is(err, run.ErrNoChange) {
			continue
		} else if err != nil {
			return err
		}
		e.emitBlockRun(ctx, r, upd)
	}
	if err := e.bus.Broadcast(natsbus.RunCancelSubject(r.ID), nil); err != nil {
		// The block runs are cancelled in the store; a worker that missed the broadcast
		// finds that out when its block ends.
		zerolog.Ctx(ctx).Warn().Err(err).Msg("cancel broadcast not sent")
	}
	return nil
}

// retryRun runs again the blocks of a finished run that did not complete (Mage's
// retry_blocks), or the block FromBlockUUID and everything downstream of it.
func (e *Executor) retryRun(ctx context.Context, env command.Envelope) error {
	var p command.RetryRun
	r, err := e.loadCommandRun(ctx, env, &p, func() int64 { return p.PipelineRunID })
	if r == nil {
		return err
	}
	if !r.Status.Terminal() {
		e.fail(ctx, env, http.StatusConflict, fmt.Sprintf("pipeline run %d is %s: only a finished run can be retried (cancel it first)", r.ID, r.Status))
		return nil
	}
	var reset []string
	if p.FromBlockUUID != "" {
		if _, ok := findBlock(r, p.FromBlockUUID); !ok {
			e.fail(ctx, env, http.StatusBadRequest, fmt.Sprintf("pipeline_run.from_block_uuid: block %q is not in pipeline run %d", p.FromBlockUUID, r.ID))
			return nil
		}
		reset = downstreamOf(r, p.FromBlockUUID)
	}
	brs, err := e.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return err
	}
	var todo []run.BlockRun
	for _, br := range brs {
		if (reset == nil && br.Status != run.StatusCompleted) || slices.Contains(reset, br.BlockUUID) {
			todo = append(todo, br)
		}
	}
	if len(todo) == 0 {
		return e.succeed(ctx, env, r) // a completed run has nothing to retry
	}
	for _, br := range todo {
		upd, err := e.store.UpdateBlockRun(ctx, br.ID, func(b *run.BlockRun) error {
			b.Status, b.StartedAt, b.CompletedAt, b.Metrics, b.Log = run.StatusInitial, nil, nil, nil, ""
			return nil
		})
		if err != nil {
			return err
		}
		e.emitBlockRun(ctx, r, upd)
	}
	now := store.Now()
	restarted, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if !r.Status.Terminal() {
			return run.ErrNoChange
		}
		r.Status, r.CompletedAt, r.LastStartedAt = run.StatusRunning, nil, &now
		if r.Settings.RunLimited() {
			// Back in line for a slot of its pipeline's run limits.
			r.Status, r.LastStartedAt = run.StatusInitial, nil
		}
		return nil
	})
	if err != nil && !errors.Is(err, run.ErrNoChange) {
		return err
	}
	if err == nil {
		e.emitRun(ctx, restarted)
		if restarted.Status == run.StatusInitial {
			err = e.admit(ctx, restarted)
		} else {
			err = e.advance(ctx, r.ID)
		}
		if err != nil {
			return err
		}
	}
	r, err = e.store.GetRun(ctx, r.ID)
	if err != nil {
		return err
	}
	return e.succeed(ctx, env, r)
}

// downstreamOf returns uuid and every block downstream of it in r's DAG.
func downstreamOf(r *run.PipelineRun, uuid string) []string {
	out := []string{uuid}
	for changed := true; changed; {
		changed = false
		for _, b := range r.Blocks {
			if slices.Contains(out, b.UUID) {
				continue
			}
			for _, up := range b.UpstreamBlocks {
				if slices.Contains(out, up) {
					out = append(out, b.UUID)
					changed = true
					break
				}
			}
		}
	}
	return out
}

// succeed records that a command took effect on run r, then answers it with the run.
func (e *Executor) succeed(ctx context.Context, env command.Envelope, r *run.PipelineRun) error {
	if err := e.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplySucceeded, Code: http.StatusOK, RunID: r.ID, CreatedAt: store.Now(),
	}); err != nil {
		return err
	}
	return e.replyRun(ctx, env, r)
}

// replyRun answers a command with run r and its block runs.
func (e *Executor) replyRun(ctx context.Context, env command.Envelope, r *run.PipelineRun) error {
	brs, err := e.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return err
	}
	result, err := json.Marshal(command.RunResult{Run: *r, BlockRuns: brs})
	if err != nil {
		return fmt.Errorf("executor: encode run result: %w", err)
	}
	if err := e.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplySucceeded, Code: http.StatusOK, Result: result}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent")
	}
	return nil
}
