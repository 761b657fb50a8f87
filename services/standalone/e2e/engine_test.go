package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
)

// Engine tests: what the executor does with a run once it exists (retries, timeouts,
// cancellation, retry_blocks, variables, logs, schedule settings, events), seen through the
// HTTP API and the event stream of the whole system.

// definePipeline creates the pipeline def (a full "pipeline" object) and an active api
// schedule for it with the extra schedule fields sched, and returns the schedule's id and
// token.
func (e *env) definePipeline(def map[string]any, sched map[string]any) (int64, string) {
	e.t.Helper()
	uuid := def["uuid"].(string)
	e.must(200, e.call("POST", "/api/pipelines", map[string]any{"pipeline": def}))
	fields := map[string]any{"name": uuid + " api", "schedule_type": "api", "status": "active"}
	for k, v := range sched {
		fields[k] = v
	}
	r := e.must(200, e.call("POST", "/api/pipelines/"+uuid+"/pipeline_schedules", map[string]any{"pipeline_schedule": fields}))
	s := obj(r.Body, "pipeline_schedule")
	return num(s, "id"), s["token"].(string)
}

// pipelineDef is a pipeline object of blocks, with extra top-level fields set by kv pairs.
func pipelineDef(uuid string, blocks []map[string]any, kv ...any) map[string]any {
	return with(map[string]any{"uuid": uuid, "blocks": blocks}, kv...)
}

// with returns a copy of m with the key/value pairs kv set.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func retryConfig(retries int, delay float64) map[string]any {
	return map[string]any{"retries": retries, "delay": delay, "exponential_backoff": false}
}

// getRun reads a run with its block runs.
func (e *env) getRun(id int64) map[string]any {
	e.t.Helper()
	return obj(e.must(200, e.call("GET", fmt.Sprintf("/api/pipeline_runs/%d", id), nil)).Body, "pipeline_run")
}

// runToEnd triggers a run of the schedule and waits for it to finish.
func (e *env) runToEnd(id int64, token string, body any) map[string]any {
	e.t.Helper()
	pr := obj(e.must(200, e.trigger(id, token, body)).Body, "pipeline_run")
	return e.waitRun(num(pr, "id"))
}

// updateRun sends Mage's PUT /api/pipeline_runs/:id.
func (e *env) updateRun(id int64, fields map[string]any) response {
	e.t.Helper()
	return e.call("PUT", fmt.Sprintf("/api/pipeline_runs/%d", id), map[string]any{"pipeline_run": fields})
}

// waitBlock polls run id until block uuid has status, and returns the run.
func (e *env) waitBlock(id int64, uuid, status string) map[string]any {
	e.t.Helper()
	var pr map[string]any
	poll(e.t, 20*time.Second, fmt.Sprintf("block %s of run %d to be %s", uuid, id, status), func() bool {
		pr = e.getRun(id)
		return blockRuns(pr)[uuid]["status"] == status
	})
	return pr
}

// poll calls cond until it is true, failing t once within has passed.
func poll(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quote single-quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// countingScript records each attempt in file and fails until attempt succeedOn.
func countingScript(file string, succeedOn int) string {
	f := quote(file)
	return fmt.Sprintf(`n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; if [ "$n" -lt %d ]; then echo "attempt $n fails" >&2; exit 1; fi`, f, f, succeedOn)
}

// readInt reads the integer a block wrote into file.
func readInt(t testing.TB, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("%s holds %q: %v", file, data, err)
	}
	return n
}

