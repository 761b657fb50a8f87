// Package logging builds Runyard's zerolog loggers and owns the structured field keys every
// service uses, so that a field means the same thing in every log line.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Field keys. Log lines use these constants, never ad-hoc strings, so that log queries work
// across services.
const (
	KeyService   = "service"
	KeyRunID     = "run_id"
	KeyBlockRun  = "block_run_id"
	KeyBlock     = "block_uuid"
	KeyCommandID = "command_id"
	KeyCommand   = "command_type"
	KeySpace     = "space"
	KeyPipeline  = "pipeline_uuid"
	KeySchedule  = "pipeline_schedule_id"
	KeyStatus    = "status"
	KeySubject   = "subject"
	KeyAddr      = "addr"
	KeyLease     = "lease"
	KeyHolder    = "lease_holder"
	KeyTick      = "tick"
)

// New returns a logger writing JSON lines to w, or human-readable console lines when w is a
// terminal. level is a zerolog level name ("debug", "info", ...).
func New(w io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		w = zerolog.ConsoleWriter{Out: f, TimeFormat: time.TimeOnly}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
