package executor

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// errNoSlot is the gate closure's way to refuse: the store then writes nothing.
var errNoSlot = errors.New("no free slot")

// waitingScan bounds how many waiting runs one freed slot looks at.
const waitingScan = 200

// admit gives an initial run a slot of its pipeline's run limits and starts it; without a
// free slot the run waits (initial) or, with on_pipeline_run_limit_reached: skip, is
// cancelled. The gate is one document updated atomically, so two executors never give the
// same slot to two runs.
func (e *Executor) admit(ctx context.Context, r *run.PipelineRun) error {
	if r.Status != run.StatusInitial {
		return nil
	}
	s := r.Settings
	_, err := e.store.UpdateGate(ctx, run.PipelineGateKey(r.Space, r.PipelineUUID), func(g *run.Gate) error {
		if g.Holds(r.ID) {
			return run.ErrNoChange
		}
		if !g.Admit(r.ID, r.PipelineScheduleID, s.PipelineRunLimit, s.PipelineRunLimitAllTriggers) {
			return errNoSlot
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoSlot):
		if s.SkipWhenLimited {
			return e.skip(ctx, r, "the pipeline run limit was reached (on_pipeline_run_limit_reached: skip)")
		}
		zerolog.Ctx(ctx).Debug().Int64(logging.KeyRunID, r.ID).Msg("run waits for a slot")
		return nil
	case err != nil && !errors.Is(err, run.ErrNoChange):
		return err
	}
	now := store.Now()
	started, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if r.Status != run.StatusInitial {
			return run.ErrNoChange
		}
		r.Status, r.StartedAt, r.LastStartedAt = run.StatusRunning, &now, &now
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	e.emitRun(ctx, started)
	return e.advance(ctx, r.ID)
}

// skip cancels a run that may not run, with the reason in its metrics.
func (e *Executor) skip(ctx context.Context, r *run.PipelineRun, reason string) error {
	now := store.Now()
	skipped, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if r.Status.Terminal() {
			return run.ErrNoChange
		}
		r.Status, r.CompletedAt = run.StatusCancelled, &now
		if r.Metrics == nil {
			r.Metrics = map[string]any{}
		}
		r.Metrics["skipped"] = reason
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	e.emitRun(ctx, skipped)
	return e.cancelBlocks(ctx, skipped)
}

// finished is what follows a run reaching a terminal status, whoever ended it: its slot is
// freed and handed to the oldest waiting runs, an @once schedule retires, and a backfill whose
// last run this was ends.
func (e *Executor) finished(ctx context.Context, r *run.PipelineRun) {
	e.backfillRunFinished(ctx, r)
	if r.RunType == run.TypeScheduled {
		e.retireOnce(ctx, r.PipelineScheduleID)
	}
	if r.Settings.BlockRunLimit > 0 {
		if err := e.store.DeleteGate(ctx, run.RunGateKey(r.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
			zerolog.Ctx(ctx).Warn().Err(err).Int64(logging.KeyRunID, r.ID).Msg("block gate not deleted")
		}
	}
	if !r.Settings.RunLimited() {
		return
	}
	if err := e.release(ctx, run.PipelineGateKey(r.Space, r.PipelineUUID), r.ID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Int64(logging.KeyRunID, r.ID).Msg("run slot not released; the reconciler frees it")
		return
	}
	waiting, _, err := e.store.ListRuns(ctx, store.RunFilter{Space: r.Space, PipelineUUID: r.PipelineUUID, Status: run.StatusInitial, OldestFirst: true}, store.Page{Limit: waitingScan})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("waiting runs not listed; the reconciler starts them")
		return
	}
	for i := range waiting {
		if err := e.admit(ctx, &waiting[i]); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Int64(logging.KeyRunID, waiting[i].ID).Msg("waiting run not started")
		}
	}
}

// release frees id's slot in the gate key.
func (e *Executor) release(ctx context.Context, key string, id int64) error {
	_, err := e.store.UpdateGate(ctx, key, func(g *run.Gate) error {
		if !g.Release(id) {
			return run.ErrNoChange
		}
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	}
	return err
}

// claimBlockSlot takes a slot of the run's block-run limit for block run id.
func (e *Executor) claimBlockSlot(ctx context.Context, r *run.PipelineRun, id int64) (bool, error) {
	_, err := e.store.UpdateGate(ctx, run.RunGateKey(r.ID), func(g *run.Gate) error {
		if g.Holds(id) {
			return run.ErrNoChange
		}
		if !g.Admit(id, 0, 0, r.Settings.BlockRunLimit) {
			return errNoSlot
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoSlot):
		return false, nil
	case err != nil && !errors.Is(err, run.ErrNoChange):
		return false, err
	}
	return true, nil
}