// waitPID waits for a block to write the pid of its background child into file. If the test
// ends with the child still alive, it is killed so that the system can stop.
func waitPID(t testing.TB, file string) int {
	t.Helper()
	var pid int
	poll(t, 20*time.Second, "the child's pid in "+file, func() bool {
		data, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 0
	})
	t.Cleanup(func() {
		if !processGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// processGone reports whether pid no longer runs: kill(pid, 0) fails with ESRCH, or the
// process is a zombie (dead, not yet reaped by whoever inherited it).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces, so read after the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

func parseTS(t testing.TB, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("timestamp %v is not a string", v)
	}
	ts, err := time.Parse("2006-01-02 15:04:05.000000-07:00", s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func metrics(br map[string]any) map[string]any { return obj(br, "metrics") }

func errorMessage(br map[string]any) string {
	msg, _ := obj(metrics(br), "error")["message"].(string)
	return msg
}

func wantStatuses(t testing.TB, pr map[string]any, want map[string]string) {
	t.Helper()
	brs := blockRuns(pr)
	for uuid, st := range want {
		if brs[uuid]["status"] != st {
			t.Errorf("block %s is %v, want %s (metrics %v)", uuid, brs[uuid]["status"], st, brs[uuid]["metrics"])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// 1. Retries.
func TestEngineRetries(t *testing.T) {
	t.Parallel()
	base := start(t, nil)

	t.Run("block retry_config retries until success", func(t *testing.T) {
		t.Parallel()
		e, count := base.on(t), filepath.Join(t.TempDir(), "attempts")
		id, token := e.definePipeline(pipelineDef("retry-ok", []map[string]any{
			with(block("flaky", shell(countingScript(count, 3))), "retry_config", retryConfig(3, 0.05)),
		}), nil)
		pr := e.runToEnd(id, token, nil)
		if pr["status"] != "completed" {
			t.Fatalf("run = %v", pr)
		}
		br := blockRuns(pr)["flaky"]
		m := metrics(br)
		if br["status"] != "completed" || num(m, "attempts") != 3 {
			t.Fatalf("block run = %v, want completed after 3 attempts", br)
		}
		if errs, _ := m["attempt_errors"].([]any); len(errs) != 2 || errs[0] != "exit status 1" {
			t.Fatalf("metrics.attempt_errors = %v, want the 2 failed attempts' errors", m["attempt_errors"])
		}
		if n := readInt(t, count); n != 3 {
			t.Fatalf("the command ran %d times, want 3", n)
		}
		// Two waits of delay 0.05 s separate the attempts.
		if d := parseTS(t, br["completed_at"]).Sub(parseTS(t, br["started_at"])); d < 100*time.Millisecond {
			t.Fatalf("3 attempts with 2 delays of 50ms took %s", d)
		}
	})

	t.Run("retries exhausted fail the block", func(t *testing.T) {
		t.Parallel()
		e, count := base.on(t), filepath.Join(t.TempDir(), "attempts")
		id, token := e.definePipeline(pipelineDef("retry-exhausted", []map[string]any{
			with(block("flaky", shell(countingScript(count, 3))), "retry_config", retryConfig(1, 0.05)),
			block("after", noop, "flaky"),
		}), nil)
		pr := e.runToEnd(id, token, nil)
		if pr["status"] != "failed" {
			t.Fatalf("run = %v", pr)
		}
		wantStatuses(t, pr, map[string]string{"flaky": "failed", "after": "upstream_failed"})
		br := blockRuns(pr)["flaky"]
		if num(metrics(br), "attempts") != 2 || errorMessage(br) != "exit status 1" {
			t.Fatalf("block run = %v, want failed after 2 attempts with the last attempt's error", br)
		}
		if n := readInt(t, count); n != 2 {
			t.Fatalf("the command ran %d times, want 2", n)
		}
	})

	t.Run("pipeline retry_config applies to blocks without their own", func(t *testing.T) {
		t.Parallel()
		e, count := base.on(t), filepath.Join(t.TempDir(), "attempts")
		id, token := e.definePipeline(pipelineDef("retry-pipeline", []map[string]any{
			block("flaky", shell(countingScript(count, 3))),
		}, "retry_config", retryConfig(2, 0.05)), nil)
		pr := e.runToEnd(id, token, nil)
		br := blockRuns(pr)["flaky"]
		if pr["status"] != "completed" || br["status"] != "completed" || num(metrics(br), "attempts") != 3 {
			t.Fatalf("run = %v, block run = %v: want completed after 3 attempts", pr["status"], br)
		}
		if n := readInt(t, count); n != 3 {
			t.Fatalf("the command ran %d times, want 3", n)
		}
	})

	t.Run("block retry_config overrides the pipeline's", func(t *testing.T) {
		t.Parallel()
		e, dir := base.on(t), t.TempDir()
		own, none := filepath.Join(dir, "own"), filepath.Join(dir, "none")
		// The pipeline's 5 retries would let both blocks succeed on their 3rd attempt; one
		// block allows only 1 retry, the other none at all.
		id, token := e.definePipeline(pipelineDef("retry-override", []map[string]any{
			with(block("own", shell(countingScript(own, 3))), "retry_config", retryConfig(1, 0.05)),
			with(block("none", shell(countingScript(none, 3))), "retry_config", map[string]any{"retries": 0}),
		}, "retry_config", retryConfig(5, 0.05)), map[string]any{"settings": map[string]any{"allow_blocks_to_fail": true}})
		pr := e.runToEnd(id, token, nil)
		wantStatuses(t, pr, map[string]string{"own": "failed", "none": "failed"})
		brs := blockRuns(pr)
		if a := num(metrics(brs["own"]), "attempts"); a != 2 || readInt(t, own) != 2 {
			t.Fatalf("block with retries 1 made %d attempts (%d runs), want 2", a, readInt(t, own))
		}
		if a := num(metrics(brs["none"]), "attempts"); a != 1 || readInt(t, none) != 1 {
			t.Fatalf("block with retries 0 made %d attempts (%d runs), want 1", a, readInt(t, none))
		}
	})
}

// 2. Block timeout.
func TestEngineBlockTimeout(t *testing.T) {
	t.Parallel()
	base := start(t, nil)

	t.Run("kills a long command", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.definePipeline(pipelineDef("block-timeout", []map[string]any{
			with(block("slow", shell("sleep 30")), "timeout", 0.5),
		}), nil)
		began := time.Now()
		pr := e.runToEnd(id, token, nil)
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("a block with timeout 0.5 s ended after %s", took)
		}
		if pr["status"] != "failed" {
			t.Fatalf("run = %v", pr)
		}
		br := blockRuns(pr)["slow"]
		if br["status"] != "failed" || !strings.Contains(errorMessage(br), "timed out") || num(metrics(br), "attempts") != 1 {
			t.Fatalf("block run = %v, want failed with a timed out error after 1 attempt", br)
		}
	})

	t.Run("bounds the retries too", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.definePipeline(pipelineDef("block-timeout-retries", []map[string]any{
			with(block("failing", shell("exit 1")), "timeout", 1.0, "retry_config", retryConfig(100, 0.2)),
		}), nil)
		began := time.Now()
		pr := e.runToEnd(id, token, nil)
		if took := time.Since(began); took > 6*time.Second {
			t.Fatalf("a block with timeout 1 s ended after %s", took)
		}
		br := blockRuns(pr)["failing"]
		a := num(metrics(br), "attempts")
		if br["status"] != "failed" || !strings.Contains(errorMessage(br), "timed out") || a < 2 || a > 10 {
			t.Fatalf("block run = %v, want failed by its timeout after a few attempts", br)
		}
	})
}

// 3. Runner timeout.
func TestEngineRunnerTimeout(t *testing.T) {
	t.Parallel()
	base := start(t, nil)
	timed := func(script string, seconds float64) map[string]any {
		r := shell(script)
		r["timeout"] = seconds
		return r
	}

	t.Run("fails the attempt", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.definePipeline(pipelineDef("runner-timeout", []map[string]any{block("slow", timed("sleep 30", 0.5))}), nil)
		began := time.Now()
		pr := e.runToEnd(id, token, nil)
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("a runner with timeout 0.5 s ended after %s", took)
		}
		br := blockRuns(pr)["slow"]
		if pr["status"] != "failed" || br["status"] != "failed" || !strings.Contains(errorMessage(br), "timed out") || num(metrics(br), "attempts") != 1 {
			t.Fatalf("run %v, block run = %v, want failed with a timed out error", pr["status"], br)
		}
	})

	t.Run("is per attempt", func(t *testing.T) {
		t.Parallel()
		e, count := base.on(t), filepath.Join(t.TempDir(), "attempts")
		// The first attempt hangs and is timed out; the retry returns at once.
		script := fmt.Sprintf(`n=$(cat %[1]s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s; if [ "$n" -lt 2 ]; then sleep 30; fi`, quote(count))
		id, token := e.definePipeline(pipelineDef("runner-timeout-retry", []map[string]any{
			with(block("hangs_once", timed(script, 0.5)), "retry_config", retryConfig(1, 0.05)),
		}), nil)
		pr := e.runToEnd(id, token, nil)
		br := blockRuns(pr)["hangs_once"]
		m := metrics(br)
		if pr["status"] != "completed" || br["status"] != "completed" || num(m, "attempts") != 2 {
			t.Fatalf("run %v, block run = %v, want completed on the 2nd attempt", pr["status"], br)
		}
		if errs, _ := m["attempt_errors"].([]any); len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "timed out") {
			t.Fatalf("metrics.attempt_errors = %v, want the first attempt's timeout", m["attempt_errors"])
		}
	})
}

// 4. Cancel.
func TestEngineCancel(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	id, token := e.pipelineWithSchedule("cancel",
		block("long", shell(fmt.Sprintf("sleep 30 & echo $! > %s; wait", quote(pidFile)))),
		block("after", noop, "long"),
	)
	runID := num(obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run"), "id")
	e.waitBlock(runID, "long", "running")
	pid := waitPID(t, pidFile)
	if processGone(pid) {
		t.Fatalf("child %d is not running before the cancel", pid)
	}

	r := e.must(200, e.updateRun(runID, map[string]any{"status": "cancelled"}))
	pr := obj(r.Body, "pipeline_run")
	if pr["status"] != "cancelled" || pr["completed_at"] == nil || num(pr, "id") != runID {
		t.Fatalf("cancel answered %s", r.Raw)
	}
	poll(t, 2*time.Second, fmt.Sprintf("the block's child process %d to be killed", pid), func() bool { return processGone(pid) })

	got := e.getRun(runID)
	if got["status"] != "cancelled" || got["completed_at"] == nil {
		t.Fatalf("run after cancel = %v", got)
	}
	wantStatuses(t, got, map[string]string{"long": "cancelled", "after": "cancelled"})
	// The killed command's worker must not turn the cancelled block into a failed one.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		got = e.getRun(runID)
		if st := blockRuns(got)["long"]["status"]; st != "cancelled" || got["status"] != "cancelled" {
			t.Fatalf("after the kill, run is %v and block long is %v", got["status"], st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	again := obj(e.must(200, e.updateRun(runID, map[string]any{"status": "cancelled"})).Body, "pipeline_run")
	for _, f := range []string{"status", "completed_at", "updated_at"} {
		if again[f] != got[f] {
			t.Fatalf("cancelling again changed %s: %v → %v", f, got[f], again[f])
		}
	}
	if final := e.getRun(runID); final["updated_at"] != got["updated_at"] {
		t.Fatalf("cancelling again updated the run: %v → %v", got["updated_at"], final["updated_at"])
	}
}

// 5. PUT /api/pipeline_runs/:id validation.
func TestEngineRunUpdateValidation(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("update-validation", block("a", noop))
	pr := e.runToEnd(id, token, nil)
	path := fmt.Sprintf("/api/pipeline_runs/%d", num(pr, "id"))
	runBadInputs(t, e, []badInput{
		{name: "status other than cancelled", method: "PUT", path: path, body: map[string]any{"pipeline_run": map[string]any{"status": "running"}},
			status: 400, field: "pipeline_run.status", contains: []string{"cancelled"}},
		{name: "unknown action", method: "PUT", path: path, body: map[string]any{"pipeline_run": map[string]any{"pipeline_run_action": "bogus"}},
			status: 400, field: "pipeline_run.pipeline_run_action", contains: []string{"retry_blocks"}},
		{name: "no pipeline_run", method: "PUT", path: path, body: map[string]any{}, status: 400, field: "pipeline_run"},
		{name: "empty pipeline_run", method: "PUT", path: path, body: map[string]any{"pipeline_run": map[string]any{}}, status: 400, field: "pipeline_run"},
		{name: "unknown run", method: "PUT", path: "/api/pipeline_runs/987654321", body: map[string]any{"pipeline_run": map[string]any{"status": "cancelled"}},
			status: 404, errType: "record_not_found"},
	})
}

// 6. retry_blocks.
func TestEngineRetryRun(t *testing.T) {
	t.Parallel()
	base := start(t, nil)

	t.Run("retries what did not complete", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		flag := quote(filepath.Join(t.TempDir(), "b.flag"))
		// b fails the first time only; on later runs it takes a moment, so the retry's answer
		// reliably sees the run running.
		id, token := e.pipelineWithSchedule("retry-blocks",
			block("a", noop),
			block("b", shell(fmt.Sprintf("if [ -f %[1]s ]; then sleep 0.2; exit 0; fi; touch %[1]s; echo first time fails >&2; exit 1", flag)), "a"),
			block("c", noop, "b"),
		)
		failed := e.runToEnd(id, token, nil)
		runID := num(failed, "id")
		if failed["status"] != "failed" {
			t.Fatalf("first run = %v", failed)
		}
		wantStatuses(t, failed, map[string]string{"a": "completed", "b": "failed", "c": "upstream_failed"})
		before := blockRuns(failed)

		r := e.must(200, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks"}))
		retried := obj(r.Body, "pipeline_run")
		if retried["status"] != "running" || retried["completed_at"] != nil {
			t.Fatalf("retry answered %s, want the run running again", r.Raw)
		}
		done := e.waitRun(runID)
		if done["status"] != "completed" || done["completed_at"] == nil {
			t.Fatalf("retried run = %v", done)
		}
		wantStatuses(t, done, map[string]string{"a": "completed", "b": "completed", "c": "completed"})
		after := blockRuns(done)
		if after["a"]["started_at"] != before["a"]["started_at"] || after["a"]["id"] != before["a"]["id"] {
			t.Fatalf("completed block a ran again: started_at %v → %v", before["a"]["started_at"], after["a"]["started_at"])
		}
		if after["b"]["started_at"] == before["b"]["started_at"] || after["b"]["id"] != before["b"]["id"] {
			t.Fatalf("block b was not re-run in place: %v → %v", before["b"], after["b"])
		}
		if after["c"]["started_at"] == nil || errorMessage(after["b"]) != "" {
			t.Fatalf("retried blocks = %v", after)
		}

		// A completed run has nothing to retry.
		same := obj(e.must(200, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks"})).Body, "pipeline_run")
		if same["status"] != "completed" || same["updated_at"] != done["updated_at"] || same["completed_at"] != done["completed_at"] {
			t.Fatalf("retrying a completed run changed it: %v → %v", done, same)
		}
		unchanged := e.getRun(runID)
		for uuid, br := range blockRuns(unchanged) {
			if br["started_at"] != after[uuid]["started_at"] || br["updated_at"] != after[uuid]["updated_at"] {
				t.Fatalf("retrying a completed run touched block %s: %v → %v", uuid, after[uuid], br)
			}
		}

		// from_block_uuid re-runs that block and everything downstream of it.
		r = e.must(200, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks", "from_block_uuid": "b"}))
		if st := obj(r.Body, "pipeline_run")["status"]; st != "running" {
			t.Fatalf("retry from b answered %s", r.Raw)
		}
		again := e.waitRun(runID)
		if again["status"] != "completed" {
			t.Fatalf("run retried from b = %v", again)
		}
		wantStatuses(t, again, map[string]string{"a": "completed", "b": "completed", "c": "completed"})
		final := blockRuns(again)
		if final["a"]["started_at"] != after["a"]["started_at"] {
			t.Fatal("retry from b re-ran a")
		}
		for _, uuid := range []string{"b", "c"} {
			if final[uuid]["started_at"] == after[uuid]["started_at"] {
				t.Fatalf("retry from b did not re-run %s", uuid)
			}
		}

		wantError(t, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks", "from_block_uuid": "nope"}), 400, "", "", "from_block_uuid", "nope")
	})

	t.Run("a running run cannot be retried", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.pipelineWithSchedule("retry-busy", block("wait", map[string]any{"kind": "sleep", "seconds": 30}))
		runID := num(obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run"), "id")
		e.waitBlock(runID, "wait", "running")
		wantError(t, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks"}), 409, "", "", "running")
		wantError(t, e.updateRun(runID, map[string]any{"pipeline_run_action": "retry_blocks", "from_block_uuid": "wait"}), 409, "", "")
		e.must(200, e.updateRun(runID, map[string]any{"status": "cancelled"}))
	})
}

// 7. Variables.
func TestEngineVariables(t *testing.T) {
	t.Parallel()
	base := start(t, nil)

	t.Run("precedence in templates and env", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		out := filepath.Join(t.TempDir(), "vars")
		o := quote(out)
		script := fmt.Sprintf(`printf '%%s\n' "$1" > %[1]s; printf '%%s\n' "$RUNYARD_VAR_A" >> %[1]s; printf '%%s\n' "$RUNYARD_VARIABLES" >> %[1]s`, o)
		cmd := map[string]any{"kind": "command", "command": []string{"sh", "-c", script, "sh",
			"{{ .variables.a }} {{ .variables.b }} {{ .variables.c }} {{ .variables.env }}"}}
		id, token := e.definePipeline(pipelineDef("vars", []map[string]any{block("show", cmd)},
			"variables", map[string]any{"env": "pipe", "a": "p"}),
			map[string]any{"variables": map[string]any{"a": "s", "b": "s"}})
		pr := e.runToEnd(id, token, map[string]any{
			"pipeline_run": map[string]any{"variables": map[string]any{"b": "r"}},
			"c":            "event", "a": "event-ignored",
		})
		if pr["status"] != "completed" {
			t.Fatalf("run = %v", pr)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("block wrote %q", data)
		}
		if lines[0] != "s r event pipe" {
			t.Fatalf("rendered argv = %q, want a=s b=r c=event env=pipe", lines[0])
		}
		if lines[1] != "s" {
			t.Fatalf("RUNYARD_VAR_A = %q, want s", lines[1])
		}
		var all map[string]any
		if err := json.Unmarshal([]byte(lines[2]), &all); err != nil {
			t.Fatalf("RUNYARD_VARIABLES is not JSON: %q", lines[2])
		}
		if all["a"] != "s" || all["b"] != "r" || all["c"] != "event" || all["env"] != "pipe" {
			t.Fatalf("RUNYARD_VARIABLES = %v", all)
		}
		if all["pipeline_run_id"] != float64(num(pr, "id")) {
			t.Fatalf("RUNYARD_VARIABLES.pipeline_run_id = %v, want %d", all["pipeline_run_id"], num(pr, "id"))
		}
		if ds, _ := all["ds"].(string); ds == "" || !strings.HasPrefix(pr["execution_date"].(string), ds) {
			t.Fatalf("RUNYARD_VARIABLES.ds = %v, execution_date %v", all["ds"], pr["execution_date"])
		}
	})

	t.Run("missing variable fails without retries", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		ran := filepath.Join(t.TempDir(), "ran")
		id, token := e.definePipeline(pipelineDef("vars-missing", []map[string]any{
			with(block("typo", shell(fmt.Sprintf("touch %s; echo {{ .variables.nope }}", quote(ran)))), "retry_config", retryConfig(3, 0.05)),
		}), nil)
		pr := e.runToEnd(id, token, nil)
		br := blockRuns(pr)["typo"]
		if pr["status"] != "failed" || br["status"] != "failed" {
			t.Fatalf("run %v, block run %v, want failed", pr["status"], br)
		}
		if msg := errorMessage(br); !strings.Contains(msg, "template") || !strings.Contains(msg, "nope") {
			t.Fatalf("metrics.error.message = %q, want a template error naming the variable", msg)
		}
		if a := num(metrics(br), "attempts"); a != 1 {
			t.Fatalf("a template error was attempted %d times, want 1", a)
		}
		if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the command ran despite the template error (%v)", err)
		}
	})
}

// 8. Logs.
func TestEngineLogs(t *testing.T) {
	t.Parallel()
	base := start(t, map[string]string{"RUNYARD_BLOCK_LOG_MAX_BYTES": "2048"})

	t.Run("block and pipeline logs", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.pipelineWithSchedule("logs",
			block("talk", shell("echo to-stdout; echo to-stderr >&2")),
			block("quiet", noop, "talk"),
		)
		pr := e.runToEnd(id, token, nil)
		if pr["status"] != "completed" {
			t.Fatalf("run = %v", pr)
		}
		runID := num(pr, "id")
		talk := blockRuns(pr)["talk"]
		r := e.must(200, e.call("GET", fmt.Sprintf("/api/block_runs/%d/logs", num(talk, "id")), nil))
		logs, _ := r.Body["logs"].([]any)
		if len(logs) != 1 {
			t.Fatalf("block run logs = %s", r.Raw)
		}
		lf := logs[0].(map[string]any)
		if lf["content"] != "to-stdout\nto-stderr\n" || lf["truncated"] != false || lf["block_uuid"] != "talk" || num(lf, "block_run_id") != num(talk, "id") {
			t.Fatalf("block run log = %v", lf)
		}
		e.must(404, e.call("GET", "/api/block_runs/987654321/logs", nil))

		r = e.must(200, e.call("GET", fmt.Sprintf("/api/pipelines/logs/logs?pipeline_run_id=%d", runID), nil))
		outer, _ := r.Body["logs"].([]any)
		if len(outer) != 1 {
			t.Fatalf("pipeline logs = %s", r.Raw)
		}
		l := outer[0].(map[string]any)
		runLogs, _ := l["pipeline_run_logs"].([]any)
		blockLogs, _ := l["block_run_logs"].([]any)
		if len(runLogs) != 1 || len(blockLogs) != 2 || l["total_pipeline_run_log_count"] != 1.0 || l["total_block_run_log_count"] != 2.0 {
			t.Fatalf("pipeline logs = %s", r.Raw)
		}
		content, _ := runLogs[0].(map[string]any)["content"].(string)
		for _, want := range []string{
			fmt.Sprintf("pipeline run %d of logs created", runID), "block talk started", "block talk completed",
			"block quiet completed", fmt.Sprintf("pipeline run %d completed", runID),
		} {
			if !strings.Contains(content, want) {
				t.Fatalf("pipeline run log does not mention %q:\n%s", want, content)
			}
		}
		byBlock := map[string]map[string]any{}
		for _, x := range blockLogs {
			f := x.(map[string]any)
			byBlock[fmt.Sprint(f["block_uuid"])] = f
		}
		if byBlock["talk"]["content"] != "to-stdout\nto-stderr\n" || byBlock["quiet"] == nil || num(byBlock["quiet"], "pipeline_run_id") != runID {
			t.Fatalf("block_run_logs = %v", blockLogs)
		}
	})

	t.Run("output beyond the limit is truncated", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.pipelineWithSchedule("biglog", block("chatty", shell("head -c 10000 /dev/zero | tr '\\0' x")))
		pr := e.runToEnd(id, token, nil)
		br := blockRuns(pr)["chatty"]
		if pr["status"] != "completed" || br["status"] != "completed" {
			t.Fatalf("run %v, block run %v: truncating output must not fail the block", pr["status"], br)
		}
		r := e.must(200, e.call("GET", fmt.Sprintf("/api/block_runs/%d/logs", num(br, "id")), nil))
		lf := r.Body["logs"].([]any)[0].(map[string]any)
		content, _ := lf["content"].(string)
		if lf["truncated"] != true || !strings.HasPrefix(content, strings.Repeat("x", 2048)+"\n") ||
			!strings.Contains(content, "[runyard: output truncated after 2048 bytes]") || len(content) > 2200 {
			t.Fatalf("log of 10000 bytes with a 2048-byte limit: truncated=%v, %d bytes, ends %q", lf["truncated"], len(content), content[max(0, len(content)-80):])
		}
	})
}

// 9. Manual runs.
func TestEngineManualRun(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, _ := e.pipelineWithSchedule("manual", block("a", noop), block("b", shell("echo $RUNYARD_VAR_X"), "a"))
	r := e.must(200, e.call("POST", "/api/pipelines/manual/pipeline_schedules",
		map[string]any{"pipeline_schedule": map[string]any{"name": "off", "schedule_type": "api", "status": "inactive"}}))
	inactive := num(obj(r.Body, "pipeline_schedule"), "id")
	// The token trigger refuses an inactive schedule; a user's "run now" does not.
	wantError(t, e.trigger(inactive, obj(r.Body, "pipeline_schedule")["token"].(string), nil), 409, "", "")

	for name, sid := range map[string]int64{"active": id, "inactive": inactive} {
		r := e.must(200, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", sid),
			map[string]any{"pipeline_run": map[string]any{"variables": map[string]any{"x": 1}}}))
		pr := obj(r.Body, "pipeline_run")
		if num(pr, "pipeline_schedule_id") != sid || obj(pr, "variables")["x"] != 1.0 {
			t.Fatalf("%s schedule: manual run = %s", name, r.Raw)
		}
		done := e.waitRun(num(pr, "id"))
		if done["status"] != "completed" || num(done, "block_runs_count") != 2 {
			t.Fatalf("%s schedule: manual run = %v", name, done)
		}
	}

	dated := obj(e.must(200, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id),
		map[string]any{"pipeline_run": map[string]any{"execution_date": "2026-01-02 03:04:05"}})).Body, "pipeline_run")
	if dated["execution_date"] != "2026-01-02 03:04:05.000000+00:00" {
		t.Fatalf("execution_date = %v", dated["execution_date"])
	}
	e.waitRun(num(dated, "id"))

	wantError(t, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id),
		map[string]any{"pipeline_run": map[string]any{}}, noAuth...), 401, "", "")
	wantError(t, e.call("POST", fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs", id),
		map[string]any{"pipeline_run": map[string]any{"execution_date": "yesterday-ish"}}), 400, "pipeline_run.execution_date", "")
}

