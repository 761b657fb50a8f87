// Package notifier delivers Runyard's events to the webhooks spaces subscribe. It reads the
// event stream through one durable consumer shared by every notifier process (so each event
// is fanned out once), records a delivery per matching subscription, and sends it signed.
//
// The store, not the stream, drives delivery: a delivery record is created idempotently
// (its id is derived from the subscription and the event), attempts are claimed with a lease
// so two workers never send the same attempt, and failed attempts are retried from the store
// with exponential backoff until the retry horizon. So an event acked on the stream is never
// lost to a receiver that is down, and an event redelivered by the stream is never sent again
// to a receiver that already took it.
package notifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/webhook"
)

// Store is what the notifier needs from storage.
type Store interface {
	ActiveWebhooks(ctx context.Context, space string) ([]webhook.Subscription, error)
	GetWebhook(ctx context.Context, space, id string) (*webhook.Subscription, error)
	EnsureDelivery(ctx context.Context, d *webhook.Delivery) (*webhook.Delivery, error)
	ClaimDelivery(ctx context.Context, id string, now time.Time, lease time.Duration, token string) (*webhook.Delivery, error)
	FinishDelivery(ctx context.Context, d *webhook.Delivery, token string) error
	DueDeliveries(ctx context.Context, now time.Time, skip []string, limit int) ([]webhook.Delivery, error)
}

// Bus is what the notifier needs from JetStream.
type Bus interface {
	Consume(ctx context.Context, cfg natsbus.ConsumerConfig, h natsbus.Handler) (*natsbus.Consumer, error)
}

