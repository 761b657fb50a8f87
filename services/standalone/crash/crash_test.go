package crash_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diamond is a → (b, c) → d, every block running script after recording its start.
func diamond(script string) ([]blockSpec, map[string][]string) {
	upstream := map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
	var blocks []blockSpec
	for _, b := range []string{"a", "b", "c", "d"} {
		blocks = append(blocks, blockSpec{uuid: b, script: script, upstream: upstream[b]})
	}
	return blocks, upstream
}

// blockStarts counts the starts of each block run, keyed "<run id>/<block>".
func blockStarts(ms []mark) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.runID+"/"+m.block]++
	}
	return out
}

func rerun(ms []mark) []string {
	var out []string
	for k, n := range blockStarts(ms) {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", k, n))
		}
	}
	slices.Sort(out)
	return out
}

func waitExit(t *testing.T, p *proc, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after the signal", p.name, timeout)
	}
}

// TestKilledExecutorLosesNothing kills one of two executors (SIGKILL to its process group)
// while 20 runs of a diamond DAG are in flight: every run must still complete, once, with
// its blocks in dependency order.
func TestKilledExecutorLosesNothing(t *testing.T) {
	c := newCluster(t)
	c.startGateway()
	victim := c.startExecutor()
	survivor := c.startExecutor()
	blocks, upstream := diamond("sleep 0.3")
	id, tok := c.pipelineWithSchedule("crash_dag", blocks)

	const runs = 20
	c.triggerMany(id, tok, runs)
	// Kill the victim just after it starts a block, so that it dies with work in hand (the
	// block, and the messages it has fetched but not acked).
	from := len(c.readMarks())
	if _, err := c.waitMark(from, 30*time.Second, func(m mark) bool { return m.executor == victim.name }); err != nil {
		t.Fatalf("%s started no block after the triggers: %v", victim.name, err)
	}
	inFlight := len(c.readMarks())
	killed := time.Now()
	victim.signalGroup(syscall.SIGKILL)
	waitExit(t, victim, 10*time.Second)
	t.Logf("%s killed after %d block starts (of %d)", victim.name, inFlight, runs*len(blocks))

	done := c.waitRuns(id, runs, 120*time.Second)
	resumed := latestCompletion(done).Sub(killed)
	listed, total, err := c.scheduleRuns(id)
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, listed, total, runs, upstream)
	if survivor.exited() {
		t.Errorf("%s exited: %v", survivor.name, survivor.waitErr)
	}
	ms := c.readMarks()
	t.Logf("kill → last run completed: %s; %d block starts for %d block runs; started more than once: %v",
		resumed.Round(time.Millisecond), len(ms), runs*len(blocks), rerun(ms))
	if missing := runs*len(blocks) - len(blockStarts(ms)); missing > 0 {
		t.Errorf("%d block runs completed without their block ever starting", missing)
	}
}