// 10. skip_if_previous_running.
func TestEngineSkipIfPreviousRunning(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.definePipeline(pipelineDef("skip", []map[string]any{block("slow", shell("sleep 2"))}),
		map[string]any{"settings": map[string]any{"skip_if_previous_running": true}})
	first := obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run")
	if first["status"] != "running" {
		t.Fatalf("first run = %v", first)
	}
	r := e.must(200, e.trigger(id, token, nil))
	second := obj(r.Body, "pipeline_run")
	if second["status"] != "cancelled" || second["completed_at"] == nil || obj(second, "metrics")["skipped"] == nil ||
		num(second, "block_runs_count") != 0 {
		t.Fatalf("trigger while the first run runs answered %s, want a skipped run", r.Raw)
	}
	if got := e.getRun(num(second, "id")); got["status"] != "cancelled" || len(got["block_runs"].([]any)) != 0 {
		t.Fatalf("skipped run = %v", got)
	}
	if done := e.waitRun(num(first, "id")); done["status"] != "completed" {
		t.Fatalf("first run = %v", done)
	}
	third := obj(e.must(200, e.trigger(id, token, nil)).Body, "pipeline_run")
	if third["status"] != "running" || obj(third, "metrics")["skipped"] != nil {
		t.Fatalf("trigger after the first run finished = %v", third)
	}
	done := e.waitRun(num(third, "id"))
	if done["status"] != "completed" || num(done, "block_runs_count") != 1 {
		t.Fatalf("third run = %v", done)
	}
}

