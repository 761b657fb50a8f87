package runner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/services/executor/runner"
)

// quick is the generous bound for "returned promptly": far above the expected time, far
// below the 30s the test commands would otherwise run.
const quick = 5 * time.Second

func run(t *testing.T, ctx context.Context, r pipeline.Runner, opts runner.Options) (runner.Result, error, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := runner.Default().Run(ctx, r, opts)
	elapsed := time.Since(start)
	if _, ok := res.Metrics["duration_seconds"].(float64); !ok {
		t.Errorf("Metrics[duration_seconds] = %#v, want a float64", res.Metrics["duration_seconds"])
	}
	return res, err, elapsed
}

func sh(script string) pipeline.Runner {
	return pipeline.Runner{Kind: pipeline.KindCommand, Command: []string{"sh", "-c", script}}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(quick)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// processGone reports whether pid has exited. A killed orphan may linger as a zombie when
// nothing reaps it (e.g. a container's init), which counts as gone.
func processGone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name, which may itself contain ") ".
	s := string(stat)
	i := strings.LastIndex(s, ") ")
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc to check processes")
	}
	waitFor(t, "background process "+strconv.Itoa(pid)+" to die", func() bool { return processGone(pid) })
}

func firstLinePID(t *testing.T, log string) int {
	t.Helper()
	line, _, _ := strings.Cut(log, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("log %q does not start with a pid: %v", log, err)
	}
	return pid
}

func TestDefaultHasEveryKind(t *testing.T) {
	t.Parallel()
	reg := runner.Default()
	for _, k := range pipeline.Kinds {
		if reg[k] == nil {
			t.Errorf("Default() has no runner for kind %q", k)
		}
	}
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	_, err, _ := run(t, context.Background(), pipeline.Runner{Kind: "teleport"}, runner.Options{})
	if err == nil || !strings.Contains(err.Error(), `"teleport"`) {
		t.Fatalf("err = %v, want one naming kind \"teleport\"", err)
	}
}

func TestRunFillsDurationForCustomRunner(t *testing.T) {
	t.Parallel()
	reg := runner.Registry{"custom": func(context.Context, pipeline.Runner, runner.Options) (runner.Result, error) {
		return runner.Result{Log: "x"}, nil
	}}
	res, err := reg.Run(context.Background(), pipeline.Runner{Kind: "custom"}, runner.Options{})
	if err != nil || res.Log != "x" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if _, ok := res.Metrics["duration_seconds"].(float64); !ok {
		t.Fatalf("Metrics = %#v, want duration_seconds", res.Metrics)
	}
}

