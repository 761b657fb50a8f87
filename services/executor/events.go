package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
)

// emitRun publishes the run's current state. The event id is the run and its version, so a
// state published twice (a redelivered command) is dropped by the stream's duplicate window.
func (e *Executor) emitRun(ctx context.Context, r *run.PipelineRun) {
	ev := event.Event{
		Type: event.TypePipelineRunStatusChanged, Version: event.Version,
		ID: fmt.Sprintf("pipeline_run-%d-v%d", r.ID, r.Version), OccurredAt: r.UpdatedAt,
		Space: r.Space, Sequence: r.Version, PipelineRun: r,
	}
	e.publish(ctx, natsbus.RunEventSubject(r.Space, r.PipelineUUID, r.ID, r.Status), ev)
}

// emitBlockRun publishes a block run's current state.
func (e *Executor) emitBlockRun(ctx context.Context, r *run.PipelineRun, br *run.BlockRun) {
	ev := event.Event{
		Type: event.TypeBlockRunStatusChanged, Version: event.Version,
		ID: fmt.Sprintf("block_run-%d-v%d", br.ID, br.Version), OccurredAt: br.UpdatedAt,
		Space: br.Space, Sequence: br.Version, BlockRun: br,
	}
	e.publish(ctx, natsbus.BlockRunEventSubject(r.Space, r.PipelineUUID, r.ID, br.Status), ev)
}

// publish appends an event. The store already holds the new state, which is the source of
// truth, so a failed publish is logged rather than undoing or retrying the work.
func (e *Executor) publish(ctx context.Context, subject string, ev event.Event) {
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	if err := e.bus.PublishEvent(context.WithoutCancel(ctx), subject, ev); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("event_id", ev.ID).Msg("event not published")
	}
}
