package executor

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
)

// Event publication. An event is published after the store write it reports. The publish is
// retried with bounded backoff inline (the handler cannot ack its message while NATS is away
// anyway), then handed to a background retrier that keeps trying for eventRetryFor. Every
// attempt uses the event id as Nats-Msg-Id, so a retry whose first attempt did reach the
// stream is dropped as a duplicate. An event given up on is logged at error level with its
// id; none disappears silently.
const (
	eventInlineAttempts = 5
	eventBackoffFirst   = 50 * time.Millisecond
	eventBackoffMax     = 5 * time.Second
	eventRetryFor       = 10 * time.Minute
	eventAttemptTimeout = 5 * time.Second
	// eventMaxDeferred bounds the events waiting in background retriers, so a long NATS outage
	// cannot grow memory without limit.
	eventMaxDeferred = 10000
)

// deferredEvents counts events in background retriers, across executors of the process.
var deferredEvents atomic.Int64

// emitRun publishes the run's current state. The event id is the run and its version, so a
// state published twice (a redelivered command) is dropped by the stream's duplicate window.
func (e *Executor) emitRun(ctx context.Context, r *run.PipelineRun) {
	e.publish(ctx, natsbus.RunEventSubject(r.Space, r.PipelineUUID, r.ID, r.Status), event.PipelineRunStatusChanged(r))
}

// emitBlockRun publishes a block run's current state.
func (e *Executor) emitBlockRun(ctx context.Context, r *run.PipelineRun, br *run.BlockRun) {
	e.publish(ctx, natsbus.BlockRunEventSubject(r.Space, r.PipelineUUID, r.ID, br.Status), event.BlockRunStatusChanged(r, br))
}

// publish appends an event, retrying as described above. It returns once the event is stored
// or handed to the background retrier.
func (e *Executor) publish(ctx context.Context, subject string, ev event.Event) {
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	log := zerolog.Ctx(ctx)
	if log.GetLevel() == zerolog.Disabled {
		log = &e.log
	}
	ctx = context.WithoutCancel(ctx)
	backoff := eventBackoffFirst
	var err error
	for attempt := 1; attempt <= eventInlineAttempts; attempt++ {
		if err = e.publishOnce(ctx, subject, ev); err == nil {
			return
		}
		if attempt < eventInlineAttempts {
			time.Sleep(backoff)
			backoff = min(backoff*2, eventBackoffMax)
		}
	}
	if deferredEvents.Add(1) > eventMaxDeferred {
		deferredEvents.Add(-1)
		log.Error().Err(err).Str("event_id", ev.ID).Str("subject", subject).Msg("event lost: too many events waiting to be published")
		return
	}
	log.Warn().Err(err).Str("event_id", ev.ID).Msg("event not published yet; retrying in the background")
	go func() {
		defer deferredEvents.Add(-1)
		deadline := time.Now().Add(eventRetryFor)
		for time.Now().Before(deadline) {
			time.Sleep(backoff)
			backoff = min(backoff*2, eventBackoffMax)
			if err = e.publishOnce(ctx, subject, ev); err == nil {
				log.Info().Str("event_id", ev.ID).Msg("event published after retries")
				return
			}
		}
		log.Error().Err(err).Str("event_id", ev.ID).Str("subject", subject).Msg("event lost: not published within the retry period")
	}()
}

func (e *Executor) publishOnce(ctx context.Context, subject string, ev event.Event) error {
	ctx, cancel := context.WithTimeout(ctx, eventAttemptTimeout)
	defer cancel()
	return e.bus.PublishEvent(ctx, subject, ev)
}
