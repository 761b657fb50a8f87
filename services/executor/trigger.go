package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// handleCommand decodes a command envelope and dispatches it by type.
func (e *Executor) handleCommand(ctx context.Context, d natsbus.Delivery) error {
	var env command.Envelope
	if err := json.Unmarshal(d.Data, &env); err != nil {
		return natsbus.Permanent(fmt.Errorf("executor: undecodable command on %s: %w", d.Subject, err))
	}
	log := e.log.With().Str(logging.KeyCommandID, env.ID).Str(logging.KeyCommand, env.Type).Str(logging.KeySpace, env.Space).Logger()
	ctx = log.WithContext(ctx)
	switch env.Type {
	case command.TypeTriggerRun:
		return e.trigger(ctx, env)
	case command.TypeCancelRun:
		return e.cancelRun(ctx, env)
	case command.TypeRetryRun:
		return e.retryRun(ctx, env)
	case command.TypeStartBackfill, command.TypeCancelBackfill:
		return e.handleBackfillCommand(ctx, env)
	case command.TypeCreateComment, command.TypeUpdateComment, command.TypeDeleteComment:
		return e.handleCommentCommand(ctx, env)
	default:
		e.fail(ctx, env, http.StatusBadRequest, fmt.Sprintf("unknown command type %q", env.Type))
		return natsbus.Permanent(fmt.Errorf("executor: unknown command type %q", env.Type))
	}
}

// trigger creates a run for a TriggerRun command. A redelivered command finds the run its
// first delivery made (unique command id) and only completes what that delivery left undone.
func (e *Executor) trigger(ctx context.Context, env command.Envelope) error {
	var p command.TriggerRun
	if err := e.decodePayload(ctx, env, &p); err != nil {
		return err
	}
	r, err := e.store.GetRunByCommand(ctx, env.ID)
	switch {
	case err == nil:
		return e.resume(ctx, env, r)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	pl, err := e.store.GetPipeline(ctx, env.Space, p.PipelineUUID)
	if errors.Is(err, store.ErrNotFound) {
		e.fail(ctx, env, http.StatusNotFound, fmt.Sprintf("pipeline %q not found", p.PipelineUUID))
		return nil
	} else if err != nil {
		return err
	}
	sc, err := e.triggerSchedule(ctx, env, p)
	if errors.Is(err, store.ErrNotFound) {
		e.fail(ctx, env, http.StatusNotFound, fmt.Sprintf("pipeline schedule %d not found", p.ScheduleID))
		return nil
	} else if err != nil {
		return err
	}

	id, err := e.runIDs.One(ctx)
	if err != nil {
		return err
	}
	if p.RunType == "" {
		p.RunType = run.TypeAPI
	}
	now := store.Now()
	execDate := now
	if p.ExecutionDate != nil {
		execDate = p.ExecutionDate.UTC()
	}
	vars := map[string]any{}
	for k, v := range p.Variables {
		vars[k] = v
	}
	// Mage gives every run an execution partition: schedule id and execution date.
	vars["execution_partition"] = fmt.Sprintf("%d/%s_%06d", sc.ID, execDate.Format("20060102T150405"), execDate.Nanosecond()/1000)
	r = &run.PipelineRun{
		ID: id, Space: env.Space, PipelineUUID: pl.UUID, PipelineScheduleID: sc.ID, CommandID: env.ID,
		ExecutionDate: execDate, Status: run.StatusRunning, StartedAt: &now, LastStartedAt: &now,
		Variables: vars, EventVariables: p.EventVariables, ExecutorType: "local_python", RunType: p.RunType, BackfillID: p.BackfillID,
		Blocks: pl.Blocks, Settings: runSettings(pl, sc), Note: p.Note, CreatedAt: now, UpdatedAt: now,
	}
	r.RuntimeVariables = runtimeVariables(pl, sc, r)
	if skip, _ := sc.Settings["skip_if_previous_running"].(bool); skip {
		busy, err := e.scheduleBusy(ctx, sc.Space, sc.ID)
		if err != nil {
			return err
		}
		if busy {
			// Mage's behaviour for time schedules, applied to every schedule: the run is
			// recorded, and cancelled at once, so the skip is visible.
			r.Status, r.CompletedAt = run.StatusCancelled, &now
			r.Metrics = map[string]any{"skipped": "a previous run of this schedule is still running (settings.skip_if_previous_running)"}
		}
	}
	if r.Status == run.StatusRunning && r.Settings.RunLimited() {
		// The run waits as initial until admit gives it a slot.
		r.Status, r.StartedAt, r.LastStartedAt = run.StatusInitial, nil, nil
	}
	if len(r.Blocks) == 0 && r.Status == run.StatusRunning {
		// Nothing to do: Mage completes a run without block runs at once.
		r.Status, r.CompletedAt = run.StatusCompleted, &now
	}
	if err := e.store.CreateRun(ctx, r); errors.Is(err, store.ErrDuplicate) {
		// A concurrent delivery of the same command won the insert.
		existing, gerr := e.store.GetRunByCommand(ctx, env.ID)
		if gerr != nil {
			return gerr
		}
		return e.resume(ctx, env, existing)
	} else if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Debug().Int64(logging.KeyRunID, r.ID).Msg("run created")
	return e.resume(ctx, env, r)
}

// triggerSchedule returns the schedule a trigger names, or for schedule id 0 (a trigger of
// the pipeline itself) an empty schedule of the pipeline: no variables, no settings, and
// schedule id 0 as the run-limit group of such runs. A schedule of another space or pipeline
// is ErrNotFound.
func (e *Executor) triggerSchedule(ctx context.Context, env command.Envelope, p command.TriggerRun) (*schedule.Schedule, error) {
	if p.ScheduleID == 0 {
		return &schedule.Schedule{Space: env.Space, PipelineUUID: p.PipelineUUID}, nil
	}
	sc, err := e.store.GetSchedule(ctx, p.ScheduleID)
	if err != nil {
		return nil, err
	}
	if sc.Space != env.Space || sc.PipelineUUID != p.PipelineUUID {
		return nil, fmt.Errorf("executor: schedule %d is not of pipeline %s: %w", p.ScheduleID, p.PipelineUUID, store.ErrNotFound)
	}
	return sc, nil
}

// resume makes sure run r has all its block runs, answers the command, announces the run and
// hands its ready blocks to workers. Every step is idempotent, so it is also the path of a
// redelivered command.
func (e *Executor) resume(ctx context.Context, env command.Envelope, r *run.PipelineRun) error {
	defer e.backfillRunResumed(ctx, r)
	brs, err := e.ensureBlockRuns(ctx, r)
	if err != nil {
		return err
	}
	result, err := json.Marshal(command.RunResult{Run: *r, BlockRuns: brs})
	if err != nil {
		return fmt.Errorf("executor: encode trigger result: %w", err)
	}
	if err := e.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplySucceeded, Code: http.StatusOK, Result: result}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent; the gateway falls back to the store")
	}
	e.emitRun(ctx, r)
	for i := range brs {
		e.emitBlockRun(ctx, r, &brs[i])
	}
	for i := range brs {
		if brs[i].Status == run.StatusQueued {
			if err := e.dispatch(ctx, &brs[i]); err != nil {
				return err
			}
		}
	}
	switch {
	case r.Status == run.StatusInitial:
		return e.admit(ctx, r)
	case r.Status == run.StatusRunning && r.Settings.BlockRunLimit > 0:
		return e.advance(ctx, r.ID) // roots are queued through the block gate
	}
	return nil
}

