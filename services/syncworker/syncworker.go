// Package syncworker mirrors external orchestrators (Airflow) into Runyard and triggers runs
// on them. It consumes the commands under runyard.cmd.sync.> from one durable work-queue
// consumer that every sync worker process shares:
//
//   - sync.connector runs a sync job: DAGs, DAG runs and task instances of one connector
//     become pipelines, runs and block runs;
//   - sync.poll refreshes a connector's unfinished mirrored runs between syncs;
//   - sync.trigger creates a DAG run in Airflow and stores it at once.
//
// A per-connector lease in the RUNYARD_LEASES key-value bucket keeps one sync or poll of a
// connector running at a time across all workers; different connectors sync in parallel.
// A scheduler loop, run by whichever worker holds the sync-scheduler lease, starts each
// connector's periodic syncs and its polls.
package syncworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// Store is what the sync worker needs from storage.
type Store interface {
	SaveOutcome(ctx context.Context, o store.CommandOutcome) error
	GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error)

	GetConnector(ctx context.Context, space, id string) (*connector.Connector, error)
	ListConnectors(ctx context.Context, f connector.ConnectorFilter, pg store.Page) ([]connector.Connector, int64, error)
	UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error)
	command.JobStore
	GetSyncJob(ctx context.Context, space, id string) (*connector.SyncJob, error)
	UpdateSyncJob(ctx context.Context, space, id string, fn func(*connector.SyncJob) error) (*connector.SyncJob, error)

	UpsertProviderPipeline(ctx context.Context, p *pipeline.Pipeline) (connector.Outcome, error)
	UpsertProviderRun(ctx context.Context, r *run.PipelineRun) (connector.Outcome, error)
	UpsertProviderRuns(ctx context.Context, items []connector.RunUpsert) error

	ListPipelinesFiltered(ctx context.Context, f store.PipelineFilter, pg store.Page) ([]pipeline.Pipeline, int64, error)
	GetRun(ctx context.Context, id int64) (*run.PipelineRun, error)
	GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error)
	GetRunsByCommands(ctx context.Context, commandIDs ...string) ([]run.PipelineRun, error)
	ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error)
}

// Bus is what the sync worker needs from NATS.
type Bus interface {
	Consume(ctx context.Context, cfg natsbus.ConsumerConfig, h natsbus.Handler) (*natsbus.Consumer, error)
	Reply(r command.Reply) error
	PublishCommand(ctx context.Context, env command.Envelope) (duplicate bool, err error)
	PublishEvent(ctx context.Context, subject string, ev event.Event) error
	NewLease(ctx context.Context, cfg natsbus.LeaseConfig) (*natsbus.Lease, error)
}

