// Package gateway is Runyard's HTTP front door: the Mage-compatible REST API under /api and the
// Qarion-compatible one under /api/v1.0. It authenticates and authorizes callers, reads the
// store, validates requests, and turns every action on runs into a command on JetStream; it
// never executes work or writes runs itself. It keeps no state but short-lived caches, so
// gateways scale out freely.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/idalloc"
	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/webhook"
)

// Store is what the gateway needs from storage. The gateway writes definitions (pipelines,
// schedules, backfills, API keys, spaces, users, memberships, teams, watches) directly; runs
// are written only by executors.
type Store interface {
	Ping(ctx context.Context) error
	NextIDs(ctx context.Context, name string, n int64) (int64, error)

	CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error
	GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error)
	ListPipelines(ctx context.Context, space string, pg store.Page) ([]pipeline.Pipeline, int64, error)
	ListPipelinesFiltered(ctx context.Context, f store.PipelineFilter, pg store.Page) ([]pipeline.Pipeline, int64, error)
	PipelineStats(ctx context.Context, space string, uuids []string, since time.Time) (map[string]store.PipelineStats, error)
	UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error)
	DeletePipeline(ctx context.Context, space, uuid string) error

	CreateSchedule(ctx context.Context, sc *schedule.Schedule) error
	GetSchedule(ctx context.Context, id int64) (*schedule.Schedule, error)
	GetSchedules(ctx context.Context, ids []int64) (map[int64]*schedule.Schedule, error)
	ListSchedules(ctx context.Context, f store.ScheduleFilter, pg store.Page) ([]schedule.Schedule, int64, error)
	UpdateSchedule(ctx context.Context, id int64, fn func(*schedule.Schedule) error) (*schedule.Schedule, error)
	DeleteSchedule(ctx context.Context, id int64) error

	GetRun(ctx context.Context, id int64) (*run.PipelineRun, error)
	GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error)
	ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error)
	ListBlockRuns(ctx context.Context, f store.BlockRunFilter, pg store.Page) ([]run.BlockRun, int64, error)
	BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error)
	GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error)

	PutAPIKey(ctx context.Context, k store.APIKey) error
	GetAPIKey(ctx context.Context, hash string) (*store.APIKey, error)
	CountAPIKeys(ctx context.Context) (int64, error)

	GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error)

	BackfillStore
	AccessStore
	WebhookStore
	CommentStore
	ConnectorStore
}

// Bus is what the gateway needs from JetStream.
type Bus interface {
	Ping(ctx context.Context) error
	PublishCommand(ctx context.Context, env command.Envelope) (duplicate bool, err error)
	// PublishEvent publishes the events of what the gateway writes itself (pipeline.updated).
	PublishEvent(ctx context.Context, subject string, ev event.Event) error
	WaitReply(commandID string) (<-chan command.Reply, func(), error)
}

// Config tunes a gateway.
type Config struct {
	DefaultSpace string
	// CommandWait bounds how long a request waits for a command's reply before answering 202.
	CommandWait  time.Duration
	MaxBodyBytes int
	// RequestTimeout bounds the work of one request.
	RequestTimeout time.Duration
	// WebhookGuard decides which webhook URLs are refused outright.
	WebhookGuard netguard.Guard
	// WebhookSecrets seals webhook secrets at rest; nil stores them in clear.
	WebhookSecrets webhook.SecretBox
	// ConnectorCipher seals connector credentials (RUNYARD_SECRET_KEY); nil refuses
	// connector writes with 503.
	ConnectorCipher *connector.Cipher
	// ConnectorAllowPrivate lets connectors reach loopback and private networks.
	ConnectorAllowPrivate bool
}

// SeqPipelineSchedules is the id sequence of pipeline schedules.
const SeqPipelineSchedules = "pipeline_schedules"

// Gateway serves the HTTP APIs.
type Gateway struct {
	cfg      Config
	store    Store
	bus      Bus
	log      zerolog.Logger
	app      *fiber.App
	keys     *keyCache
	roles    *roleCache
	schedIDs *idalloc.Allocator
	ready    atomic.Bool
	events   atomic.Pointer[hub] // the SSE event relay, once StartEvents ran
}