func TestNoop(t *testing.T) {
	t.Parallel()
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindNoop}, runner.Options{})
	if err != nil || res.Log != "" || res.Truncated {
		t.Fatalf("noop = %+v, %v", res, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err, _ = run(t, ctx, pipeline.Runner{Kind: pipeline.KindNoop}, runner.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("noop with cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func TestSleepCompletes(t *testing.T) {
	t.Parallel()
	res, err, elapsed := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindSleep, Seconds: 0.05}, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed < 50*time.Millisecond {
		t.Errorf("returned after %v, want at least 50ms", elapsed)
	}
	if d := res.Metrics["duration_seconds"].(float64); d < 0.05 {
		t.Errorf("duration_seconds = %v, want >= 0.05", d)
	}
}

func TestSleepCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(50*time.Millisecond, cancel)
	defer stop.Stop()
	_, err, elapsed := run(t, ctx, pipeline.Runner{Kind: pipeline.KindSleep, Seconds: 30}, runner.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, runner.ErrTimeout) {
		t.Errorf("err = %v: caller cancellation must not look like the runner's timeout", err)
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
}

func TestSleepCallerDeadline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err, elapsed := run(t, ctx, pipeline.Runner{Kind: pipeline.KindSleep, Seconds: 30}, runner.Options{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v, want context.DeadlineExceeded and not ErrTimeout", err)
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
}

func TestCommandOutputAndEnv(t *testing.T) {
	t.Parallel()
	r := sh(`echo "a=$RY_A b=$RY_B path=$PATH"; echo oops >&2`)
	r.Env = map[string]string{"RY_B": "block"}
	opts := runner.Options{Env: map[string]string{"RY_A": "opts", "RY_B": "opts"}}
	res, err, _ := run(t, context.Background(), r, opts)
	if err != nil {
		t.Fatalf("err = %v, log %q", err, res.Log)
	}
	want := "a=opts b=block path=" + os.Getenv("PATH") + "\noops\n"
	if res.Log != want {
		t.Errorf("log = %q, want %q", res.Log, want)
	}
	if res.Truncated {
		t.Error("Truncated = true")
	}
	if code, ok := res.Metrics["exit_code"].(int); !ok || code != 0 {
		t.Errorf("exit_code = %#v, want 0", res.Metrics["exit_code"])
	}
}

func TestCommandNoShell(t *testing.T) {
	t.Parallel()
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindCommand, Command: []string{"echo", "$HOME", "a;b"}}, runner.Options{})
	if err != nil || res.Log != "$HOME a;b\n" {
		t.Fatalf("log %q, err %v: argv must reach the program unexpanded", res.Log, err)
	}
}

func TestCommandExitCode(t *testing.T) {
	t.Parallel()
	res, err, _ := run(t, context.Background(), sh("echo before; exit 3"), runner.Options{})
	if err == nil || err.Error() != "exit status 3" {
		t.Fatalf("err = %v, want \"exit status 3\"", err)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Errorf("err %T is not an *exec.ExitError", err)
	}
	if code, ok := res.Metrics["exit_code"].(int); !ok || code != 3 {
		t.Errorf("exit_code = %#v, want 3", res.Metrics["exit_code"])
	}
	if res.Log != "before\n" {
		t.Errorf("log = %q, want the output before the failure", res.Log)
	}
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	r := sh("sleep 30 & echo $!; sleep 30")
	r.Timeout = 0.5
	res, err, elapsed := run(t, context.Background(), r, runner.Options{})
	if !errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if err.Error() != "timed out after 500ms" {
		t.Errorf("err = %q, want \"timed out after 500ms\"", err)
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
	if code, ok := res.Metrics["exit_code"].(int); !ok || code != -1 {
		t.Errorf("exit_code = %#v, want -1 for a killed process", res.Metrics["exit_code"])
	}
	assertGone(t, firstLinePID(t, res.Log))
}

func TestCommandCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	r := sh(`sleep 30 & echo $!; : > "$RY_READY"; sleep 30`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res     runner.Result
		err     error
		elapsed time.Duration
	}
	ch := make(chan outcome, 1)
	go func() {
		res, err, elapsed := run(t, ctx, r, runner.Options{Env: map[string]string{"RY_READY": ready}})
		ch <- outcome{res, err, elapsed}
	}()
	waitFor(t, "the command to start its child", func() bool { _, err := os.Stat(ready); return err == nil })
	canceled := time.Now()
	cancel()
	var o outcome
	select {
	case o = <-ch:
	case <-time.After(quick):
		t.Fatal("command still running after cancellation")
	}
	if !errors.Is(o.err, context.Canceled) || errors.Is(o.err, runner.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", o.err)
	}
	if since := time.Since(canceled); since > quick {
		t.Errorf("returned %v after cancellation", since)
	}
	assertGone(t, firstLinePID(t, o.res.Log))
}

func TestCommandBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	res, err, elapsed := run(t, context.Background(), sh("sleep 30 & echo $!"), runner.Options{})
	if err != nil {
		t.Fatalf("err = %v: a successful command must stay successful despite a leftover child", err)
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
	if !strings.Contains(res.Log, "background processes") {
		t.Errorf("log %q does not say leftovers were killed", res.Log)
	}
	assertGone(t, firstLinePID(t, res.Log))
}

func TestCommandTruncation(t *testing.T) {
	t.Parallel()
	res, err, _ := run(t, context.Background(), sh("printf 0123456789abcdef; printf xyz >&2"), runner.Options{LogLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := "0123456789\n[runyard: output truncated after 10 bytes]\n"
	if res.Log != want || !res.Truncated {
		t.Fatalf("log = %q, truncated %v; want %q, true", res.Log, res.Truncated, want)
	}
}

func TestCommandOutputExactlyAtLimit(t *testing.T) {
	t.Parallel()
	res, err, _ := run(t, context.Background(), sh("printf 0123456789"), runner.Options{LogLimit: 10})
	if err != nil || res.Log != "0123456789" || res.Truncated {
		t.Fatalf("log = %q, truncated %v, err %v", res.Log, res.Truncated, err)
	}
}

func TestCommandLargeOutputDoesNotBlock(t *testing.T) {
	t.Parallel()
	// Far more than a pipe buffer: the child must finish although almost nothing is kept.
	res, err, elapsed := run(t, context.Background(), sh("head -c 8000000 /dev/zero; echo done >&2"), runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Log) != 1<<20+len("\n[runyard: output truncated after 1048576 bytes]\n") {
		t.Errorf("truncated %v, log length %d; want the default 1 MiB limit plus note", res.Truncated, len(res.Log))
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
}

func TestCommandDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("here"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := sh(`cat marker; echo; echo "$PWD"`)
	r.Dir = dir
	res, err, _ := run(t, context.Background(), r, runner.Options{})
	if err != nil {
		t.Fatalf("err = %v, log %q", err, res.Log)
	}
	if want := "here\n" + dir + "\n"; res.Log != want {
		t.Errorf("log = %q, want %q", res.Log, want)
	}
}

func TestCommandMissingDir(t *testing.T) {
	t.Parallel()
	r := sh("true")
	r.Dir = filepath.Join(t.TempDir(), "absent")
	_, err, _ := run(t, context.Background(), r, runner.Options{})
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("err = %v, want one naming the directory", err)
	}
}

func TestCommandMissingBinary(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"runyard-no-such-binary", "/nonexistent/runyard-no-such-binary"} {
		res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindCommand, Command: []string{name, "arg"}}, runner.Options{})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming the binary", name, err)
		}
		if _, ok := res.Metrics["exit_code"]; ok {
			t.Errorf("%s: exit_code = %v for a process that never ran", name, res.Metrics["exit_code"])
		}
	}
}