// TestSIGTERMStopsWithin10s stops an executor with SIGTERM while it runs a block: the process
// must exit within 10 s (RUNYARD_SHUTDOWN_TIMEOUT is 5 s), and the run must complete once.
func TestSIGTERMStopsWithin10s(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sleep string
	}{
		// The block ends within the shutdown timeout: the stopping executor records it.
		{"block within shutdown timeout", "sleep 3"},
		// The block outlives the shutdown timeout: it is killed, handed back and run again by
		// the other executor.
		{"block past shutdown timeout", "sleep 8"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			c := newCluster(t)
			c.startGateway()
			execs := map[string]*proc{}
			for i := 0; i < 2; i++ {
				p := c.startExecutor()
				execs[p.name] = p
			}
			upstream := map[string][]string{"slow": nil, "after": {"slow"}}
			id, tok := c.pipelineWithSchedule("crash_term", []blockSpec{
				{uuid: "slow", script: tc.sleep},
				{uuid: "after", script: "sleep 0.1", upstream: []string{"slow"}},
			})
			c.trigger(id, tok)
			m, err := c.waitMark(0, 30*time.Second, func(m mark) bool { return m.block == "slow" })
			if err != nil {
				t.Fatal(err)
			}
			victim := execs[m.executor]
			if victim == nil {
				t.Fatalf("block started by unknown executor %q", m.executor)
			}
			signalled := time.Now()
			if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitExit(t, victim, 10*time.Second)
			stopped := time.Since(signalled)
			t.Logf("%s exited %s after SIGTERM: %v", victim.name, stopped.Round(time.Millisecond), victim.waitErr)
			if victim.waitErr != nil {
				t.Errorf("%s did not exit cleanly: %v", victim.name, victim.waitErr)
			}

			done := c.waitRuns(id, 1, 90*time.Second)
			listed, total, err := c.scheduleRuns(id)
			if err != nil {
				t.Fatal(err)
			}
			checkRuns(t, listed, total, 1, upstream)
			ms := c.readMarks()
			var who []string
			for _, m := range ms {
				who = append(who, m.block+"@"+m.executor)
			}
			t.Logf("SIGTERM → run completed: %s; block starts: %v",
				latestCompletion(done).Sub(signalled).Round(time.Millisecond), who)
		})
	}
}

// TestResumeTimes measures, over 10 kills, how long the runs in flight take to complete after
// the executor running them is killed. It takes about 10 × 35 s, so it runs only on demand:
// RUNYARD_CRASH_MEASURE=1 go test ./crash/ -run TestResumeTimes -v
func TestResumeTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run with -run TestResumeTimes")
	}
	if os.Getenv("RUNYARD_CRASH_MEASURE") != "1" {
		t.Skip("long: set RUNYARD_CRASH_MEASURE=1 and run with -run TestResumeTimes")
	}
	const (
		kills      = 10
		runsPerRun = 3
	)
	c := newCluster(t)
	c.startGateway()
	live := map[string]*proc{}
	blocks, upstream := diamond("sleep 0.3")
	id, tok := c.pipelineWithSchedule("crash_resume", blocks)

	var times []time.Duration
	want := 0
	for i := 0; i < kills; i++ {
		for len(live) < 2 {
			p := c.startExecutor()
			live[p.name] = p
		}
		from := len(c.readMarks())
		c.triggerMany(id, tok, runsPerRun)
		want += runsPerRun
		m, err := c.waitMark(from, 30*time.Second, func(m mark) bool { return live[m.executor] != nil })
		if err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
		victim := live[m.executor]
		killed := time.Now()
		victim.signalGroup(syscall.SIGKILL)
		waitExit(t, victim, 10*time.Second)
		delete(live, victim.name)

		done := c.waitRuns(id, want, 120*time.Second)
		d := latestCompletion(done).Sub(killed)
		times = append(times, d)
		t.Logf("kill %d (%s): runs in flight completed %s after the kill", i+1, victim.name, d.Round(time.Millisecond))
	}
	listed, total, err := c.scheduleRuns(id)
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, listed, total, want, upstream)

	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median := (sorted[(len(sorted)-1)/2] + sorted[len(sorted)/2]) / 2
	worst := sorted[len(sorted)-1]
	var b strings.Builder
	fmt.Fprintf(&b, "kill → runs in flight completed, %d kills of one of two executors (%d runs of a 4-block diamond, 0.3 s blocks, in flight each time)\n", kills, runsPerRun)
	for i, d := range times {
		fmt.Fprintf(&b, "kill %d: %s\n", i+1, d.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "median: %s\nworst: %s\n", median.Round(time.Millisecond), worst.Round(time.Millisecond))
	dir, err := os.MkdirTemp("", "runyard-crash-resume-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "crash-resume.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("resume after kill: median %s, worst %s (written to %s)", median.Round(time.Millisecond), worst.Round(time.Millisecond), path)
}
