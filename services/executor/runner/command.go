package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
)

// waitDelay is how long Wait lets the output pipes drain after the command exits or is
// killed. It is what stops a grandchild that left the process group, yet still holds the
// pipes, from hanging the attempt.
const waitDelay = 2 * time.Second

func runCommand(ctx context.Context, r pipeline.Runner, opts Options) (Result, error) {
	start := time.Now()
	out := newLogBuffer(opts.LogLimit)
	res := Result{Metrics: map[string]any{}}
	done := func(err error) (Result, error) {
		res.Log, res.Truncated = out.finish(false)
		res.Metrics["duration_seconds"] = time.Since(start).Seconds()
		return res, err
	}
	if len(r.Command) == 0 || r.Command[0] == "" {
		return done(errors.New("command is empty"))
	}
	if r.Dir != "" {
		// exec reports a failed chdir as "fork/exec <binary>: no such file or directory",
		// which sends users looking for the wrong thing.
		if fi, err := os.Stat(r.Dir); err != nil {
			return done(fmt.Errorf("working directory: %w", err))
		} else if !fi.IsDir() {
			return done(fmt.Errorf("working directory %s is not a directory", r.Dir))
		}
	}
	ctx, cancel := withTimeout(ctx, r.Timeout)
	defer cancel()
	if ctx.Err() != nil {
		return done(stopErr(ctx, "command not started"))
	}

	cmd := exec.CommandContext(ctx, r.Command[0], r.Command[1:]...)
	cmd.Dir = r.Dir
	cmd.Env = environ(r.Dir, opts.Env, r.Env)
	// One writer for both streams: exec then shares a single pipe, which keeps stdout and
	// stderr in the order the child wrote them.
	cmd.Stdout, cmd.Stderr = out, out
	// Killing only the direct child would leave whatever it spawned running, holding the
	// pipes and the block's resources; a group of its own lets us kill them all at once.
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	if cmd.ProcessState != nil {
		res.Metrics["exit_code"] = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
		return done(nil)
	case ctx.Err() != nil:
		return done(stopErr(ctx, "command killed"))
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// The command succeeded but left background processes writing to its output. The
		// attempt is over, so they are its leftovers, not a failure of the block.
		_ = killGroup(cmd)
		_, _ = out.WriteString("\n[runyard: background processes still holding the output after the command exited were killed]\n")
		return done(nil)
	default:
		return done(err)
	}
}

// environ builds the child environment; later entries win in exec, so the block's own env
// overrides the executor's, which overrides the process's.
func environ(dir string, layers ...map[string]string) []string {
	env := os.Environ()
	if dir != "" {
		// The inherited PWD names the executor's directory; programs that trust $PWD would
		// otherwise see the wrong one.
		if abs, err := filepath.Abs(dir); err == nil {
			env = append(env, "PWD="+abs)
		}
	}
	for _, m := range layers {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}