func TestCommandEmpty(t *testing.T) {
	t.Parallel()
	_, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindCommand}, runner.Options{})
	if err == nil {
		t.Fatal("empty command succeeded")
	}
}

func TestCommandCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err, _ := run(t, ctx, sh("echo should-not-run"), runner.Options{})
	if !errors.Is(err, context.Canceled) || strings.Contains(res.Log, "should-not-run") {
		t.Fatalf("log %q, err %v; want context.Canceled without running", res.Log, err)
	}
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPOK(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Zeta", "last")
		w.Header().Set("X-Alpha", "first")
		_, _ = io.WriteString(w, "hello body")
	})
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL}, runner.Options{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Log, "HTTP/1.1 200 OK\n") {
		t.Errorf("log %q does not start with the status line", res.Log)
	}
	if !strings.HasSuffix(res.Log, "\n\nhello body") {
		t.Errorf("log %q does not end with a blank line and the body", res.Log)
	}
	a, z := strings.Index(res.Log, "X-Alpha: first\n"), strings.Index(res.Log, "X-Zeta: last\n")
	if a < 0 || z < 0 || a > z {
		t.Errorf("log %q lacks sorted headers", res.Log)
	}
	headers := strings.Split(strings.TrimSuffix(strings.SplitN(res.Log, "\n\n", 2)[0], "\n"), "\n")[1:]
	if !slices.IsSorted(headers) {
		t.Errorf("headers not sorted: %q", headers)
	}
	if code, ok := res.Metrics["status_code"].(int); !ok || code != 200 {
		t.Errorf("status_code = %#v, want 200", res.Metrics["status_code"])
	}
	if res.Truncated {
		t.Error("Truncated = true")
	}
}

func TestHTTPDefaultClient(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, URL: srv.URL}, runner.Options{})
	if err != nil || res.Metrics["status_code"] != 204 {
		t.Fatalf("res %+v, err %v", res, err)
	}
}

