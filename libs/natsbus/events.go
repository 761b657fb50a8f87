package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/event"
)

// EventMsg is one message of the event stream.
type EventMsg struct {
	// Seq is the message's stream sequence: a position in the event log that readers resume
	// from.
	Seq     uint64
	Subject string
	Data    []byte
	Time    time.Time
}

// EventFrom is where a read of the event log starts: after sequence After when it is set,
// else at the first event stored at or after Since, else at the start of the log.
type EventFrom struct {
	After uint64
	Since time.Time
}

// SubjectOf is the subject an event of the run-scoped types is published on; ok is false for
// other types, whose producers build their subjects with the builders in names.go.
func SubjectOf(ev event.Event) (subject string, ok bool) {
	switch {
	case ev.Type == event.TypePipelineRunStatusChanged && ev.PipelineRun != nil:
		r := ev.PipelineRun
		return RunEventSubject(r.Space, r.PipelineUUID, r.ID, r.Status), true
	case ev.Type == event.TypePipelineRunSLAMissed && ev.PipelineRun != nil:
		r := ev.PipelineRun
		return RunSLAMissedSubject(r.Space, r.PipelineUUID, r.ID), true
	case ev.Type == event.TypeBlockRunStatusChanged && ev.BlockRun != nil:
		br := ev.BlockRun
		return BlockRunEventSubject(br.Space, br.PipelineUUID, br.PipelineRunID, br.Status), true
	}
	return "", false
}

// LastEventSeq is the stream sequence of the newest event (0 when the log is empty).
func (b *Bus) LastEventSeq(ctx context.Context) (uint64, error) {
	s, err := b.js.Stream(ctx, StreamEvents)
	if err != nil {
		return 0, fmt.Errorf("natsbus: event stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("natsbus: event stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// FollowEvents calls f, from one goroutine and in stream order, with every event after
// sequence after, as it is stored, until stop is called. It uses an ordered consumer, which
// the client recreates from the last delivered sequence after a reconnect or a missed
// message, so f sees no gap and no repeat.
func (b *Bus) FollowEvents(ctx context.Context, after uint64, f func(EventMsg)) (stop func(), err error) {
	cons, err := b.js.OrderedConsumer(ctx, StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectEvents},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: follow events: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		f(EventMsg{Seq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), Time: meta.Timestamp})
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.log.Debug().Err(err).Msg("event follower")
	}))
	if err != nil {
		return nil, fmt.Errorf("natsbus: follow events: %w", err)
	}
	return cc.Stop, nil
}

// ReadEvents calls f in stream order with the stored events matching filter (a subject
// pattern) from from up to and including sequence until, then returns. It reads through a
// short-lived consumer that the server deletes once idle. An error from f ends the read and
// is returned.
func (b *Bus) ReadEvents(ctx context.Context, filter string, from EventFrom, until uint64, f func(EventMsg) error) error {
	if from.After >= until {
		return nil
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject:     filter,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	switch {
	case from.After > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.After+1
	case !from.Since.IsZero():
		since := from.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := b.js.CreateConsumer(ctx, StreamEvents, cfg)
	if err != nil {
		return fmt.Errorf("natsbus: read events: %w", err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = b.js.DeleteConsumer(dctx, StreamEvents, name)
	}()
	// The pending count at creation says whether any event matches at all, so an empty read
	// returns at once instead of waiting for a message that may never come.
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("natsbus: read events: %w", err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ctx.Err()
			}
			return fmt.Errorf("natsbus: read events: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("natsbus: read events: %w", err)
		}
		if meta.Sequence.Stream > until {
			return nil
		}
		if err := f(EventMsg{Seq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), Time: meta.Timestamp}); err != nil {
			return err
		}
		if meta.Sequence.Stream == until || meta.NumPending == 0 {
			return nil
		}
	}
}
