// Package system assembles Runyard's services into one process: all of them on an embedded
// NATS server and an embedded store (standalone mode), or one service alone against external
// NATS and MongoDB (how a deployment scales them independently).
package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/config"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/mongostore"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/natsserver"
	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/sqlitestore"
	"github.com/runyard/runyard/libs/webhook"
	"github.com/runyard/runyard/services/executor"
	"github.com/runyard/runyard/services/executor/scheduler"
	"github.com/runyard/runyard/services/gateway"
	"github.com/runyard/runyard/services/notifier"
	"github.com/runyard/runyard/services/syncworker"
)

// serviceStore is what the services consume between them; both stores provide it.
type serviceStore interface {
	gateway.Store
	executor.Store
	scheduler.Store
	syncworker.Store
	notifier.Store
	Close(ctx context.Context) error
}

var (
	_ serviceStore = (*mongostore.Store)(nil)
	_ serviceStore = (*sqlitestore.Store)(nil)
)

// System is a running set of services and their dependencies.
type System struct {
	log      zerolog.Logger
	httpAddr net.Addr
	serveErr chan error
	// stops run in reverse order of construction.
	stops []func(ctx context.Context)
}

// Start builds and starts the services of mode. Announcements meant for the operator's eyes
// (a generated admin API key) are written to out, never to the log.
func Start(ctx context.Context, mode config.Mode, cfg config.Config, log zerolog.Logger, out io.Writer) (sys *System, err error) {
	s := &System{log: log, serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Stop(context.WithoutCancel(ctx))
		}
	}()

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := natsserver.Start(natsserver.Config{Addr: cfg.NATSAddr, StoreDir: filepath.Join(cfg.DataDir, "nats")})
		if err != nil {
			return nil, err
		}
		s.onStop(func(context.Context) { ns.Shutdown() })
		natsURL = ns.URL()
		log.Info().Str(logging.KeyAddr, natsURL).Msg("embedded nats server started")
	}
	bus, err := natsbus.Connect(ctx, natsURL, "runyard-"+string(mode), log)
	if err != nil {
		return nil, err
	}
	s.onStop(func(context.Context) { bus.Close() })
	if err := bus.Setup(ctx, natsbus.StreamOptions{Replicas: cfg.NATSReplicas, EventMaxAge: cfg.EventMaxAge, EventMaxBytes: cfg.EventMaxBytes}); err != nil {
		return nil, err
	}

	st, err := openStore(ctx, mode, cfg, log)
	if err != nil {
		return nil, err
	}
	s.onStop(func(ctx context.Context) { _ = st.Close(ctx) })

	if cfg.SecretKey == nil && mode == config.ModeStandalone {
		// One process owns the data directory, so a key kept beside the database (mode 0600)
		// is as safe as the credentials it seals; separate processes must share
		// RUNYARD_SECRET_KEY instead.
		key, err := connector.LoadOrCreateKeyFile(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.SecretKey = key
		log.Info().Str("path", filepath.Join(cfg.DataDir, connector.KeyFileName)).Msg("connector secret key read from the data directory")
	}

	if mode == config.ModeStandalone || mode == config.ModeExecutor {
		ex := executor.New(executor.Config{Workers: cfg.ExecutorWorkers, LogLimit: cfg.BlockLogMaxBytes}, st, bus, log.With().Str(logging.KeyService, "executor").Logger())
		if err := ex.Start(ctx); err != nil {
			return nil, err
		}
		s.onStop(ex.Stop)
		// Every executor process contends for the scheduler lease; the holder fires time
		// schedules. Stopped before the executor (stops run in reverse), releasing the lease.
		lease, err := bus.NewLease(ctx, natsbus.LeaseConfig{Key: natsbus.LeaseScheduler})
		if err != nil {
			return nil, err
		}
		sch := scheduler.New(scheduler.Config{}, st, bus, lease, log.With().Str(logging.KeyService, "scheduler").Logger())
		sch.Start(ctx)
		s.onStop(sch.Stop)
	}
	var ciph *connector.Cipher // nil without a key: connector writes and syncs are refused
	if cfg.SecretKey != nil {
		if ciph, err = connector.NewCipher(cfg.SecretKey); err != nil {
			return nil, err
		}
	}
	if mode == config.ModeSyncWorker && ciph == nil {
		log.Warn().Msg("no RUNYARD_SECRET_KEY: connector credentials cannot be opened, so every sync and Airflow trigger fails")
	}
	if mode == config.ModeStandalone || mode == config.ModeSyncWorker {
		sw := syncworker.New(syncworker.Config{
			Cipher: ciph, AllowPrivate: cfg.ConnectorAllowPrivate, Syncs: cfg.SyncWorkers, Fetches: cfg.SyncFetches,
			RateLimit: cfg.SyncRateLimit, PollInterval: cfg.SyncPollInterval, Overlap: cfg.SyncOverlap, Scheduler: true,
		}, st, bus, log.With().Str(logging.KeyService, "syncworker").Logger())
		if err := sw.Start(ctx); err != nil {
			return nil, err
		}
		s.onStop(sw.Stop)
	}
	guard := netguard.Guard{AllowPrivate: cfg.ConnectorAllowPrivate}
	// Webhook signing secrets are sealed with the connector key, when there is one; the
	// gateway seals, the notifier opens, so both need the same RUNYARD_SECRET_KEY.
	var webhookSecrets webhook.SecretBox
	if cfg.SecretKey != nil {
		c, err := connector.NewCipher(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		webhookSecrets = c
	}
	if mode == config.ModeStandalone || mode == config.ModeNotifier {
		nt := notifier.New(notifier.Config{Workers: cfg.NotifierWorkers, RetryHorizon: cfg.WebhookRetryHorizon, Guard: guard, Secrets: webhookSecrets},
			st, bus, log.With().Str(logging.KeyService, "notifier").Logger())
		if err := nt.Start(ctx); err != nil {
			return nil, err
		}
		s.onStop(nt.Stop)
	}
	if mode == config.ModeStandalone || mode == config.ModeGateway {
		gw := gateway.New(gateway.Config{DefaultSpace: cfg.DefaultSpace, CommandWait: cfg.CommandWait, MaxBodyBytes: cfg.MaxBodyBytes, WebhookGuard: guard, WebhookSecrets: webhookSecrets,
			ConnectorCipher: ciph, ConnectorAllowPrivate: cfg.ConnectorAllowPrivate},
			st, bus, log.With().Str(logging.KeyService, "gateway").Logger())
		key, err := gw.EnsureAdminKey(ctx, cfg.AdminAPIKey)
		if err != nil {
			return nil, err
		}
		if key != "" {
			fmt.Fprintf(out, "\nRunyard admin API key (shown once; keep it):\n\n    %s\n\n", key)
		}
		if err := gw.EnsureDefaultSpace(ctx); err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("system: listen on %s: %w", cfg.HTTPAddr, err)
		}
		if err := gw.StartEvents(ctx, bus, gateway.EventsConfig{Heartbeat: cfg.EventHeartbeat, ClientBuffer: cfg.EventClientBuffer}); err != nil {
			_ = ln.Close()
			return nil, err
		}
		s.httpAddr = ln.Addr()
		go func() { s.serveErr <- gw.Serve(ln) }()
		s.onStop(func(ctx context.Context) {
			if err := gw.Shutdown(ctx); err != nil {
				log.Warn().Err(err).Msg("gateway shutdown")
			}
		})
		log.Info().Str(logging.KeyAddr, s.httpAddr.String()).Msg("gateway listening")
	}
	return s, nil
}