// ensureBlockRuns creates the block runs r lacks (all of them for a new run; those a crash
// left out for a redelivered one) and returns all of r's block runs.
func (e *Executor) ensureBlockRuns(ctx context.Context, r *run.PipelineRun) ([]run.BlockRun, error) {
	if len(r.Blocks) == 0 || r.Status == run.StatusCancelled && r.Metrics["skipped"] != nil {
		return []run.BlockRun{}, nil
	}
	existing, err := e.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if len(existing) == len(r.Blocks) {
		return existing, nil
	}
	have := make(map[string]bool, len(existing))
	for _, br := range existing {
		have[br.BlockUUID] = true
	}
	ids, err := e.blkIDs.Next(ctx, len(r.Blocks)-len(existing))
	if err != nil {
		return nil, err
	}
	now := store.Now()
	var missing []run.BlockRun
	for _, b := range r.Blocks {
		if have[b.UUID] {
			continue
		}
		st := run.StatusInitial
		if len(b.UpstreamBlocks) == 0 && r.Status == run.StatusRunning && r.Settings.BlockRunLimit == 0 {
			st = run.StatusQueued
		}
		missing = append(missing, run.BlockRun{
			ID: ids[len(missing)], Space: r.Space, PipelineRunID: r.ID, PipelineScheduleID: r.PipelineScheduleID,
			PipelineUUID: r.PipelineUUID, BlockUUID: b.UUID, Status: st, CreatedAt: now, UpdatedAt: now,
		})
	}
	if err := e.store.CreateBlockRuns(ctx, missing); err != nil {
		return nil, err
	}
	return e.store.BlockRunsOf(ctx, r.ID)
}

// fail records and answers a command that cannot succeed; retrying it would not help.
func (e *Executor) fail(ctx context.Context, env command.Envelope, code int, msg string) {
	log := zerolog.Ctx(ctx)
	log.Info().Int("code", code).Str("reason", msg).Msg("command failed")
	err := e.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplyFailed, Code: code, Message: msg, CreatedAt: store.Now(),
	})
	if err != nil {
		log.Warn().Err(err).Msg("command outcome not stored")
	}
	if err := e.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplyFailed, Code: code, Message: msg}); err != nil {
		log.Warn().Err(err).Msg("reply not sent")
	}
}

// runSettings takes a run's execution settings from its pipeline and schedule.
func runSettings(pl *pipeline.Pipeline, sc *schedule.Schedule) run.Settings {
	s := run.Settings{RetryConfig: pl.RetryConfig}
	s.AllowBlocksToFail, _ = sc.Settings["allow_blocks_to_fail"].(bool)
	s.Timeout, _ = sc.Settings["timeout"].(float64)
	if st, _ := sc.Settings["timeout_status"].(string); st == string(run.StatusCancelled) {
		s.TimeoutStatus = run.StatusCancelled
	} else {
		s.TimeoutStatus = run.StatusFailed
	}
	if cc := pl.ConcurrencyConfig; cc != nil {
		s.BlockRunLimit = cc.BlockRunLimit
		s.PipelineRunLimit = cc.PipelineRunLimit
		s.PipelineRunLimitAllTriggers = cc.PipelineRunLimitAllTriggers
		s.SkipWhenLimited = cc.OnPipelineRunLimitReached == "skip"
	}
	// A schedule's own limit overrides the pipeline's per-trigger limit, as in Mage.
	if n, ok := sc.Settings["pipeline_run_limit"].(float64); ok && n >= 0 {
		s.PipelineRunLimit = int(n)
	}
	return s
}

// scheduleBusy reports whether the schedule has a run that has not finished.
func (e *Executor) scheduleBusy(ctx context.Context, space string, scheduleID int64) (bool, error) {
	for _, st := range []run.Status{run.StatusRunning, run.StatusInitial} {
		_, n, err := e.store.ListRuns(ctx, store.RunFilter{Space: space, ScheduleID: scheduleID, Status: st}, store.Page{Limit: 1})
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}