// 11. allow_blocks_to_fail.
func TestEngineAllowBlocksToFail(t *testing.T) {
	t.Parallel()
	base := start(t, nil)
	dag := func(okBranch string) []map[string]any {
		return []map[string]any{
			block("a", noop),
			block("fail", shell("exit 1"), "a"),
			block("ok_branch", shell(okBranch), "a"),
			block("after_fail", noop, "fail"),
		}
	}

	t.Run("allowed: the run waits for the other branch", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.definePipeline(pipelineDef("tolerant", dag("sleep 0.3")),
			map[string]any{"settings": map[string]any{"allow_blocks_to_fail": true}})
		pr := e.runToEnd(id, token, nil)
		if pr["status"] != "failed" {
			t.Fatalf("run = %v", pr)
		}
		wantStatuses(t, pr, map[string]string{"a": "completed", "fail": "failed", "ok_branch": "completed", "after_fail": "upstream_failed"})
		if parseTS(t, pr["completed_at"]).Before(parseTS(t, blockRuns(pr)["ok_branch"]["completed_at"])) {
			t.Fatal("the run ended before ok_branch completed")
		}
	})

	t.Run("not allowed: fail fast cancels the other branch", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		id, token := e.pipelineWithSchedule("failfast", dag("sleep 2")...)
		pr := e.runToEnd(id, token, nil)
		if pr["status"] != "failed" || pr["completed_at"] == nil {
			t.Fatalf("run = %v", pr)
		}
		wantStatuses(t, pr, map[string]string{"a": "completed", "fail": "failed", "ok_branch": "cancelled", "after_fail": "upstream_failed"})
	})

	t.Run("not allowed: fail fast kills the cancelled branch's processes", func(t *testing.T) {
		t.Parallel()
		e := base.on(t)
		pidFile := filepath.Join(t.TempDir(), "child.pid")
		p := quote(pidFile)
		// fail fails only once ok_branch runs its child, so the cancel finds it running.
		id, token := e.pipelineWithSchedule("failfast-kill",
			block("a", noop),
			block("fail", shell(fmt.Sprintf("while [ ! -s %s ]; do sleep 0.05; done; exit 1", p)), "a"),
			block("ok_branch", shell(fmt.Sprintf("sleep 30 & echo $! > %s; wait", p)), "a"),
		)
		pr := e.runToEnd(id, token, nil)
		wantStatuses(t, pr, map[string]string{"fail": "failed", "ok_branch": "cancelled"})
		pid := waitPID(t, pidFile)
		poll(t, 3*time.Second, fmt.Sprintf("the cancelled ok_branch's child %d to be killed", pid), func() bool { return processGone(pid) })
	})
}

