package natsbus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/logging"
)

// DuplicateWindow is how long the command and work streams remember message ids.
const DuplicateWindow = 2 * time.Minute

// StreamOptions size the streams: how many servers hold each one, and how much event history
// is kept.
type StreamOptions struct {
	// Replicas is how many servers of a cluster keep each stream (1 on a single server).
	Replicas      int
	EventMaxAge   time.Duration
	EventMaxBytes int64
}

// Bus is a connection to NATS with JetStream. It is safe for concurrent use.
type Bus struct {
	nc     *nats.Conn
	closed chan struct{}
	js     jetstream.JetStream
	log    zerolog.Logger
}

// Connect dials url and returns a bus. name identifies the client in the server's monitoring.
// The connection reconnects forever; Close ends it.
func Connect(ctx context.Context, url, name string, log zerolog.Logger) (*Bus, error) {
	closed := make(chan struct{})
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info().Msg("nats reconnected") }),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	return &Bus{nc: nc, js: js, log: log, closed: closed}, nil
}

// Close drains the connection (pending publishes are flushed, subscriptions end) and waits
// for it to close, so that a caller stopping the server next does not cut the drain short.
func (b *Bus) Close() {
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
	}
	select {
	case <-b.closed:
	case <-time.After(10 * time.Second):
		b.nc.Close()
	}
}

// Conn returns the underlying connection, for core-NATS subscriptions.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Ping checks that the server answers and JetStream is enabled.
func (b *Bus) Ping(ctx context.Context) error {
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("natsbus: ping: %w", err)
	}
	return nil
}

// Setup creates or updates the streams and creates the lease bucket. It is idempotent and
// safe to run from every process at start-up.
func (b *Bus) Setup(ctx context.Context, l StreamOptions) error {
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamCommands,
			Description: "Runyard commands: work-queue, one consumer per worker kind",
			Subjects:    []string{SubjectCommands},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  DuplicateWindow,
			MaxAge:      7 * 24 * time.Hour,
		},
		{
			Name:        StreamWork,
			Description: "Runyard block executions handed to executor workers",
			Subjects:    []string{SubjectWork},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  DuplicateWindow,
			MaxAge:      7 * 24 * time.Hour,
		},
		{
			Name:        StreamEvents,
			Description: "Runyard public event log",
			Subjects:    []string{SubjectEvents},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      l.EventMaxAge,
			MaxBytes:    l.EventMaxBytes,
			Discard:     jetstream.DiscardOld,
			Duplicates:  DuplicateWindow,
		},
	}
	for _, cfg := range streams {
		cfg.Replicas = max(l.Replicas, 1)
		if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("natsbus: set up stream %s: %w", cfg.Name, err)
		}
	}
	// The lease bucket, here so that it is replicated like the streams; an existing one is kept.
	if _, err := b.leaseBucket(ctx, LeaseTTL, l.Replicas); err != nil {
		return err
	}
	return nil
}

// PublishCommand publishes env with its id as Nats-Msg-Id. duplicate is true when the server
// already had a command with this id within the duplicate window and dropped this one.
func (b *Bus) PublishCommand(ctx context.Context, env command.Envelope) (duplicate bool, err error) {
	data, err := json.Marshal(env)
	if err != nil {
		return false, fmt.Errorf("natsbus: encode command %s: %w", env.ID, err)
	}
	ack, err := b.js.Publish(ctx, CommandSubject(env.Type), data, jetstream.WithMsgID(env.ID))
	if err != nil {
		return false, fmt.Errorf("natsbus: publish command %s: %w", env.ID, err)
	}
	return ack.Duplicate, nil
}

// PublishWork hands v to a worker on subject, deduplicated by msgID.
func (b *Bus) PublishWork(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("natsbus: encode work %s: %w", msgID, err)
	}
	if _, err := b.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("natsbus: publish work %s: %w", msgID, err)
	}
	return nil
}

// PublishEvent appends ev to the event log on subject, deduplicated by the event id.
func (b *Bus) PublishEvent(ctx context.Context, subject string, ev event.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("natsbus: encode event %s: %w", ev.ID, err)
	}
	if _, err := b.js.Publish(ctx, subject, data, jetstream.WithMsgID(ev.ID)); err != nil {
		return fmt.Errorf("natsbus: publish event %s: %w", ev.ID, err)
	}
	return nil
}

// Reply publishes a command's reply on core NATS. Nobody may be listening (the gateway gave
// up, or the command came from a retry), which is fine: the outcome is also in the store.
func (b *Bus) Reply(r command.Reply) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("natsbus: encode reply %s: %w", r.CommandID, err)
	}
	if err := b.nc.Publish(ReplySubject(r.CommandID), data); err != nil {
		return fmt.Errorf("natsbus: publish reply %s: %w", r.CommandID, err)
	}
	return nil
}

// WaitReply subscribes to a command's reply subject. Subscribe before publishing the command:
// NATS orders a connection's protocol messages, so the subscription is in place before any
// worker can see the command. Call the returned cancel when done waiting.
func (b *Bus) WaitReply(commandID string) (<-chan command.Reply, func(), error) {
	ch := make(chan command.Reply, 1)
	sub, err := b.nc.Subscribe(ReplySubject(commandID), func(m *nats.Msg) {
		var r command.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			b.log.Warn().Err(err).Str(logging.KeyCommandID, commandID).Msg("undecodable reply dropped")
			return
		}
		select {
		case ch <- r:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("natsbus: subscribe reply %s: %w", commandID, err)
	}
	return ch, func() { _ = sub.Unsubscribe() }, nil
}

// EventPublisher publishes one event.
type EventPublisher interface {
	PublishEvent(ctx context.Context, subject string, ev event.Event) error
}

// PublishEventRetrying publishes ev up to attempts times, waiting a little longer after each
// failure, each try bounded by perTry; it returns the last error. ctx's cancellation does not
// stop it: the event's write has happened, so its announcement is owed. The event id is the
// message id, so a retry of a publish that did land is dropped as a duplicate.
func PublishEventRetrying(ctx context.Context, p EventPublisher, subject string, ev event.Event, attempts int, perTry time.Duration) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range max(attempts, 1) {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		}
		actx, cancel := context.WithTimeout(ctx, perTry)
		err = p.PublishEvent(actx, subject, ev)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}