// openStore opens MongoDB when RUNYARD_MONGO_URI is set, else the embedded SQLite store in
// the data directory.
func openStore(ctx context.Context, mode config.Mode, cfg config.Config, log zerolog.Logger) (serviceStore, error) {
	if cfg.MongoURI == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("system: data directory: %w", err)
		}
		st, err := sqlitestore.Open(ctx, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		log.Info().Str("path", filepath.Join(cfg.DataDir, sqlitestore.FileName)).Int("schema_version", sqlitestore.SchemaVersion()).Msg("embedded store opened")
		return st, nil
	}
	st, err := mongostore.Open(ctx, cfg.MongoURI, cfg.MongoDatabase)
	if err != nil {
		return nil, err
	}
	if st.ServerLacksAtomicWrites() && mode != config.ModeStandalone {
		log.Warn().Msg("the MongoDB server does not make conditional writes atomic (FerretDB): run only one Runyard process against it")
	}
	return st, nil
}

func (s *System) onStop(f func(context.Context)) { s.stops = append(s.stops, f) }

// HTTPAddr is the gateway's listening address, nil when this process runs no gateway.
func (s *System) HTTPAddr() net.Addr { return s.httpAddr }

// Err delivers an error if the HTTP server stops on its own.
func (s *System) Err() <-chan error { return s.serveErr }

// Stop shuts everything down in reverse order of start: intake first (HTTP, then consumers,
// which finish or hand back in-flight work until ctx ends), then NATS and the store.
func (s *System) Stop(ctx context.Context) {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i](ctx)
	}
	s.stops = nil
}

// ErrUsage reports a command line the binary does not understand.
var ErrUsage = errors.New("usage")
