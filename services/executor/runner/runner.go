// Package runner executes one attempt of a block with the runner its definition names.
package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
)

// defaultLogLimit keeps a chatty block from bloating its block-run document.
const defaultLogLimit = 1 << 20

// Options are the executor's settings for one attempt, as opposed to the block's own
// definition.
type Options struct {
	// Env is extra environment for command blocks, added on top of the process environment;
	// the block's own env wins over it.
	Env map[string]string
	// LogLimit is the most output bytes kept in Result.Log; 0 (or less) means 1 MiB.
	LogLimit int
	// Client sends the requests of http blocks; nil means http.DefaultClient.
	Client *http.Client
}

// Result is what an attempt produced, filled as far as it got, also when it failed.
type Result struct {
	// Log is the kept output: for command blocks stdout and stderr interleaved, for http
	// blocks the status line, the sorted response headers, a blank line and the start of the
	// body. When output was cut, the first LogLimit bytes are kept and a final line
	// "\n[runyard: output truncated after N bytes]\n" is appended.
	Log string
	// Truncated says output was cut.
	Truncated bool
	// Metrics always holds "duration_seconds" (float64); command blocks add "exit_code" (int,
	// -1 when killed by a signal) once the process ran, http blocks "status_code" (int) once
	// a response arrived.
	Metrics map[string]any
}

// Func runs one attempt. A non-nil error means the attempt failed, and its message is what
// users see (e.g. "exit status 3", "timed out after 2s", "http status 500 Internal Server
// Error"). Cancelling ctx stops the attempt at once.
type Func func(ctx context.Context, r pipeline.Runner, opts Options) (Result, error)

// Registry maps a runner kind to the Func that executes it, so that tests and embedders can
// swap or add runners.
type Registry map[string]Func

// ErrTimeout is wrapped by the error of an attempt that hit its runner's own Timeout, so the
// caller can tell it from cancellation of its own ctx.
var ErrTimeout = errors.New("runner: timed out")

// Default returns a registry with the built-in runners: noop, sleep, command and http.
func Default() Registry {
	return Registry{
		pipeline.KindNoop:    runNoop,
		pipeline.KindSleep:   runSleep,
		pipeline.KindCommand: runCommand,
		pipeline.KindHTTP:    runHTTP,
	}
}

// Run executes one attempt with the Func registered for r.Kind.
func (reg Registry) Run(ctx context.Context, r pipeline.Runner, opts Options) (Result, error) {
	start := time.Now()
	f := reg[r.Kind]
	var res Result
	var err error
	if f == nil {
		err = fmt.Errorf("unknown runner kind %q", r.Kind)
	} else {
		res, err = f(ctx, r, opts)
	}
	// Callers store Metrics as is; custom runners should not have to remember the one metric
	// every attempt reports.
	if res.Metrics == nil {
		res.Metrics = map[string]any{}
	}
	if _, ok := res.Metrics["duration_seconds"]; !ok {
		res.Metrics["duration_seconds"] = time.Since(start).Seconds()
	}
	return res, err
}

func runNoop(ctx context.Context, _ pipeline.Runner, _ Options) (Result, error) {
	res := Result{Metrics: map[string]any{"duration_seconds": 0.0}}
	return res, ctx.Err()
}

func runSleep(ctx context.Context, r pipeline.Runner, _ Options) (Result, error) {
	start := time.Now()
	res := Result{Metrics: map[string]any{}}
	done := func(err error) (Result, error) {
		res.Metrics["duration_seconds"] = time.Since(start).Seconds()
		return res, err
	}
	if ctx.Err() != nil {
		return done(stopErr(ctx, "sleep interrupted"))
	}
	d, ok := duration(r.Seconds)
	if !ok {
		return done(nil)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return done(nil)
	case <-ctx.Done():
		return done(stopErr(ctx, "sleep interrupted"))
	}
}

// timeoutError is the cause of a context ended by a runner's own Timeout; carrying the
// duration lets the user see which limit was hit.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return "timed out after " + e.after.String() }
func (e *timeoutError) Unwrap() error { return ErrTimeout }

// withTimeout bounds ctx by a runner's Timeout so that expiry is recognisable as such by its
// cause; 0 means no bound.
func withTimeout(ctx context.Context, seconds float64) (context.Context, context.CancelFunc) {
	d, ok := duration(seconds)
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, &timeoutError{after: d})
}

// duration converts definition seconds; ok is false for "no wait" (zero, negative, NaN).
// Values beyond what a Duration holds are clamped rather than wrapping negative.
func duration(seconds float64) (time.Duration, bool) {
	if !(seconds > 0) {
		return 0, false
	}
	if seconds >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(seconds * float64(time.Second)), true
}

// stopErr explains why ctx ended. The runner's own timeout is reported as itself; anything
// else is the caller's doing and stays matchable with errors.Is, cause included.
func stopErr(ctx context.Context, what string) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrTimeout) {
		return cause
	}
	err := ctx.Err()
	if cause != nil && cause != err {
		return fmt.Errorf("%s: %w: %w", what, err, cause)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// logBuffer keeps the first limit bytes written and counts the rest. Writes never fail or
// block, so a child producing unbounded output runs to completion instead of stalling on a
// full pipe; the mutex lets stdout and stderr share it.
type logBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

func newLogBuffer(limit int) *logBuffer {
	if limit <= 0 {
		limit = defaultLogLimit
	}
	return &logBuffer{limit: limit}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(len(p))
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *logBuffer) WriteString(s string) (int, error) { return b.Write([]byte(s)) }

// finish returns the kept log, with the truncation note when anything was dropped here or,
// per cut, by the caller before it reached the buffer.
func (b *logBuffer) finish(cut bool) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	truncated := cut || b.total > int64(len(b.buf))
	s := string(b.buf)
	if truncated {
		s += fmt.Sprintf("\n[runyard: output truncated after %d bytes]\n", len(b.buf))
	}
	return s, truncated
}