// New builds a gateway and its routes. Serve starts it.
func New(cfg Config, st Store, bus Bus, log zerolog.Logger) *Gateway {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	g := &Gateway{
		cfg:      cfg,
		store:    st,
		bus:      bus,
		log:      log,
		keys:     newKeyCache(st, keyCacheTTL, log),
		roles:    newRoleCache(roleCacheTTL),
		schedIDs: idalloc.New(st, SeqPipelineSchedules, 10),
	}
	g.app = fiber.New(fiber.Config{
		AppName:               "runyard",
		BodyLimit:             cfg.MaxBodyBytes,
		Immutable:             true,
		DisableStartupMessage: true,
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		ErrorHandler:          g.handleError,
	})
	g.routes()
	return g
}

// Serve answers requests on ln until Shutdown. It marks the gateway ready.
func (g *Gateway) Serve(ln net.Listener) error {
	g.ready.Store(true)
	if err := g.app.Listener(ln); err != nil {
		return fmt.Errorf("gateway: serve: %w", err)
	}
	return nil
}

// Shutdown marks the gateway not ready, stops accepting connections and waits for in-flight
// requests until ctx ends.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.ready.Store(false)
	// Event streams never end on their own; ending them first lets the server drain.
	g.stopEvents()
	if err := g.app.ShutdownWithContext(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// withDeadline gives every request a context with a deadline: fasthttp never cancels a
// handler's context when the client goes away, so without one a stuck call would hold the
// handler forever.
func (g *Gateway) withDeadline(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(g.log.WithContext(ctx))
	return c.Next()
}

func (g *Gateway) routes() {
	a := g.app
	a.Use(g.withDeadline)
	a.Get("/healthz", g.healthz)
	a.Get("/readyz", g.readyz)
	a.Get("/api/openapi.json", g.openAPI)

	// The trigger routes authenticate with the schedule's token, not an API key.
	a.Post("/api/pipeline_schedules/:id/pipeline_runs/:token", g.triggerByToken)
	a.Post("/api/pipeline_schedules/:id/api_trigger", g.triggerByBearer)

	// The Qarion-compatible API comes first: its routes and its catch-all end every request
	// under /api/v1.0, so the Mage-compatible group's authentication never sees them.
	g.qarionRoutes(a)

	api := a.Group("/api", g.authenticate)
	api.Get("/pipelines", g.listPipelines)
	api.Post("/pipelines", g.createPipeline)
	api.Get("/pipelines/:uuid", g.getPipeline)
	api.Put("/pipelines/:uuid", g.updatePipeline)
	api.Delete("/pipelines/:uuid", g.deletePipeline)
	api.Get("/pipelines/:uuid/pipeline_schedules", g.listPipelineSchedules)
	api.Post("/pipelines/:uuid/pipeline_schedules", g.createSchedule)
	api.Get("/pipeline_schedules/:id", g.getSchedule)
	api.Put("/pipeline_schedules/:id", g.updateSchedule)
	api.Delete("/pipeline_schedules/:id", g.deleteSchedule)
	api.Get("/pipeline_schedules/:id/pipeline_runs", g.listScheduleRuns)
	api.Post("/pipeline_schedules/:id/pipeline_runs", g.createRun)
	api.Get("/pipeline_runs", g.listRuns)
	api.Get("/pipeline_runs/:id", g.getRun)
	api.Put("/pipeline_runs/:id", g.updateRun)
	api.Get("/pipeline_runs/:id/block_runs", g.listRunBlockRuns)
	api.Get("/block_runs", g.listBlockRuns)
	api.Get("/block_runs/:id/logs", g.blockRunLogs)
	api.Get("/pipelines/:uuid/logs", g.pipelineLogs)
	api.Get("/commands/:id", g.getCommand)
	api.Post("/pipelines/:uuid/backfills", g.createBackfill)
	api.Get("/backfills", g.listBackfills)
	api.Get("/backfills/:id", g.getBackfill)
	api.Put("/backfills/:id", g.updateBackfill)
	api.Delete("/backfills/:id", g.deleteBackfill)
	a.Use(func(c *fiber.Ctx) error {
		return errNotFound("no route %s %s", c.Method(), c.Path())
	})
}

func (g *Gateway) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 only when this gateway takes traffic and both NATS and the store answer.
func (g *Gateway) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	checks := fiber.Map{"nats": "ok", "store": "ok", "serving": "ok"}
	ok := true
	if !g.ready.Load() {
		checks["serving"], ok = "shutting down", false
	}
	if err := g.bus.Ping(ctx); err != nil {
		checks["nats"], ok = err.Error(), false
	}
	if err := g.store.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	status := fiber.StatusOK
	if !ok {
		status = fiber.StatusServiceUnavailable
	}
	return c.Status(status).JSON(fiber.Map{"ready": ok, "checks": checks})
}
