package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	Subject      string
	Data         []byte
	NumDelivered uint64
}

// Handler processes one delivery. Its result decides the ack:
//   - nil: Ack, after the handler's durable writes.
//   - an error wrapping ErrPermanent: TermWithReason, the message is never redelivered (the
//     handler records the failure itself when it matters).
//   - an error from Retry: NakWithDelay with the delay it carries.
//   - any other error: NakWithDelay with a default delay; the message comes back.
//
// While the handler runs, the adapter tells the server the message is in progress, so long
// work is not redelivered to another worker.
type Handler func(ctx context.Context, d Delivery) error

// ErrPermanent marks an error that retrying cannot fix (a poison message).
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err as permanent.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Retry asks for redelivery after delay.
func Retry(err error, delay time.Duration) error { return &retryError{err: err, delay: delay} }

// ConsumerConfig describes a durable pull consumer.
type ConsumerConfig struct {
	Stream  string
	Durable string
	Filters []string
	// Workers is how many deliveries are handled at once.
	Workers int
	// AckWait is how long the server waits for an ack before redelivering; the adapter marks
	// long-running deliveries in progress well within it.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries of one message; -1 means unbounded.
	MaxDeliver int
}

const defaultRetryDelay = time.Second

// Consumer is a running durable consumer.
type Consumer struct {
	cc       jetstream.ConsumeContext
	cancel   context.CancelFunc
	mu       sync.Mutex // orders inflight.Add against Stop's Wait
	stopped  bool
	inflight sync.WaitGroup
}

// Consume creates (or updates) the durable consumer and starts handling deliveries with h.
// Handlers get a context that Stop cancels when its deadline passes.
func (b *Bus) Consume(ctx context.Context, cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = -1
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		FilterSubjects: cfg.Filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     cfg.MaxDeliver,
		MaxAckPending:  cfg.Workers * 4,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Consumer{cancel: cancel}
	sem := make(chan struct{}, cfg.Workers)
	log := b.log.With().Str("consumer", cfg.Durable).Logger()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		c.mu.Lock()
		if c.stopped {
			// Delivered after Stop began: hand it straight back for another process.
			c.mu.Unlock()
			<-sem
			_ = m.Nak()
			return
		}
		c.inflight.Add(1)
		c.mu.Unlock()
		go func() {
			defer func() { <-sem; c.inflight.Done() }()
			handle(hctx, m, h, cfg.AckWait, log)
		}()
	}, jetstream.PullMaxMessages(cfg.Workers*2), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			log.Warn().Err(err).Msg("consume")
		}
	}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("natsbus: consume %s: %w", cfg.Durable, err)
	}
	c.cc = cc
	return c, nil
}

func handle(ctx context.Context, m jetstream.Msg, h Handler, ackWait time.Duration, log zerolog.Logger) {
	d := Delivery{Subject: m.Subject(), Data: m.Data()}
	if md, err := m.Metadata(); err == nil {
		d.NumDelivered = md.NumDelivered
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	err := h(ctx, d)
	close(done)
	var re *retryError
	switch {
	case err == nil:
		if aerr := m.Ack(); aerr != nil {
			log.Warn().Err(aerr).Str(logging.KeySubject, d.Subject).Msg("ack failed; the message will be redelivered")
		}
	case errors.Is(err, ErrPermanent):
		log.Error().Err(err).Str(logging.KeySubject, d.Subject).Msg("message terminated")
		_ = m.TermWithReason(err.Error())
	case errors.As(err, &re):
		log.Debug().Err(err).Str(logging.KeySubject, d.Subject).Dur("delay", re.delay).Msg("message retried")
		_ = m.NakWithDelay(re.delay)
	default:
		log.Warn().Err(err).Str(logging.KeySubject, d.Subject).Uint64("delivered", d.NumDelivered).Msg("message failed; retrying")
		_ = m.NakWithDelay(defaultRetryDelay)
	}
}

// Stop stops taking deliveries and waits for in-flight handlers until ctx ends; then it
// cancels their context. Deliveries not acked by then are redelivered to another worker.
func (c *Consumer) Stop(ctx context.Context) {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cc.Drain()
	done := make(chan struct{})
	go func() { c.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.cancel()
		<-done
	}
	c.cancel()
	select {
	case <-c.cc.Closed():
	case <-ctx.Done():
	}
}