// 12. A run's block-run event stream.
func TestEngineBlockRunEvents(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("events",
		block("root", noop),
		block("mid", shell("echo hi"), "root"),
		block("leaf", map[string]any{"kind": "sleep", "seconds": 0.05}, "mid"),
	)
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Live: every block-run event of the pipeline, as it is published.
	type got struct {
		subject string
		ev      event.Event
	}
	var (
		mu   sync.Mutex
		live []got
	)
	sub, err := nc.Subscribe("runyard.evt.default.block_run.events.*.*", func(m *nats.Msg) {
		var ev event.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("undecodable event on %s: %v", m.Subject, err)
			return
		}
		mu.Lock()
		live = append(live, got{m.Subject, ev})
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pr := e.runToEnd(id, token, nil)
	if pr["status"] != "completed" {
		t.Fatalf("run = %v", pr)
	}
	runID := num(pr, "id")
	runSubject := fmt.Sprintf("runyard.evt.default.block_run.events.%d.*", runID)

	check := func(t *testing.T, events []got) {
		t.Helper()
		byBlock := map[int64][]event.Event{}
		for _, g := range events {
			ev := g.ev
			if ev.Type != event.TypeBlockRunStatusChanged || ev.Version != event.Version || ev.BlockRun == nil || ev.BlockRun.PipelineRunID != runID {
				t.Fatalf("event on %s = %+v", g.subject, ev)
			}
			if !strings.HasSuffix(g.subject, fmt.Sprintf(".%d.%s", runID, ev.BlockRun.Status)) {
				t.Fatalf("event of status %s on subject %s", ev.BlockRun.Status, g.subject)
			}
			byBlock[ev.BlockRun.ID] = append(byBlock[ev.BlockRun.ID], ev)
		}
		if len(byBlock) != 3 {
			t.Fatalf("events of %d block runs, want 3", len(byBlock))
		}
		for brID, evs := range byBlock {
			var statuses []string
			for i, ev := range evs {
				statuses = append(statuses, string(ev.BlockRun.Status))
				if i > 0 && ev.Sequence <= evs[i-1].Sequence {
					t.Fatalf("block run %d: sequence %d after %d", brID, ev.Sequence, evs[i-1].Sequence)
				}
				// The run sequence of a block run's event is version × (3 blocks + 2) + position.
				if ev.RunID != runID || ev.Sequence/5 != ev.BlockRun.Version || ev.Sequence%5 == 0 {
					t.Fatalf("block run %d: sequence %d, version %d, run %d", brID, ev.Sequence, ev.BlockRun.Version, ev.RunID)
				}
			}
			if statuses[0] == "initial" {
				statuses = statuses[1:]
			}
			if !slices.Equal(statuses, []string{"queued", "running", "completed"}) {
				t.Fatalf("block run %d (%s): statuses %v, want [initial] queued running completed", brID, evs[0].BlockRun.BlockUUID, statuses)
			}
		}
	}

	t.Run("subscription to the run's subject", func(t *testing.T) {
		// The run's id is known only once it exists, so its events are read from the event
		// stream, filtered on the run's own subject, from the start.
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cons, err := js.OrderedConsumer(ctx, natsbus.StreamEvents, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{runSubject}, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			t.Fatal(err)
		}
		var events []got
		for {
			msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatalf("after %d events: %v", len(events), err)
			}
			var ev event.Event
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			events = append(events, got{msg.Subject(), ev})
			meta, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if meta.NumPending == 0 {
				break
			}
		}
		check(t, events)
	})

	t.Run("live delivery", func(t *testing.T) {
		// The run is over, but its last events may still be on their way to the subscriber.
		var events []got
		poll(t, 5*time.Second, "the live completed events of 3 block runs", func() bool {
			mu.Lock()
			defer mu.Unlock()
			events = events[:0]
			completed := 0
			for _, g := range live {
				if g.ev.BlockRun != nil && g.ev.BlockRun.PipelineRunID == runID {
					events = append(events, g)
					if g.ev.BlockRun.Status == "completed" {
						completed++
					}
				}
			}
			return completed == 3
		})
		check(t, events)
	})
}
