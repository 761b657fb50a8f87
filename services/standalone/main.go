// Command runyard runs Runyard: all services in one process (standalone), or one service
// alone (gateway, executor, syncworker, notifier) against external NATS and MongoDB.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // schedules name IANA zones; images may lack a zoneinfo database

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/config"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/services/standalone/system"
)

const usage = `usage: runyard <command>

commands:
  standalone   run every service in one process on embedded NATS and an embedded store
  gateway      run the HTTP gateway alone (needs RUNYARD_NATS_URL)
  executor     run an executor alone (needs RUNYARD_NATS_URL)
  syncworker   run a sync worker alone (needs RUNYARD_NATS_URL)
  notifier     run a webhook notifier alone (needs RUNYARD_NATS_URL)

Services alone use MongoDB (RUNYARD_MONGO_URI) or, without it, the SQLite store in
RUNYARD_DATA_DIR, which processes on one machine can share.
  env          list the environment variables Runyard reads, with defaults

Configuration is read from environment variables; see 'runyard env'.
`

func main() {
	log, err := logging.New(os.Stderr, "info")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, log)
	stop()
	switch {
	case errors.Is(err, system.ErrUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	case err != nil:
		log.Error().Err(err).Msg("runyard stopped")
		os.Exit(1)
	}
}

// Modes maps the binary's commands to the services they run.
var Modes = map[string]config.Mode{
	"standalone": config.ModeStandalone,
	"gateway":    config.ModeGateway,
	"executor":   config.ModeExecutor,
	"syncworker": config.ModeSyncWorker,
	"notifier":   config.ModeNotifier,
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool), out io.Writer, log zerolog.Logger) error {
	if len(args) != 1 {
		return system.ErrUsage
	}
	if args[0] == "env" {
		for _, v := range config.Vars() {
			fmt.Fprintf(out, "%s=%s\n    %s\n", v.Name, v.Default, v.Description)
		}
		return nil
	}
	mode, ok := Modes[args[0]]
	if !ok {
		return system.ErrUsage
	}
	cfg, err := config.Load(mode, lookup)
	if err != nil {
		return err
	}
	gcPercent := setGCDefault(mode, lookup)
	log, err = logging.New(os.Stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	log = log.With().Str(logging.KeyService, string(mode)).Logger()
	cfg.Log(log)
	if gcPercent > 0 {
		log.Info().Int("gogc", gcPercent).Msg("garbage collector target set for standalone (GOGC overrides it)")
	}
	pprofAddr, _ := lookup(pprofVar)
	stopPprof, err := startPprof(pprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	sys, err := system.Start(ctx, mode, cfg, log, out)
	if err != nil {
		return err
	}
	log.Info().Msg("runyard started")
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case err = <-sys.Err():
		log.Error().Err(err).Msg("http server stopped")
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	sys.Stop(stopCtx)
	log.Info().Msg("stopped")
	return err
}

// standaloneGOGC is the garbage collector's target in standalone mode, where the embedded
// NATS server's stream indexes and the store share the process: at Go's default (100) the
// heap grew to twice its live size under load, which was most of the process's peak memory.
// 50 kept the peak about 75 MB lower under the load tool, with CPU per run within its noise.
const standaloneGOGC = 50

// setGCDefault applies standaloneGOGC unless GOGC is set, and returns the percentage it set
// (0 when it left the runtime's setting alone).
func setGCDefault(mode config.Mode, lookup func(string) (string, bool)) int {
	if mode != config.ModeStandalone {
		return 0
	}
	if v, ok := lookup("GOGC"); ok && v != "" {
		return 0
	}
	debug.SetGCPercent(standaloneGOGC)
	return standaloneGOGC
}
