package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchAdminKey is the admin API key the subprocess is started with.
const benchAdminKey = "runyard-bench-admin-key-0123456789"

// server is a `runyard standalone` subprocess on loopback ports and a fresh data directory.
type server struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:<port>
	natsURL string // nats://127.0.0.1:<port>
	dataDir string
	logs    *logWatch
	exited  chan struct{}
	waitErr error
}

// startServer starts binary in standalone mode and waits until GET /readyz answers 200.
func startServer(ctx context.Context, binary string, extraEnv []string) (*server, error) {
	path, err := checkBinary(binary)
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	natsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "runyard-bench-data-")
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	natsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(natsPort))

	cmd := exec.Command(path, "standalone")
	cmd.Env = append(append(withoutRunyardVars(os.Environ()), extraEnv...),
		"RUNYARD_HTTP_ADDR="+httpAddr,
		"RUNYARD_NATS_ADDR="+natsAddr,
		"RUNYARD_DATA_DIR="+dataDir,
		"RUNYARD_ADMIN_API_KEY="+benchAdminKey,
		"RUNYARD_LOG_LEVEL=warn",
		"RUNYARD_CONNECTOR_ALLOW_PRIVATE=true",
	)
	logs := newLogWatch(20, 40)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("start %s standalone: %w", binary, err)
	}
	s := &server{cmd: cmd, base: "http://" + httpAddr, natsURL: "nats://" + natsAddr, dataDir: dataDir, logs: logs, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// checkBinary returns the absolute path of binary if it is an executable file.
func checkBinary(binary string) (string, error) {
	path, err := filepath.Abs(binary)
	if err != nil {
		return "", fmt.Errorf("runyard binary %s: %w", binary, err)
	}
	if fi, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("runyard binary %s not found (run make build or pass --binary): %w", binary, err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("runyard binary %s is not an executable file", binary)
	}
	return path, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// waitReady polls GET /readyz until it answers 200, the process exits or limit passes.
func (s *server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		res, err := hc.Do(req)
		if err == nil {
			body := readLimited(res, 4096)
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-s.exited:
			return fmt.Errorf("runyard exited before it was ready (%v); its last output:\n%s", s.waitErr, s.logs.tailText())
		case <-ctx.Done():
			return fmt.Errorf("runyard not ready within %s (last answer: %s); its last output:\n%s", limit, last, s.logs.tailText())
		case <-t.C:
		}
	}
}

// stop sends SIGTERM and waits for the process to exit, killing it after grace. The data
// directory is removed.
func (s *server) stop(grace time.Duration) error {
	defer os.RemoveAll(s.dataDir)
	select {
	case <-s.exited:
		return fmt.Errorf("runyard had already exited: %v", s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.kill()
		return fmt.Errorf("stop runyard: %w", err)
	}
	select {
	case <-s.exited:
		var ee *exec.ExitError
		if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
			return fmt.Errorf("runyard: %w", s.waitErr)
		}
		if s.waitErr != nil {
			return fmt.Errorf("runyard exited with %v after SIGTERM", s.waitErr)
		}
		return nil
	case <-time.After(grace):
		s.kill()
		return fmt.Errorf("runyard did not stop within %s of SIGTERM; killed", grace)
	}
}

// kill ends the process at once and removes its data directory.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
	_ = os.RemoveAll(s.dataDir)
}

// alive reports whether the process still runs.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// withoutRunyardVars drops RUNYARD_* variables of the caller's environment, so that the
// subprocess's configuration is exactly the benchmark's (no external NATS or MongoDB).
func withoutRunyardVars(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RUNYARD_") {
			out = append(out, kv)
		}
	}
	return out
}

// logWatch receives the subprocess's output: it counts warnings and errors (zerolog JSON
// lines), keeps the first distinct ones and a tail of the last lines.
type logWatch struct {
	mu       sync.Mutex
	partial  []byte
	warnings int
	errors   int
	distinct map[string]int
	order    []string
	keep     int
	tail     []string
	tailMax  int
}

func newLogWatch(keep, tailMax int) *logWatch {
	return &logWatch{distinct: map[string]int{}, keep: keep, tailMax: tailMax}
}

func (l *logWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 { // an endless line: keep it bounded
		l.line(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

func (l *logWatch) line(s string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	l.tail = append(l.tail, truncate(s, 400))
	if len(l.tail) > l.tailMax {
		l.tail = l.tail[len(l.tail)-l.tailMax:]
	}
	var rec struct {
		Level   string `json:"level"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal([]byte(s), &rec) != nil {
		return
	}
	switch rec.Level {
	case "warn":
		l.warnings++
	case "error", "fatal", "panic":
		l.errors++
	default:
		return
	}
	key := rec.Level + ": " + rec.Message
	if rec.Error != "" {
		key += ": " + truncate(rec.Error, 200)
	}
	if _, seen := l.distinct[key]; !seen && len(l.order) < l.keep {
		l.order = append(l.order, key)
	}
	l.distinct[key]++
}

// logSummary is what the subprocess logged at warn level and above.
type logSummary struct {
	Warnings int            `json:"warnings"`
	Errors   int            `json:"errors"`
	First    []string       `json:"first_distinct"`
	Counts   map[string]int `json:"counts"`
}

func (l *logWatch) summary() logSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := logSummary{Warnings: l.warnings, Errors: l.errors, Counts: map[string]int{}}
	for _, k := range l.order {
		s.First = append(s.First, k)
		s.Counts[k] = l.distinct[k]
	}
	return s
}

func (l *logWatch) tailText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tail, "\n")
}

// isPortRace reports whether the server failed to start because a port the tool picked was
// taken before the server bound it (other processes share the machine).
func isPortRace(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

// firstLine is the first line of err's text.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}