func TestHTTPServerError(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database on fire", http.StatusInternalServerError)
	})
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL}, runner.Options{Client: srv.Client()})
	if err == nil || err.Error() != "http status 500 Internal Server Error" {
		t.Fatalf("err = %v, want \"http status 500 Internal Server Error\"", err)
	}
	if code, ok := res.Metrics["status_code"].(int); !ok || code != 500 {
		t.Errorf("status_code = %#v, want 500", res.Metrics["status_code"])
	}
	if !strings.Contains(res.Log, "database on fire") {
		t.Errorf("log %q lacks the error body", res.Log)
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	r := pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL, Timeout: 0.2}
	_, err, elapsed := run(t, context.Background(), r, runner.Options{Client: srv.Client()})
	if !errors.Is(err, runner.ErrTimeout) || err.Error() != "timed out after 200ms" {
		t.Fatalf("err = %v, want ErrTimeout \"timed out after 200ms\"", err)
	}
	if elapsed > quick {
		t.Errorf("returned after %v", elapsed)
	}
}

func TestHTTPTimeoutDuringBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	r := pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL, Timeout: 0.2}
	res, err, _ := run(t, context.Background(), r, runner.Options{Client: srv.Client()})
	if !errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if !strings.HasSuffix(res.Log, "\n\npartial") || res.Metrics["status_code"] != 200 {
		t.Errorf("res = %+v, want what arrived before the timeout", res)
	}
}

func TestHTTPCancel(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, func(_ http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err, _ := run(t, ctx, pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL}, runner.Options{Client: srv.Client()})
		errs <- err
	}()
	select {
	case <-arrived:
	case <-time.After(quick):
		t.Fatal("request never arrived")
	}
	cancel()
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) || errors.Is(err, runner.ErrTimeout) {
			t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
		}
	case <-time.After(quick):
		t.Fatal("request still running after cancellation")
	}
}

func TestHTTPSendsMethodHeadersAndBody(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, token, ctype, host, body string
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("X-Token"), r.Header.Get("Content-Type"), r.Host, string(b)}
		w.WriteHeader(http.StatusCreated)
	})
	r := pipeline.Runner{
		Kind:    pipeline.KindHTTP,
		Method:  "POST",
		URL:     srv.URL + "/hooks/x?y=1",
		Headers: map[string]string{"X-Token": "s3cret", "Content-Type": "application/json", "Host": "example.test"},
		Body:    `{"a":1}`,
	}
	res, err, _ := run(t, context.Background(), r, runner.Options{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	want := seen{"POST", "/hooks/x?y=1", "s3cret", "application/json", "example.test", `{"a":1}`}
	if g := <-got; g != want {
		t.Errorf("server saw %+v, want %+v", g, want)
	}
	if res.Metrics["status_code"] != 201 {
		t.Errorf("status_code = %#v, want 201", res.Metrics["status_code"])
	}
}

func TestHTTPBodyCapped(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("b", 100<<10))
	})
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL}, runner.Options{Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(res.Log, "bbbb") * 4; !res.Truncated || n != 64<<10 {
		t.Errorf("truncated %v, %d body bytes kept; want true and 64 KiB", res.Truncated, n)
	}
	i := strings.LastIndex(res.Log, "\n[runyard: output truncated after ")
	if want := fmt.Sprintf("\n[runyard: output truncated after %d bytes]\n", i); i < 0 || res.Log[i:] != want {
		t.Errorf("log does not end with the truncation note: %q", res.Log[max(0, len(res.Log)-80):])
	}
}

func TestHTTPLogLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "body") })
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: srv.URL}, runner.Options{Client: srv.Client(), LogLimit: 16})
	if err != nil {
		t.Fatal(err)
	}
	if want := "HTTP/1.1 200 OK\n\n[runyard: output truncated after 16 bytes]\n"; res.Log != want || !res.Truncated {
		t.Errorf("log = %q, truncated %v; want %q", res.Log, res.Truncated, want)
	}
}

func TestHTTPUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res, err, _ := run(t, context.Background(), pipeline.Runner{Kind: pipeline.KindHTTP, Method: "GET", URL: url}, runner.Options{})
	if err == nil || errors.Is(err, runner.ErrTimeout) {
		t.Fatalf("err = %v, want a connection error", err)
	}
	if _, ok := res.Metrics["status_code"]; ok {
		t.Errorf("status_code set without a response: %v", res.Metrics)
	}
}
