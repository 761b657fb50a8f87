package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/backfill"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// Backfills. Starting one makes a hidden schedule for its runs (so that every run has a
// schedule, and the schedule's settings — pipeline_run_limit above all — apply to them
// through the same code as any other run), sets it running, and publishes one trigger
// command per date. The trigger's id is derived from the backfill and the date, so a start
// handled twice never makes a date's run twice. The backfill ends when as many of its runs
// as it has dates have finished; each run's end checks that.

// BackfillStore is what the executor needs from storage for backfills.
type BackfillStore interface {
	CreateSchedule(ctx context.Context, sc *schedule.Schedule) error
	GetBackfill(ctx context.Context, id int64) (*backfill.Backfill, error)
	UpdateBackfill(ctx context.Context, id int64, fn func(*backfill.Backfill) error) (*backfill.Backfill, error)
	BackfillRunCounts(ctx context.Context, id int64) (map[run.Status]int64, error)
}

// seqPipelineSchedules is the id sequence of schedules; it must be the gateway's
// (gateway.SeqPipelineSchedules), since both allocate schedule ids.
const seqPipelineSchedules = "pipeline_schedules"

// logKeyBackfill is the log field of a backfill's id.
const logKeyBackfill = "backfill_id"

// backfillCheckEvery is how many dates a start triggers between two looks at whether the
// backfill was cancelled meanwhile.
const backfillCheckEvery = 100

// errBackfillOver refuses to start a backfill that ended (was cancelled) meanwhile.
var errBackfillOver = errors.New("backfill is over")

// BackfillRunCommandID is the id of the trigger command of a backfill's run for date: the
// same date of the same backfill is always the same command, which makes one run.
func BackfillRunCommandID(space string, backfillID int64, date time.Time) string {
	return command.IdempotentID(space, "backfill/"+strconv.FormatInt(backfillID, 10), date.UTC().Format(time.RFC3339Nano))
}

// handleBackfillCommand dispatches the backfill commands.
func (e *Executor) handleBackfillCommand(ctx context.Context, env command.Envelope) error {
	handle := e.startBackfill
	if env.Type == command.TypeCancelBackfill {
		handle = e.cancelBackfill
	}
	err := handle(ctx, env)
	if errors.Is(err, store.ErrNotFound) {
		// The backfill was deleted while the command was handled: retrying cannot help.
		e.fail(ctx, env, http.StatusNotFound, "backfill not found")
		return nil
	}
	return err
}

// loadCommandBackfill decodes a backfill command's payload and loads the backfill it names,
// answering the command itself when the backfill does not exist in the command's space.
func (e *Executor) loadCommandBackfill(ctx context.Context, env command.Envelope, payload any, id func() int64) (*backfill.Backfill, error) {
	if err := e.decodePayload(ctx, env, payload); err != nil {
		return nil, err
	}
	b, err := e.store.GetBackfill(ctx, id())
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.Space != env.Space) {
		e.fail(ctx, env, http.StatusNotFound, fmt.Sprintf("backfill %d not found", id()))
		return nil, nil
	}
	return b, err
}