// Config tunes a notifier. Zero fields take the defaults.
type Config struct {
	// Workers bounds the requests this process sends at once (16).
	Workers int
	// PerWebhook bounds the requests in flight to one webhook (2), so that a slow endpoint
	// holds at most this many workers and never blocks deliveries to the others.
	PerWebhook int
	// RetryHorizon is how long after its creation a delivery is still retried (24h).
	RetryHorizon time.Duration
	// RequestTimeout bounds one attempt (10s).
	RequestTimeout time.Duration
	// Lease is how long a claimed attempt is this process's alone (1m); longer than
	// RequestTimeout, so a lease only expires when its holder died.
	Lease time.Duration
	// CacheTTL bounds how long a space's active webhooks are trusted (2s): a webhook created
	// or changed through the gateway takes effect within it.
	CacheTTL time.Duration
	// PollInterval is how often due retries are looked for (1s).
	PollInterval time.Duration
	// Guard decides which addresses deliveries may reach.
	Guard netguard.Guard
	// Secrets opens sealed webhook secrets; nil when they are stored in clear.
	Secrets webhook.SecretBox
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.PerWebhook <= 0 {
		c.PerWebhook = 2
	}
	if c.RetryHorizon <= 0 {
		c.RetryHorizon = 24 * time.Hour
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Lease <= c.RequestTimeout {
		c.Lease = max(time.Minute, 2*c.RequestTimeout)
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 2 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
}

// Notifier is one notifier process's delivery worker.
type Notifier struct {
	cfg    Config
	store  Store
	bus    Bus
	log    zerolog.Logger
	client *http.Client
	cache  *webhookCache
	// holder prefixes this process's lease tokens; seq makes each token unique.
	holder string
	seq    atomic.Uint64

	consumer *natsbus.Consumer
	ctx      context.Context // attempts and polling; cancelled by Stop
	cancel   context.CancelFunc
	wake     chan struct{}
	loopDone chan struct{}
	attempts sync.WaitGroup

	mu       sync.Mutex
	stopping bool
	inflight map[string]bool // delivery ids being attempted here
	perHook  map[string]int  // attempts in flight per webhook
	total    int
}

// New returns a notifier; Start begins delivering.
func New(cfg Config, st Store, bus Bus, log zerolog.Logger) *Notifier {
	cfg.defaults()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Notifier{
		cfg: cfg, store: st, bus: bus, log: log,
		client:   cfg.Guard.Client(cfg.RequestTimeout),
		cache:    &webhookCache{ttl: cfg.CacheTTL, m: map[string]cachedWebhooks{}},
		holder:   hex.EncodeToString(b[:]),
		wake:     make(chan struct{}, 1),
		inflight: map[string]bool{},
		perHook:  map[string]int{},
	}
}

// Start creates the durable consumer and starts the retry loop.
func (n *Notifier) Start(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c, err := n.bus.Consume(ctx, natsbus.ConsumerConfig{
		Stream:  natsbus.StreamEvents,
		Durable: natsbus.DurableNotifierEvents,
		// No subject filter: the notifier decides from the event's own fields, whatever the
		// subject scheme.
		Workers: 8,
		AckWait: 30 * time.Second,
	}, n.handle)
	if err != nil {
		n.cancel()
		return fmt.Errorf("notifier: %w", err)
	}
	n.consumer = c
	n.loopDone = make(chan struct{})
	go n.loop()
	return nil
}

// Stop stops taking events and waits for in-flight attempts until ctx ends; attempts cut
// short then are not recorded, and their leases let another notifier retry them.
func (n *Notifier) Stop(ctx context.Context) {
	if n.consumer != nil {
		n.consumer.Stop(ctx)
		n.consumer = nil
	}
	if n.cancel == nil {
		return
	}
	n.mu.Lock()
	n.stopping = true // no attempt starts after this, so the wait below is final
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.attempts.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	n.cancel()
	<-done
	if n.loopDone != nil {
		<-n.loopDone
	}
}

// eventFields are the parts of an event the notifier routes on. Any event type carries
// type, id, space and occurred_at; the pipeline is found in the resource it carries.
type eventFields struct {
	Type         string          `json:"type"`
	ID           string          `json:"id"`
	Space        string          `json:"space"`
	OccurredAt   time.Time       `json:"occurred_at"`
	PipelineUUID string          `json:"pipeline_uuid"`
	PipelineRun  *pipelineFields `json:"pipeline_run"`
	BlockRun     *pipelineFields `json:"block_run"`
	Comment      *pipelineFields `json:"comment"`
	Sync         *pipelineFields `json:"sync"`
	Pipeline     *pipelineFields `json:"pipeline"`
}

type pipelineFields struct {
	PipelineUUID string `json:"pipeline_uuid"`
	PipelineID   string `json:"pipeline_id"`
	UUID         string `json:"uuid"`
}

// pipeline is the id of the pipeline the event is about, "" when none.
func (e *eventFields) pipeline() string {
	if e.PipelineUUID != "" {
		return e.PipelineUUID
	}
	if e.Pipeline != nil && e.Pipeline.UUID != "" {
		return e.Pipeline.UUID
	}
	for _, r := range []*pipelineFields{e.PipelineRun, e.BlockRun, e.Comment, e.Sync, e.Pipeline} {
		if r == nil {
			continue
		}
		if r.PipelineUUID != "" {
			return r.PipelineUUID
		}
		if r.PipelineID != "" {
			return r.PipelineID
		}
	}
	return ""
}

// handle records a delivery of the event for every matching webhook of its space, then
// starts the due ones. The message is acked only once every record is written, so a crash in
// between redelivers it, and the derived delivery ids make the second pass find the records
// of the first.
func (n *Notifier) handle(ctx context.Context, d natsbus.Delivery) error {
	var ev eventFields
	if err := json.Unmarshal(d.Data, &ev); err != nil {
		return natsbus.Permanent(fmt.Errorf("notifier: undecodable event on %s: %w", d.Subject, err))
	}
	if ev.ID == "" || ev.Type == "" || ev.Space == "" {
		n.log.Warn().Str(logging.KeySubject, d.Subject).Msg("event without id, type or space skipped")
		return nil
	}
	hooks, err := n.cache.get(ctx, n.store, ev.Space)
	if err != nil {
		return err
	}
	pipeline := ev.pipeline()
	now := store.Now()
	var due []webhook.Delivery
	for i := range hooks {
		h := &hooks[i]
		if h.Space != ev.Space || !h.Matches(ev.Type, pipeline, ev.OccurredAt) {
			continue
		}
		next := now
		rec, err := n.store.EnsureDelivery(ctx, &webhook.Delivery{
			ID: webhook.DeliveryID(h.ID, ev.ID), SubscriptionID: h.ID, Space: ev.Space, EventID: ev.ID, EventType: ev.Type,
			Payload: d.Data, Status: webhook.StatusPending, NextAttemptAt: &next, CreatedAt: now, GiveUpAt: now.Add(n.cfg.RetryHorizon),
		})
		if err != nil {
			return fmt.Errorf("notifier: record delivery of %s to %s: %w", ev.ID, h.ID, err)
		}
		if rec.Due(now) {
			due = append(due, *rec)
		}
	}
	for _, r := range due {
		if !n.dispatch(r) {
			n.poke() // no free slot now: the retry loop takes it when one frees
		}
	}
	return nil
}

// dispatch starts an attempt of d unless it is already in flight here or there is no free
// slot, globally or for its webhook. It never blocks: a delivery not started now stays due in
// the store, and the retry loop starts it later.
func (n *Notifier) dispatch(d webhook.Delivery) bool {
	n.mu.Lock()
	if n.stopping || n.inflight[d.ID] || n.total >= n.cfg.Workers || n.perHook[d.SubscriptionID] >= n.cfg.PerWebhook {
		n.mu.Unlock()
		return false
	}
	n.inflight[d.ID] = true
	n.perHook[d.SubscriptionID]++
	n.total++
	n.attempts.Add(1)
	n.mu.Unlock()
	go func() {
		defer func() {
			n.mu.Lock()
			delete(n.inflight, d.ID)
			if n.perHook[d.SubscriptionID]--; n.perHook[d.SubscriptionID] <= 0 {
				delete(n.perHook, d.SubscriptionID)
			}
			n.total--
			n.mu.Unlock()
			n.attempts.Done()
			n.poke()
		}()
		n.attempt(d)
	}()
	return true
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// loop starts due deliveries: retries whose time has come, and deliveries no slot was free
// for, or whose notifier died mid-attempt (once its lease expired).
func (n *Notifier) loop() {
	defer close(n.loopDone)
	t := time.NewTicker(n.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
		n.startDue()
	}
}

func (n *Notifier) startDue() {
	n.mu.Lock()
	free := n.cfg.Workers - n.total
	var skip []string
	for id, c := range n.perHook {
		if c >= n.cfg.PerWebhook {
			skip = append(skip, id)
		}
	}
	n.mu.Unlock()
	if free <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	due, err := n.store.DueDeliveries(ctx, store.Now(), skip, free*2)
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.Warn().Err(err).Msg("due webhook deliveries not read")
		}
		return
	}
	for _, d := range due {
		n.dispatch(d)
	}
}

// attempt claims d, sends it once and records the outcome.
func (n *Notifier) attempt(d webhook.Delivery) {
	log := n.log.With().Str("delivery_id", d.ID).Str("webhook_id", d.SubscriptionID).Str(logging.KeySpace, d.Space).Logger()
	token := n.holder + "-" + strconv.FormatUint(n.seq.Add(1), 10)
	claimed, err := n.store.ClaimDelivery(n.ctx, d.ID, store.Now(), n.cfg.Lease, token)
	if errors.Is(err, store.ErrNotFound) {
		return // attempted meanwhile by another worker, or finished
	}
	if err != nil {
		if n.ctx.Err() == nil {
			log.Warn().Err(err).Msg("webhook delivery not claimed")
		}
		return
	}
	hook, err := n.store.GetWebhook(n.ctx, claimed.Space, claimed.SubscriptionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		n.finish(log, claimed, token, func(d *webhook.Delivery) { giveUp(d, reasonDeleted) })
		return
	case err != nil:
		log.Warn().Err(err).Msg("webhook not read; the attempt is retried when its lease expires")
		return
	case !hook.Active:
		n.finish(log, claimed, token, func(d *webhook.Delivery) { giveUp(d, reasonInactive) })
		return
	}
	code, reason := n.send(hook, claimed)
	if n.ctx.Err() != nil && code == 0 {
		return // cut short by shutdown: not the receiver's failure
	}
	at := store.Now()
	n.finish(log, claimed, token, func(d *webhook.Delivery) {
		if code >= 200 && code < 300 {
			d.Succeed(at, code)
			return
		}
		d.Fail(at, code, reason)
	})
}

// Why a delivery is given up unsent.
const (
	reasonDeleted  = "webhook deleted"
	reasonInactive = "webhook inactive"
)

func giveUp(d *webhook.Delivery, reason string) {
	d.Status = webhook.StatusFailed
	d.LastError = reason
	d.NextAttemptAt = nil
}

// finish records the attempt's outcome. It runs even while shutting down: the attempt was
// made, and recording it keeps a success from being sent again.
func (n *Notifier) finish(log zerolog.Logger, d *webhook.Delivery, token string, outcome func(*webhook.Delivery)) {
	outcome(d)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(n.ctx), 10*time.Second)
	defer cancel()
	if err := n.store.FinishDelivery(ctx, d, token); err != nil {
		log.Warn().Err(err).Str(logging.KeyStatus, d.Status).Msg("webhook delivery outcome not recorded")
		return
	}
	// A delivery given up unsent (its webhook deleted or paused) is expected, not a fault:
	// only a receiver's failure is worth a warning.
	ev := log.Debug()
	if d.Status == webhook.StatusFailed && d.LastError != reasonDeleted && d.LastError != reasonInactive {
		ev = log.Warn()
	}
	ev.Str(logging.KeyStatus, d.Status).Int("attempts", d.Attempts).Int("response_code", d.ResponseCode).Str("last_error", d.LastError).Msg("webhook delivery attempted")
}