// Config tunes a sync worker. Zero fields take the defaults in brackets.
type Config struct {
	// Cipher opens connectors' sealed credentials; nil refuses every command that needs
	// them (no RUNYARD_SECRET_KEY).
	Cipher *connector.Cipher
	// AllowPrivate lets connectors reach loopback and private networks.
	AllowPrivate bool
	// Syncs is how many connectors one process syncs at once [4].
	Syncs int
	// Fetches is how many Airflow reads (task-instance listings, runs read by id) one sync
	// or poll has in flight at once [4].
	Fetches int
	// RateLimit is the most requests per second sent to one connector's Airflow [10].
	RateLimit float64
	// Tick is how often the scheduler looks for connectors due for a sync [5s].
	Tick time.Duration
	// PollInterval is how often a connector's unfinished mirrored runs are re-read [5s].
	PollInterval time.Duration
	// Overlap is subtracted from the previous sync's start when asking Airflow for runs
	// updated since: it absorbs clock skew and rows that offset paging skipped [2m].
	Overlap time.Duration
	// BusyRetry is how long a sync command whose connector is being synced waits before it
	// is tried again [2s].
	BusyRetry time.Duration
	// Scheduler turns the periodic scheduler on (every process contends for its lease).
	Scheduler bool
	// Now is the worker's clock [time.Now].
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Syncs <= 0 {
		c.Syncs = 4
	}
	if c.Fetches <= 0 {
		c.Fetches = 4
	}
	if c.RateLimit <= 0 {
		c.RateLimit = airflow.DefaultRateLimit
	}
	if c.Tick <= 0 {
		c.Tick = 5 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Overlap <= 0 {
		c.Overlap = 2 * time.Minute
	}
	if c.BusyRetry <= 0 {
		c.BusyRetry = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Worker is one sync worker process.
type Worker struct {
	cfg      Config
	store    Store
	bus      Bus
	log      zerolog.Logger
	consumer *natsbus.Consumer
	// syncSlots bounds the syncs and polls running at once, so that the consumer's other
	// slots stay free for triggers, which a caller waits on.
	syncSlots chan struct{}

	clientsMu sync.Mutex
	clients   map[string]cachedClient

	stopScheduler context.CancelFunc
	schedulerDone chan struct{}
}

// cachedClient is a connector's Airflow client, kept between syncs so that a JWT and the
// detected version are reused; key is what the client was built from (clientKey).
type cachedClient struct {
	key    string
	client *airflow.Client
}

// clientKey is what a connector's client depends on: a change of any of it builds a new
// client. The sync's own writes (last_sync, watermark) do not.
func clientKey(c *connector.Connector) string {
	return strings.Join([]string{c.BaseURL, c.APIVersion, c.Auth.Kind, c.Auth.Username, c.Auth.SecretSealed}, "\x00")
}

// New returns a worker; Start begins consuming.
func New(cfg Config, st Store, bus Bus, log zerolog.Logger) *Worker {
	cfg.setDefaults()
	return &Worker{cfg: cfg, store: st, bus: bus, log: log, syncSlots: make(chan struct{}, cfg.Syncs), clients: map[string]cachedClient{}}
}

// triggerSlots are consumer slots beyond the sync slots, kept for trigger commands.
const triggerSlots = 4

// Start creates the durable consumer and begins handling commands, and the scheduler loop
// when configured.
func (w *Worker) Start(ctx context.Context) error {
	c, err := w.bus.Consume(ctx, natsbus.ConsumerConfig{
		Stream:  natsbus.StreamCommands,
		Durable: natsbus.DurableSyncWorkerCommands,
		Filters: []string{natsbus.SubjectSyncCommands},
		Workers: w.cfg.Syncs + triggerSlots,
		AckWait: time.Minute,
	}, w.handle)
	if err != nil {
		return fmt.Errorf("syncworker: %w", err)
	}
	w.consumer = c
	if w.cfg.Scheduler {
		lease, err := w.bus.NewLease(ctx, natsbus.LeaseConfig{Key: LeaseSyncScheduler})
		if err != nil {
			w.consumer.Stop(ctx)
			return fmt.Errorf("syncworker: %w", err)
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w.stopScheduler, w.schedulerDone = cancel, make(chan struct{})
		go func() {
			defer close(w.schedulerDone)
			_ = lease.Run(sctx, w.schedule)
		}()
	}
	return nil
}

// Stop stops the scheduler, stops taking commands and waits for in-flight ones until ctx
// ends; a sync cut short is redelivered to another worker, which resumes its job.
func (w *Worker) Stop(ctx context.Context) {
	if w.stopScheduler != nil {
		w.stopScheduler()
		<-w.schedulerDone
		w.stopScheduler = nil
	}
	if w.consumer != nil {
		w.consumer.Stop(ctx)
		w.consumer = nil
	}
}

// handle dispatches a command by type.
func (w *Worker) handle(ctx context.Context, d natsbus.Delivery) error {
	var env command.Envelope
	if err := json.Unmarshal(d.Data, &env); err != nil {
		return natsbus.Permanent(fmt.Errorf("syncworker: undecodable command on %s: %w", d.Subject, err))
	}
	log := w.log.With().Str(logging.KeyCommandID, env.ID).Str(logging.KeyCommand, env.Type).Str(logging.KeySpace, env.Space).Logger()
	ctx = log.WithContext(ctx)
	switch env.Type {
	case command.TypeSyncConnector:
		var p command.SyncConnector
		if err := decodePayload(env, &p); err != nil {
			return err
		}
		return w.handleSync(ctx, env, p)
	case command.TypePollConnector:
		var p command.PollConnector
		if err := decodePayload(env, &p); err != nil {
			return err
		}
		return w.handlePoll(ctx, env, p)
	case command.TypeTriggerProviderRun:
		var p command.TriggerProviderRun
		if err := decodePayload(env, &p); err != nil {
			return w.fail(ctx, env, http.StatusBadRequest, err.Error())
		}
		return w.handleTrigger(ctx, env, p, d.NumDelivered)
	}
	msg := fmt.Sprintf("unknown command type %q", env.Type)
	log.Warn().Msg(msg)
	return w.fail(ctx, env, http.StatusBadRequest, msg)
}

func decodePayload(env command.Envelope, v any) error {
	if err := json.Unmarshal(env.Payload, v); err != nil {
		return natsbus.Permanent(fmt.Errorf("syncworker: %s payload: %w", env.Type, err))
	}
	return nil
}

// fail records a command's failure and answers it, so that a waiting gateway and a later
// lookup both see it.
func (w *Worker) fail(ctx context.Context, env command.Envelope, code int, msg string) error {
	if err := w.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplyFailed, Code: code, Message: msg, CreatedAt: store.Now(),
	}); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return err
	}
	if err := w.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplyFailed, Code: code, Message: msg}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent")
	}
	return nil
}

