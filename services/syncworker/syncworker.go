// Package syncworker consumes the commands addressed to sync workers (connector syncs and
// provider triggers) from their own durable consumer, so that sync workers scale apart from
// executors. Every command gets an answer: a result, or a recorded failure that the gateway
// relays to the client.
package syncworker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/store"
)

// Store is what the sync worker needs from storage.
type Store interface {
	SaveOutcome(ctx context.Context, o store.CommandOutcome) error
}

// Bus is what the sync worker needs from JetStream.
type Bus interface {
	Consume(ctx context.Context, cfg natsbus.ConsumerConfig, h natsbus.Handler) (*natsbus.Consumer, error)
	Reply(r command.Reply) error
}

// Worker is one sync worker process.
type Worker struct {
	store    Store
	bus      Bus
	log      zerolog.Logger
	consumer *natsbus.Consumer
}

// New returns a worker; Start begins consuming.
func New(st Store, bus Bus, log zerolog.Logger) *Worker {
	return &Worker{store: st, bus: bus, log: log}
}

// Start creates the durable consumer and begins handling commands.
func (w *Worker) Start(ctx context.Context) error {
	c, err := w.bus.Consume(ctx, natsbus.ConsumerConfig{
		Stream:  natsbus.StreamCommands,
		Durable: natsbus.DurableSyncWorkerCommands,
		Filters: []string{natsbus.SubjectSyncCommands},
		Workers: 4,
		AckWait: time.Minute,
	}, w.handle)
	if err != nil {
		return fmt.Errorf("syncworker: %w", err)
	}
	w.consumer = c
	return nil
}

// Stop stops taking commands and waits for in-flight ones until ctx ends.
func (w *Worker) Stop(ctx context.Context) {
	if w.consumer != nil {
		w.consumer.Stop(ctx)
		w.consumer = nil
	}
}

// handle answers a command. No connector kinds are registered with this worker yet, so no
// command type is known to it: each is answered with a recorded failure rather than left
// unanswered.
func (w *Worker) handle(ctx context.Context, d natsbus.Delivery) error {
	var env command.Envelope
	if err := json.Unmarshal(d.Data, &env); err != nil {
		return natsbus.Permanent(fmt.Errorf("syncworker: undecodable command on %s: %w", d.Subject, err))
	}
	msg := fmt.Sprintf("unknown command type %q", env.Type)
	w.log.Warn().Str(logging.KeyCommandID, env.ID).Str(logging.KeyCommand, env.Type).Msg(msg)
	if err := w.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplyFailed, Code: http.StatusBadRequest, Message: msg, CreatedAt: store.Now(),
	}); err != nil {
		return err
	}
	if err := w.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplyFailed, Code: http.StatusBadRequest, Message: msg}); err != nil {
		w.log.Warn().Err(err).Str(logging.KeyCommandID, env.ID).Msg("reply not sent")
	}
	return nil
}