// maxResponseRead bounds how much of a receiver's answer is read (and discarded) so the
// connection can be reused.
const maxResponseRead = 64 << 10

// send POSTs the delivery, signed, and returns the response code (0 when there was none)
// and, for a failure, a reason fit for the delivery log: no URL (it may hold a token), no
// response body.
func (n *Notifier) send(hook *webhook.Subscription, d *webhook.Delivery) (int, string) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, "invalid webhook URL"
	}
	secret, err := hook.SigningSecret(n.cfg.Secrets)
	if err != nil {
		return 0, "signing secret unavailable: " + err.Error()
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhook.UserAgent)
	req.Header.Set(webhook.HeaderEvent, d.EventType)
	req.Header.Set(webhook.HeaderDelivery, d.ID)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, d.Payload))
	res, err := n.client.Do(req)
	if err != nil {
		return 0, reason(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxResponseRead))
	_ = res.Body.Close()
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res.StatusCode, ""
	}
	return res.StatusCode, "receiver answered " + res.Status
}

// reason words a request error without the URL that url.Error quotes.
func reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, netguard.ErrRefused):
		return "address refused: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return err.Error()
}

// webhookCache keeps each space's active webhooks briefly, so that a burst of events costs
// one store read per space rather than one per event.
type webhookCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedWebhooks
}

type cachedWebhooks struct {
	hooks   []webhook.Subscription
	expires time.Time
}

// maxCachedSpaces bounds the cache; past it, it starts over.
const maxCachedSpaces = 10000

func (c *webhookCache) get(ctx context.Context, st Store, space string) ([]webhook.Subscription, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[space]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.hooks, nil
	}
	hooks, err := st.ActiveWebhooks(ctx, space)
	if err != nil {
		return nil, fmt.Errorf("notifier: webhooks of %s: %w", space, err)
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedSpaces {
		c.m = map[string]cachedWebhooks{}
	}
	c.m[space] = cachedWebhooks{hooks: hooks, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return hooks, nil
}
