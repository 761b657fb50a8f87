// Package crash_test checks crash safety with real OS processes: the runyard binary is built
// once, and each test runs a gateway and executors as separate processes against one NATS
// server (in the test process) and one shared SQLite data directory, then kills or stops
// executors while blocks run.
package crash_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/testenv"
)

const adminKey = "crash-admin-key-0123456789"

// binary is the runyard binary TestMain builds.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runyard-crash-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash: no go tool on PATH:", err)
		return 1
	}
	binary = filepath.Join(dir, "runyard")
	build := exec.Command(goTool, "build", "-o", binary, "github.com/runyard/runyard/services/standalone")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "crash: build runyard:", err)
		return 1
	}
	return m.Run()
}

// cluster is one test's Runyard deployment: a gateway and executors as OS processes sharing
// a NATS server and a data directory.
type cluster struct {
	t       *testing.T
	natsURL string
	dataDir string
	logDir  string
	// marks is the file every block of the test's pipelines appends one line to when it
	// starts: "<executor name> <run id> <block uuid>".
	marks string
	base  string

	mu    sync.Mutex
	procs []*proc
	next  int // executor numbering
}

// proc is one runyard process, in a process group of its own.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when Wait returned
	waitErr error
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, natsURL: testenv.NATS(t), dataDir: t.TempDir(), logDir: t.TempDir()}
	c.marks = filepath.Join(t.TempDir(), "marks")
	if err := os.WriteFile(c.marks, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered before any process is started, so it runs after they are all killed (cleanups
	// run last-in first-out) and the logs are complete.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			data, _ := os.ReadFile(p.logPath)
			if len(data) > 16000 {
				data = append([]byte("…\n"), data[len(data)-16000:]...)
			}
			t.Logf("==== %s stderr (%s) ====\n%s", p.name, p.logPath, data)
		}
		if data, err := os.ReadFile(c.marks); err == nil {
			t.Logf("==== block starts ====\n%s", data)
		}
	})
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// start runs `runyard <mode>` with the cluster's shared settings plus extra.
func (c *cluster) start(name, mode string, extra map[string]string) *proc {
	c.t.Helper()
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNYARD_") {
			env = append(env, kv)
		}
	}
	vars := map[string]string{
		"RUNYARD_NATS_URL":      c.natsURL,
		"RUNYARD_DATA_DIR":      c.dataDir,
		"RUNYARD_ADMIN_API_KEY": adminKey,
		"RUNYARD_LOG_LEVEL":     "warn",
	}
	for k, v := range extra {
		vars[k] = v
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	logPath := filepath.Join(c.logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(binary, mode)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	c.t.Cleanup(func() {
		p.signalGroup(syscall.SIGKILL)
		<-p.done
	})
	return p
}

// signalGroup sends sig to the process's whole group (a no-op once it has exited).
func (p *proc) signalGroup(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startGateway runs the gateway and waits until /readyz answers 200.
func (c *cluster) startGateway() *proc {
	c.t.Helper()
	addr := freeAddr(c.t)
	p := c.start("gateway", "gateway", map[string]string{"RUNYARD_HTTP_ADDR": addr})
	c.base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(c.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if p.exited() {
			c.t.Fatalf("gateway exited before it was ready: %v", p.waitErr)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("gateway not ready within 30s (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startExecutor runs one more executor and waits until it has started (its consumers exist
// and consume: system.Start returned, which it logs at info level as "runyard started").
// The executor's name reaches its blocks' environment as CRASH_EXECUTOR.
func (c *cluster) startExecutor() *proc {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	name := fmt.Sprintf("exec-%d", c.next)
	c.mu.Unlock()
	p := c.start(name, "executor", map[string]string{
		"RUNYARD_EXECUTOR_WORKERS": "4",
		"RUNYARD_SHUTDOWN_TIMEOUT": "5s",
		"RUNYARD_LOG_LEVEL":        "info",
		"CRASH_EXECUTOR":           name,
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(p.logPath)
		if bytes.Contains(data, []byte(`"runyard started"`)) {
			return p
		}
		if p.exited() {
			c.t.Fatalf("%s exited before it was ready: %v\n%s", name, p.waitErr, data)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not started within 30s:\n%s", name, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- HTTP ----

type response struct {
	Status int
	Body   map[string]any
	Raw    string
}

// call sends a request to the gateway; the admin key authenticates it unless auth is false.
func (c *cluster) call(method, path string, body any, auth bool) (response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("X-API-KEY", adminKey)
	}
	client := http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	out := response{Status: res.StatusCode, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			return out, fmt.Errorf("%s %s: body is not a JSON object: %s", method, path, raw)
		}
	}
	return out, nil
}

func (c *cluster) must(status int, method, path string, body any) response {
	c.t.Helper()
	r, err := c.call(method, path, body, true)
	if err != nil {
		c.t.Fatal(err)
	}
	if r.Status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Raw)
	}
	return r
}

func obj(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func num(m map[string]any, key string) int64 {
	v, _ := m[key].(float64)
	return int64(v)
}

// ---- pipelines ----

type blockSpec struct {
	uuid     string
	script   string
	upstream []string
}

// markScript is a block's shell script: it records which executor started it, then runs
// body.
func (c *cluster) markScript(body string) string {
	return fmt.Sprintf(`echo "$CRASH_EXECUTOR $RUNYARD_PIPELINE_RUN_ID $RUNYARD_BLOCK_UUID" >> '%s'; %s`, c.marks, body)
}

// pipelineWithSchedule creates a pipeline of command blocks and an active api schedule, and
// returns the schedule's id and token.
func (c *cluster) pipelineWithSchedule(uuid string, blocks []blockSpec) (int64, string) {
	c.t.Helper()
	bs := make([]map[string]any, len(blocks))
	for i, b := range blocks {
		up := b.upstream
		if up == nil {
			up = []string{}
		}
		bs[i] = map[string]any{
			"uuid":            b.uuid,
			"upstream_blocks": up,
			"runner":          map[string]any{"kind": "command", "command": []string{"sh", "-c", c.markScript(b.script)}},
		}
	}
	c.must(200, "POST", "/api/pipelines", map[string]any{"pipeline": map[string]any{"uuid": uuid, "blocks": bs}})
	r := c.must(200, "POST", "/api/pipelines/"+uuid+"/pipeline_schedules",
		map[string]any{"pipeline_schedule": map[string]any{"name": uuid + " api", "schedule_type": "api", "status": "active"}})
	s := obj(r.Body, "pipeline_schedule")
	tok, _ := s["token"].(string)
	return num(s, "id"), tok
}

// trigger fires the schedule once. The gateway answers 200 with the run, or 202 with a
// command when no executor replied within its wait; both are accepted.
func (c *cluster) trigger(id int64, token string) {
	c.t.Helper()
	if err := c.tryTrigger(id, token); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) tryTrigger(id int64, token string) error {
	r, err := c.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", id, token), nil, false)
	if err != nil {
		return err
	}
	if r.Status != 200 && r.Status != 202 {
		return fmt.Errorf("trigger: status %d: %s", r.Status, r.Raw)
	}
	return nil
}

// triggerMany fires the schedule n times at once, so that the runs are in flight together.
func (c *cluster) triggerMany(id int64, token string, n int) {
	c.t.Helper()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { errs <- c.tryTrigger(id, token) }()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			c.t.Error(err)
		}
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
}

// ---- runs ----

const mageTimeLayout = "2006-01-02 15:04:05.000000-07:00"

type blockRun struct {
	ID          int64
	Block       string
	Status      string
	StartedAt   time.Time
	CompletedAt time.Time
}

type pipelineRun struct {
	ID          int64
	Status      string
	CompletedAt time.Time
	Blocks      []blockRun
}

func parseTime(v any) time.Time {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(mageTimeLayout, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// scheduleRuns lists every run of a schedule (up to 1000) with its block runs, and the
// total the gateway reports.
func (c *cluster) scheduleRuns(id int64) ([]pipelineRun, int64, error) {
	r, err := c.call("GET", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs?_limit=1000", id), nil, true)
	if err != nil {
		return nil, 0, err
	}
	if r.Status != 200 {
		return nil, 0, fmt.Errorf("list runs: status %d: %s", r.Status, r.Raw)
	}
	list, _ := r.Body["pipeline_runs"].([]any)
	out := make([]pipelineRun, 0, len(list))
	for _, x := range list {
		m, _ := x.(map[string]any)
		pr := pipelineRun{ID: num(m, "id"), CompletedAt: parseTime(m["completed_at"])}
		pr.Status, _ = m["status"].(string)
		brs, _ := m["block_runs"].([]any)
		for _, y := range brs {
			b, _ := y.(map[string]any)
			br := blockRun{ID: num(b, "id"), StartedAt: parseTime(b["started_at"]), CompletedAt: parseTime(b["completed_at"])}
			br.Block, _ = b["block_uuid"].(string)
			br.Status, _ = b["status"].(string)
			pr.Blocks = append(pr.Blocks, br)
		}
		out = append(out, pr)
	}
	return out, num(obj(r.Body, "metadata"), "count"), nil
}

func terminal(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}

// waitRuns polls the schedule's runs until want of them exist and all are terminal, or the
// deadline passes.
func (c *cluster) waitRuns(id int64, want int, timeout time.Duration) []pipelineRun {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, total, err := c.scheduleRuns(id)
		if err == nil && total >= int64(want) && len(runs) == int(total) {
			done := true
			for _, r := range runs {
				if !terminal(r.Status) {
					done = false
					break
				}
			}
			if done {
				return runs
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("runs of schedule %d not all terminal within %s (want %d, err %v):\n%s", id, timeout, want, err, describeRuns(runs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeRuns(runs []pipelineRun) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "run %d %s:", r.ID, r.Status)
		for _, br := range r.Blocks {
			fmt.Fprintf(&b, " %s=%s", br.Block, br.Status)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// checkRuns asserts that exactly want runs exist, each completed with one completed block
// run per block, and that no block started before every one of its upstream blocks had
// completed.
func checkRuns(t *testing.T, runs []pipelineRun, total int64, want int, upstream map[string][]string) {
	t.Helper()
	if total != int64(want) || len(runs) != want {
		t.Errorf("%d runs exist (listed %d), want exactly %d:\n%s", total, len(runs), want, describeRuns(runs))
	}
	seen := map[int64]bool{}
	for _, r := range runs {
		if seen[r.ID] {
			t.Errorf("run %d listed twice", r.ID)
		}
		seen[r.ID] = true
		if r.Status != "completed" {
			t.Errorf("run %d is %s, want completed: %s", r.ID, r.Status, describeRuns([]pipelineRun{r}))
		}
		if len(r.Blocks) != len(upstream) {
			t.Errorf("run %d has %d block runs, want %d", r.ID, len(r.Blocks), len(upstream))
		}
		byBlock := map[string]blockRun{}
		for _, br := range r.Blocks {
			if _, dup := byBlock[br.Block]; dup {
				t.Errorf("run %d has two block runs of %s", r.ID, br.Block)
			}
			byBlock[br.Block] = br
			if br.Status != "completed" {
				t.Errorf("run %d block %s is %s, want completed", r.ID, br.Block, br.Status)
			}
		}
		for block, ups := range upstream {
			br, ok := byBlock[block]
			if !ok {
				t.Errorf("run %d has no block run of %s", r.ID, block)
				continue
			}
			if br.StartedAt.IsZero() || br.CompletedAt.IsZero() {
				t.Errorf("run %d block %s lacks timings: started %v completed %v", r.ID, block, br.StartedAt, br.CompletedAt)
				continue
			}
			for _, u := range ups {
				ub, ok := byBlock[u]
				if !ok || ub.CompletedAt.IsZero() {
					continue
				}
				if br.StartedAt.Before(ub.CompletedAt) {
					t.Errorf("run %d: block %s started at %s, before its upstream %s completed at %s",
						r.ID, block, br.StartedAt.Format(time.RFC3339Nano), u, ub.CompletedAt.Format(time.RFC3339Nano))
				}
			}
		}
	}
}

// ---- block start marks ----

type mark struct {
	executor string
	runID    string
	block    string
}

// readMarks returns the block starts recorded so far.
func (c *cluster) readMarks() []mark {
	f, err := os.Open(c.marks)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	var out []mark
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue // a line being written
		}
		out = append(out, mark{executor: fs[0], runID: fs[1], block: fs[2]})
	}
	return out
}

// waitMark polls the block starts, from index from on, until one satisfies ok, and returns
// it.
func (c *cluster) waitMark(from int, timeout time.Duration, ok func(mark) bool) (mark, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := c.readMarks()
		for i := from; i < len(ms); i++ {
			if ok(ms[i]) {
				return ms[i], nil
			}
		}
		if time.Now().After(deadline) {
			return mark{}, errors.New("no matching block start within " + timeout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func latestCompletion(runs []pipelineRun) time.Time {
	var last time.Time
	for _, r := range runs {
		if r.CompletedAt.After(last) {
			last = r.CompletedAt
		}
	}
	return last
}