// startBackfill handles backfill.start for a backfill the gateway set initial.
func (e *Executor) startBackfill(ctx context.Context, env command.Envelope) error {
	var p command.StartBackfill
	b, err := e.loadCommandBackfill(ctx, env, &p, func() int64 { return p.BackfillID })
	if b == nil {
		return err
	}
	ctx = zerolog.Ctx(ctx).With().Int64(logKeyBackfill, b.ID).Logger().WithContext(ctx)
	switch b.Status {
	case backfill.StatusInitial, backfill.StatusRunning:
	case backfill.StatusNone:
		e.fail(ctx, env, http.StatusConflict, fmt.Sprintf("backfill %d is not initial: start it with PUT /api/backfills/%d", b.ID, b.ID))
		return nil
	default:
		return e.succeedBackfill(ctx, env, b) // over: nothing to start
	}
	ivs, err := b.Intervals()
	if err != nil {
		// The gateway validated the backfill before setting it initial; only a record
		// written some other way gets here.
		return e.failBackfill(ctx, env, b, http.StatusBadRequest, fmt.Sprintf("backfill %d cannot start: %v", b.ID, err))
	}
	if _, err := e.store.GetPipeline(ctx, b.Space, b.PipelineUUID); errors.Is(err, store.ErrNotFound) {
		return e.failBackfill(ctx, env, b, http.StatusNotFound, fmt.Sprintf("backfill %d cannot start: pipeline %q not found", b.ID, b.PipelineUUID))
	} else if err != nil {
		return err
	}
	if b, err = e.ensureBackfillSchedule(ctx, b); err != nil {
		return err
	}
	// A backfill already running is a start handled before (redelivered, or retried after a
	// failed publish): only the dates without a run are triggered again.
	resumed := b.Status == backfill.StatusRunning
	now := store.Now()
	b, err = e.store.UpdateBackfill(ctx, b.ID, func(b *backfill.Backfill) error {
		switch b.Status {
		case backfill.StatusInitial:
			b.Status, b.StartedAt, b.TotalRunCount = backfill.StatusRunning, &now, int64(len(ivs))
			return nil
		case backfill.StatusRunning:
			return run.ErrNoChange
		}
		return errBackfillOver
	})
	switch {
	case errors.Is(err, errBackfillOver):
		return e.succeedBackfill(ctx, env, b) // cancelled meanwhile
	case err != nil && !errors.Is(err, run.ErrNoChange):
		return err
	}
	if !resumed {
		zerolog.Ctx(ctx).Info().Int("runs", len(ivs)).Msg("backfill started")
	}
	// Answered before the runs are triggered: that takes a while for thousands of dates,
	// and the client only waits to know the backfill started.
	if err := e.succeedBackfill(ctx, env, b); err != nil {
		return err
	}
	return e.triggerBackfillRuns(ctx, env, b, ivs, resumed)
}

// ensureBackfillSchedule makes the backfill's hidden schedule: an inactive api schedule
// without a token, so that nothing but the backfill makes runs of it. Its id is recorded in
// the backfill before the schedule is created, so a start handled twice makes one schedule.
func (e *Executor) ensureBackfillSchedule(ctx context.Context, b *backfill.Backfill) (*backfill.Backfill, error) {
	if b.PipelineScheduleID == nil {
		id, err := e.store.NextIDs(ctx, seqPipelineSchedules, 1)
		if err != nil {
			return nil, err
		}
		b, err = e.store.UpdateBackfill(ctx, b.ID, func(b *backfill.Backfill) error {
			if b.PipelineScheduleID != nil {
				return run.ErrNoChange // another delivery recorded its own first
			}
			b.PipelineScheduleID = &id
			return nil
		})
		if err != nil && !errors.Is(err, run.ErrNoChange) {
			return nil, err
		}
	}
	id := *b.PipelineScheduleID
	if _, err := e.store.GetSchedule(ctx, id); err == nil {
		return b, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	now := store.Now()
	sc := &schedule.Schedule{
		ID: id, Space: b.Space, PipelineUUID: b.PipelineUUID, Name: truncate("Backfill "+b.Name, backfill.MaxNameLength),
		Description:  fmt.Sprintf("The runs of backfill %d. Made by Runyard when the backfill started; it never fires on its own.", b.ID),
		ScheduleType: schedule.TypeAPI, Status: schedule.StatusInactive,
		Variables: cloneMap(b.Variables), Settings: cloneMap(b.Settings), CreatedAt: now, UpdatedAt: now,
	}
	sc.Normalize()
	if err := e.store.CreateSchedule(ctx, sc); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return nil, err
	}
	return b, nil
}

