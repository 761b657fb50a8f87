package executor

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// Reconciler timing. A queued block whose work message may have been lost (the process died
// between writing the block run and publishing its message) is dispatched again once it has
// been queued this long; JetStream drops the copy while the original is still within its
// duplicate window, and only one worker can take a queued block run anyway.
const (
	reconcileEvery   = 5 * time.Second
	requeueAfter     = 30 * time.Second
	reconcileBatch   = 1000
	admitWaitingFrom = 10 * time.Second
)

// reconcile runs passes until ctx ends.
func (e *Executor) reconcile(ctx context.Context) {
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.reconcilePass(ctx, time.Now()); err != nil && ctx.Err() == nil {
				e.log.Warn().Err(err).Msg("reconcile pass")
			}
		}
	}
}

// reconcilePass looks at every run that has not finished: it ends runs past their timeout,
// re-dispatches queued blocks whose message may be lost, advances runs whose advance was cut
// short, and starts waiting runs whose slot a crashed process never handed on. Every step is
// a conditional update, so passes in several executors at once are harmless.
func (e *Executor) reconcilePass(ctx context.Context, now time.Time) error {
	runs, err := e.store.ActiveRuns(ctx, reconcileBatch)
	if err != nil {
		return err
	}
	// The block runs of every running run in one read: with a backlog there are hundreds of
	// them, and a read per run every pass cost more than the runs' own advances.
	var ids []int64
	for i := range runs {
		if runs[i].Status == run.StatusRunning {
			ids = append(ids, runs[i].ID)
		}
	}
	blocks := map[int64][]run.BlockRun{}
	if len(ids) > 0 {
		brs, err := e.store.BlockRunsOf(ctx, ids...)
		if err != nil {
			return err
		}
		for _, br := range brs {
			blocks[br.PipelineRunID] = append(blocks[br.PipelineRunID], br)
		}
	}
	for i := range runs {
		r := &runs[i]
		ctx := e.log.With().Str(logging.KeySpace, r.Space).Int64(logging.KeyRunID, r.ID).Logger().WithContext(ctx)
		var err error
		switch r.Status {
		case run.StatusRunning:
			err = e.reconcileRunning(ctx, r, blocks[r.ID], now)
		case run.StatusInitial:
			if now.Sub(r.CreatedAt) >= admitWaitingFrom {
				err = e.reconcileWaiting(ctx, r)
			}
		}
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("run not reconciled")
		}
	}
	return nil
}

// reconcileRunning handles one running run given its block runs as the pass read them.
func (e *Executor) reconcileRunning(ctx context.Context, r *run.PipelineRun, brs []run.BlockRun, now time.Time) error {
	if timedOut(r, now) {
		return e.timeOut(ctx, r)
	}
	for i := range brs {
		br := &brs[i]
		if br.Status == run.StatusQueued && now.Sub(br.UpdatedAt) >= requeueAfter {
			zerolog.Ctx(ctx).Info().Int64(logging.KeyBlockRun, br.ID).Msg("queued block dispatched again")
			if err := e.dispatch(ctx, br); err != nil {
				return err
			}
		}
	}
	// Most running runs have nothing to advance (their blocks are queued or running): the
	// plan on the pass's reading says so without reading them again. A run whose plan has
	// steps is advanced from a fresh reading.
	if planEmpty(run.Advance(r.Blocks, brs, r.Settings)) {
		return nil
	}
	return e.advance(ctx, r.ID)
}

func planEmpty(p run.Plan) bool {
	return len(p.Queue) == 0 && len(p.UpstreamFailed) == 0 && len(p.Cancel) == 0 && p.RunStatus == ""
}

// timeOut ends a run that ran past settings.timeout with settings.timeout_status, killing its
// running blocks. The blocks are cancelled first, so that a reader who sees the run ended
// sees its blocks ended too; an advance that ends the run meanwhile (a killed block's worker
// advances it) applies the same timeout outcome (timedOutEnd), so either way the run ends
// with the timeout's status and message.
func (e *Executor) timeOut(ctx context.Context, r *run.PipelineRun) error {
	if err := e.cancelBlocks(ctx, r); err != nil {
		return err
	}
	now := store.Now()
	ended, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if r.Status.Terminal() {
			return run.ErrNoChange
		}
		timedOutEnd(r, now)
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str(logging.KeyStatus, string(ended.Status)).Msg("run timed out")
	e.emitRun(ctx, ended)
	e.finished(ctx, ended)
	return nil
}

// timedOut reports whether r has run past settings.timeout at now.
func timedOut(r *run.PipelineRun, now time.Time) bool {
	return r.Settings.Timeout > 0 && r.LastStartedAt != nil && now.After(r.LastStartedAt.Add(seconds(r.Settings.Timeout)))
}

// timedOutEnd ends r as its timeout does: settings.timeout_status (failed by default) and the
// timeout named in metrics.error.
func timedOutEnd(r *run.PipelineRun, now time.Time) {
	r.Status, r.CompletedAt = r.Settings.TimeoutStatus, &now
	if r.Status == "" {
		r.Status = run.StatusFailed
	}
	if r.Metrics == nil {
		r.Metrics = map[string]any{}
	}
	r.Metrics["error"] = map[string]any{"message": "pipeline run timed out after " + seconds(r.Settings.Timeout).String() + " (settings.timeout)"}
}

// reconcileWaiting frees the slots of finished runs that still hold one (their process died
// before releasing it) and tries to start the waiting run.
func (e *Executor) reconcileWaiting(ctx context.Context, r *run.PipelineRun) error {
	if !r.Settings.RunLimited() {
		return nil
	}
	key := run.PipelineGateKey(r.Space, r.PipelineUUID)
	g, err := e.store.UpdateGate(ctx, key, func(*run.Gate) error { return run.ErrNoChange })
	if err != nil && !errors.Is(err, run.ErrNoChange) {
		return err
	}
	for _, h := range g.Holders {
		held, err := e.store.GetRun(ctx, h.ID)
		if (err == nil && held.Status.Terminal()) || errors.Is(err, store.ErrNotFound) {
			if err := e.release(ctx, key, h.ID); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return e.admit(ctx, r)
}
