package executor

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/schedule"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// advance applies the next plan for run id: it marks blocks upstream_failed or cancelled,
// queues and dispatches blocks whose upstreams completed, and ends the run when its plan says
// so. Each transition is a conditional update from the status the plan saw, so concurrent
// advancers of one run (two blocks finishing at once in two executors) never apply a
// transition twice; the last block run to finish always sees every other's result, because
// it reads after its own write.
func (e *Executor) advance(ctx context.Context, id int64) error {
	r, err := e.store.GetRun(ctx, id)
	if err != nil {
		return err
	}
	if r.Status.Terminal() {
		return nil
	}
	brs, err := e.store.BlockRunsOf(ctx, id)
	if err != nil {
		return err
	}
	plan := run.Advance(r.Blocks, brs, r.Settings)
	now := store.Now()
	transition := func(br run.BlockRun, from []run.Status, to run.Status) (*run.BlockRun, error) {
		upd, err := e.store.UpdateBlockRun(ctx, br.ID, func(b *run.BlockRun) error {
			if !containsStatus(from, b.Status) {
				return run.ErrNoChange
			}
			b.Status = to
			if to.Terminal() {
				b.CompletedAt = &now
			}
			return nil
		})
		if errors.Is(err, run.ErrNoChange) {
			return nil, nil
		}
		if err == nil {
			e.emitBlockRun(ctx, r, upd)
		}
		return upd, err
	}
	for _, br := range plan.UpstreamFailed {
		if _, err := transition(br, []run.Status{run.StatusInitial}, run.StatusUpstreamFailed); err != nil {
			return err
		}
	}
	killRunning := false
	for _, br := range plan.Cancel {
		upd, err := transition(br, []run.Status{run.StatusInitial, run.StatusQueued, run.StatusRunning}, run.StatusCancelled)
		if err != nil {
			return err
		}
		killRunning = killRunning || upd != nil
	}
	if killRunning {
		// Fail-fast cancelled blocks that may be running somewhere (a queued one may have been
		// taken since the plan was made): stop their processes too.
		if err := e.bus.Broadcast(natsbus.RunCancelSubject(r.ID), nil); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("cancel broadcast not sent")
		}
	}
	for _, br := range plan.Queue {
		if r.Settings.BlockRunLimit > 0 {
			ok, err := e.claimBlockSlot(ctx, r, br.ID)
			if err != nil {
				return err
			}
			if !ok {
				break // the block that frees a slot advances the run again
			}
		}
		upd, err := transition(br, []run.Status{run.StatusInitial}, run.StatusQueued)
		if err != nil {
			return err
		}
		if upd == nil {
			continue
		}
		if err := e.dispatch(ctx, upd); err != nil {
			return err
		}
	}
	if plan.RunStatus == "" {
		return nil
	}
	ended, err := e.store.UpdateRun(ctx, id, func(r *run.PipelineRun) error {
		if r.Status.Terminal() {
			return run.ErrNoChange
		}
		if plan.RunStatus != run.StatusCompleted && timedOut(r, now) {
			// Its blocks ended because the run timed out (timeOut cancels them before it
			// ends the run): the run ends as its timeout says.
			timedOutEnd(r, now)
			return nil
		}
		r.Status, r.CompletedAt = plan.RunStatus, &now
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	e.emitRun(ctx, ended)
	e.finished(ctx, ended)
	return nil
}

// retireOnce deactivates a time schedule whose interval is @once once its run has finished,
// as Mage does. Failing to is logged, not retried: the scheduler never fires @once twice
// anyway, since a run exists.
func (e *Executor) retireOnce(ctx context.Context, scheduleID int64) {
	_, err := e.store.UpdateSchedule(ctx, scheduleID, func(s *schedule.Schedule) error {
		if s.ScheduleType != schedule.TypeTime || s.ScheduleInterval != "@once" || s.Status != schedule.StatusActive {
			return run.ErrNoChange
		}
		s.Status = schedule.StatusInactive
		return nil
	})
	if err != nil && !errors.Is(err, run.ErrNoChange) && !errors.Is(err, store.ErrNotFound) {
		zerolog.Ctx(ctx).Warn().Err(err).Int64(logging.KeySchedule, scheduleID).Msg("@once schedule not deactivated")
	}
}

func containsStatus(xs []run.Status, s run.Status) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