// triggerBackfillRuns publishes the trigger command of every date of b, oldest first, and
// stops early when b is cancelled meanwhile.
func (e *Executor) triggerBackfillRuns(ctx context.Context, env command.Envelope, b *backfill.Backfill, ivs []backfill.Interval, resumed bool) error {
	for i, iv := range ivs {
		if i > 0 && i%backfillCheckEvery == 0 {
			cur, err := e.store.GetBackfill(ctx, b.ID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && cur.Status.Terminal()) {
				zerolog.Ctx(ctx).Info().Int("triggered", i).Msg("backfill ended while its runs were being triggered")
				return nil
			} else if err != nil {
				return err
			}
		}
		id := BackfillRunCommandID(b.Space, b.ID, iv.Start)
		if resumed {
			if _, err := e.store.GetRunByCommand(ctx, id); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		date := iv.Start
		cmd, err := command.New(id, command.TypeTriggerRun, b.Space, env.Principal, command.TriggerRun{
			PipelineUUID: b.PipelineUUID, ScheduleID: *b.PipelineScheduleID, Variables: b.RunVariables(iv),
			ExecutionDate: &date, RunType: run.TypeBackfill, BackfillID: &b.ID,
		})
		if err != nil {
			return err
		}
		if _, err := e.bus.PublishCommand(ctx, cmd); err != nil {
			return fmt.Errorf("executor: backfill %d date %s: %w", b.ID, date.Format(time.RFC3339), err)
		}
	}
	return nil
}

// cancelBackfill handles backfill.cancel: the backfill becomes cancelled, then each of its
// runs that has not finished is cancelled as PUT /api/pipeline_runs/:id would. A run created
// after this lists the runs finds the backfill cancelled and cancels itself
// (backfillRunResumed).
func (e *Executor) cancelBackfill(ctx context.Context, env command.Envelope) error {
	var p command.CancelBackfill
	b, err := e.loadCommandBackfill(ctx, env, &p, func() int64 { return p.BackfillID })
	if b == nil {
		return err
	}
	ctx = zerolog.Ctx(ctx).With().Int64(logKeyBackfill, b.ID).Logger().WithContext(ctx)
	now := store.Now()
	b, err = e.store.UpdateBackfill(ctx, b.ID, func(b *backfill.Backfill) error {
		if b.Status.Terminal() {
			return run.ErrNoChange
		}
		b.Status, b.CompletedAt = backfill.StatusCancelled, &now
		return nil
	})
	switch {
	case errors.Is(err, run.ErrNoChange) && b.Status != backfill.StatusCancelled:
		return e.succeedBackfill(ctx, env, b) // it ended before: its runs have all finished
	case err != nil && !errors.Is(err, run.ErrNoChange):
		return err
	}
	// Cancelled again too when redelivered: a delivery cut short may have left runs.
	n, err := e.cancelBackfillRuns(ctx, b)
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Int("runs_cancelled", n).Msg("backfill cancelled")
	return e.succeedBackfill(ctx, env, b)
}

// cancelBackfillRuns cancels the unfinished runs of b and returns how many it cancelled.
// Waiting runs go first: cancelling a running one hands its slot to the oldest waiting run,
// which would start only to be cancelled.
func (e *Executor) cancelBackfillRuns(ctx context.Context, b *backfill.Backfill) (int, error) {
	total := 0
	for _, st := range []run.Status{run.StatusInitial, run.StatusRunning} {
		for {
			runs, _, err := e.store.ListRuns(ctx, store.RunFilter{Space: b.Space, BackfillID: b.ID, Status: st}, store.Page{Limit: 500})
			if err != nil {
				return total, err
			}
			n := 0
			for i := range runs {
				ok, err := e.cancelBackfillRun(ctx, &runs[i])
				if err != nil {
					return total, err
				}
				if ok {
					n++
				}
			}
			total += n
			if n == 0 {
				break
			}
		}
	}
	return total, nil
}

// cancelBackfillRun cancels run r unless it has finished, with the steps of a cancel command:
// the run, then its unfinished blocks (and a kill broadcast), then its slot.
func (e *Executor) cancelBackfillRun(ctx context.Context, r *run.PipelineRun) (bool, error) {
	now := store.Now()
	cancelled, err := e.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
		if r.Status.Terminal() {
			return run.ErrNoChange
		}
		r.Status, r.CompletedAt = run.StatusCancelled, &now
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	e.emitRun(ctx, cancelled)
	if err := e.cancelBlocks(ctx, cancelled); err != nil {
		return true, err
	}
	e.finished(ctx, cancelled)
	return true, nil
}

// backfillRunFinished is called when a run reaches a terminal status: for a backfill's run,
// the backfill ends if this was the last of its runs. Each run's end reads after its own
// write, so the last to finish sees every other's result.
func (e *Executor) backfillRunFinished(ctx context.Context, r *run.PipelineRun) {
	if r.BackfillID == nil {
		return
	}
	if err := e.settleBackfill(ctx, *r.BackfillID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Int64(logKeyBackfill, *r.BackfillID).Int64(logging.KeyRunID, r.ID).Msg("backfill status not updated")
	}
}

// settleBackfill ends the running backfill id when all of its runs have finished.
func (e *Executor) settleBackfill(ctx context.Context, id int64) error {
	b, err := e.store.GetBackfill(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted: its runs go on alone
	} else if err != nil {
		return err
	}
	if b.Status != backfill.StatusRunning {
		return nil
	}
	counts, err := e.store.BackfillRunCounts(ctx, id)
	if err != nil {
		return err
	}
	status, done := backfill.Outcome(counts, b.TotalRunCount)
	if !done {
		return nil
	}
	now := store.Now()
	_, err = e.store.UpdateBackfill(ctx, id, func(b *backfill.Backfill) error {
		if b.Status != backfill.StatusRunning {
			return run.ErrNoChange
		}
		b.Status, b.CompletedAt = status, &now
		return nil
	})
	if errors.Is(err, run.ErrNoChange) {
		return nil
	} else if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Int64(logKeyBackfill, id).Str(logging.KeyStatus, string(status)).Msg("backfill finished")
	return nil
}

// backfillRunResumed runs after a trigger command made (or found) a backfill's run. A run
// made after its backfill was cancelled is cancelled: the cancel may have listed the runs
// before it existed. A run that ended as it was made (a pipeline without blocks, a run
// skipped by a limit) never passes through finished, so the backfill is settled here.
func (e *Executor) backfillRunResumed(ctx context.Context, r *run.PipelineRun) {
	if r.BackfillID == nil {
		return
	}
	log := zerolog.Ctx(ctx).With().Int64(logKeyBackfill, *r.BackfillID).Int64(logging.KeyRunID, r.ID).Logger()
	cur, err := e.store.GetRun(ctx, r.ID)
	if err != nil {
		log.Warn().Err(err).Msg("backfill run not checked")
		return
	}
	if cur.Status.Terminal() {
		e.backfillRunFinished(ctx, cur)
		return
	}
	b, err := e.store.GetBackfill(ctx, *r.BackfillID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.Warn().Err(err).Msg("backfill run not checked")
		}
		return
	}
	if b.Status == backfill.StatusCancelled {
		if _, err := e.cancelBackfillRun(ctx, cur); err != nil {
			log.Warn().Err(err).Msg("run of a cancelled backfill not cancelled")
		}
	}
}

// succeedBackfill records that a backfill command took effect, then answers it with b.
func (e *Executor) succeedBackfill(ctx context.Context, env command.Envelope, b *backfill.Backfill) error {
	if err := e.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplySucceeded, Code: http.StatusOK, CreatedAt: store.Now(),
	}); err != nil {
		return err
	}
	result, err := json.Marshal(command.BackfillResult{Backfill: *b})
	if err != nil {
		return fmt.Errorf("executor: encode backfill result: %w", err)
	}
	if err := e.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplySucceeded, Code: http.StatusOK, Result: result}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent")
	}
	return nil
}

// failBackfill ends a backfill that cannot start as failed, and answers the command with why.
func (e *Executor) failBackfill(ctx context.Context, env command.Envelope, b *backfill.Backfill, code int, msg string) error {
	now := store.Now()
	_, err := e.store.UpdateBackfill(ctx, b.ID, func(b *backfill.Backfill) error {
		if b.Status.Terminal() {
			return run.ErrNoChange
		}
		b.Status, b.CompletedAt = backfill.StatusFailed, &now
		return nil
	})
	if err != nil && !errors.Is(err, run.ErrNoChange) {
		return err
	}
	e.fail(ctx, env, code, msg)
	return nil
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