// client returns the connector's Airflow client, reusing the one built from the same record
// version.
func (w *Worker) client(conn *connector.Connector) (*airflow.Client, error) {
	if w.cfg.Cipher == nil {
		return nil, errNoSecretKey
	}
	w.clientsMu.Lock()
	defer w.clientsMu.Unlock()
	key := clientKey(conn)
	if c, ok := w.clients[conn.ID]; ok && c.key == key {
		return c.client, nil
	}
	c, err := connector.NewClient(conn, w.cfg.Cipher, connector.ClientOptions{
		AllowPrivate: w.cfg.AllowPrivate, RateLimit: w.cfg.RateLimit, Logger: w.log,
	})
	if err != nil {
		return nil, err
	}
	w.clients[conn.ID] = cachedClient{key: key, client: c}
	return c, nil
}

var errNoSecretKey = errors.New("syncworker: no RUNYARD_SECRET_KEY is configured, so connector credentials cannot be opened")

// publish appends an event, retrying briefly; an event that cannot be published is logged
// with its id, never dropped silently.
func (w *Worker) publish(ctx context.Context, subject string, ev event.Event) {
	if err := natsbus.PublishEventRetrying(ctx, w.bus, subject, ev, 4, 5*time.Second); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("event_id", ev.ID).Str(logging.KeySubject, subject).Msg("event not published")
	}
}

func (w *Worker) emitRun(ctx context.Context, r *run.PipelineRun) {
	w.publish(ctx, natsbus.RunEventSubject(r.Space, r.PipelineUUID, r.ID, r.Status), event.PipelineRunStatusChanged(r))
}

func (w *Worker) emitBlockRun(ctx context.Context, r *run.PipelineRun, br *run.BlockRun) {
	w.publish(ctx, natsbus.BlockRunEventSubject(r.Space, r.PipelineUUID, r.ID, br.Status), event.BlockRunStatusChanged(r, br))
}

// emitSync publishes sync.started, sync.completed or sync.failed with the job as it is.
func (w *Worker) emitSync(ctx context.Context, j *connector.SyncJob, typ string) {
	status := map[string]string{event.TypeSyncStarted: "started", event.TypeSyncCompleted: "completed", event.TypeSyncFailed: "failed"}[typ]
	ev := event.Event{
		Type: typ, Version: event.Version, ID: "sync-" + j.ID + "-" + status, OccurredAt: j.UpdatedAt,
		Space: j.Space, Sync: j,
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	w.publish(ctx, natsbus.SyncEventSubject(j.Space, j.ConnectorID, j.ID, status), ev)
}
