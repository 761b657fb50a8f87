package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// results is everything a run measured; it is written to --out as JSON.
type results struct {
	Tool       string               `json:"tool"`
	Profile    string               `json:"profile"`
	Mode       string               `json:"mode"` // "standalone" or "target"
	Target     string               `json:"target,omitempty"`
	Machine    machine              `json:"machine"`
	Started    time.Time            `json:"started"`
	Finished   time.Time            `json:"finished"`
	Settings   map[string]any       `json:"settings"`
	Probe      *probeResult         `json:"stack_probe,omitempty"`
	Costs      *runCost             `json:"per_run_costs,omitempty"`
	Bound      *bound               `json:"bound,omitempty"`
	Idle       *usage               `json:"idle,omitempty"`
	E2ELatency *latencyResult       `json:"e2e_latency,omitempty"`
	Trigger    []triggerLevelResult `json:"trigger,omitempty"`
	Throughput []rateStep           `json:"throughput_steps,omitempty"`
	ThruSum    *throughputSummary   `json:"throughput,omitempty"`
	Reads      *readsResult         `json:"reads,omitempty"`
	SSEFanout  *fanoutResult        `json:"sse_fanout,omitempty"`
	Webhook    *webhookResult       `json:"webhook_delivery,omitempty"`
	EndRSS     int64                `json:"end_rss_bytes,omitempty"`
	Shutdown   string               `json:"shutdown,omitempty"`
	RunyardLog *logSummary          `json:"runyard_log,omitempty"`
	Rows       []row                `json:"rows"`
	Problems   []string             `json:"problems,omitempty"`
}

// machine describes where the figures were measured.
type machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  int64  `json:"mem_total_bytes"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel,omitempty"`
	Date      string `json:"date"`
}

func describeMachine() machine {
	m := machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal = memTotal(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func cpuModel(cpuinfo string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal(meminfo string) int64 {
	sc := bufio.NewScanner(strings.NewReader(meminfo))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// progress prints timestamped progress lines.
type progress struct {
	mu sync.Mutex
	w  io.Writer
	t0 time.Time
}

func (p *progress) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.t0).Truncate(time.Second)
	fmt.Fprintf(p.w, "[%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, a...))
}

// Targets.
var (
	goalTriggerRate   = atLeast(2000)
	goalTriggerP99    = atMost(25)
	goalE2EP50        = atMost(10)
	goalE2EP99        = atMost(50)
	goalEfficiency    = atLeast(50)
	goalIdleRSS       = atMost(80)
	goalThroughputRSS = atMost(300)
	goalSSEP99        = atMost(100) // at 1,000 clients or more
	goalNoneLost      = atMost(0)
)

// run is the whole tool: parse flags, run the scenarios, print the table, write the JSON.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	opts, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, opts.timeout, fmt.Errorf("the time limit (--timeout %s) passed", opts.timeout))
	defer cancel()

	res := &results{Tool: "runyard-bench", Profile: opts.profile, Mode: "standalone", Machine: describeMachine(), Started: time.Now().UTC(), Rows: []row{}}
	res.Settings = map[string]any{
		"trigger_duration": opts.duration.String(), "step_duration": opts.stepDuration.String(), "e2e_runs": opts.runs,
		"read_runs": opts.readRuns, "read_requests": opts.readRequests, "clients": opts.clients, "rates": opts.rates,
		"probe_window": opts.probeWindow.String(), "build_budget": opts.buildBudget.String(), "server_env": opts.serverEnv,
		"sse_clients": opts.sseClients, "sse_rate": opts.sseRate, "sse_duration": opts.sseDuration.String(), "sse_types": opts.sseTypes,
		"webhook_rate": opts.webhookRate, "webhook_duration": opts.webhookDuration.String(),
	}
	log := &progress{w: stdout, t0: time.Now()}
	log.printf("runyard-bench, profile %s, on %d CPUs (%s)", opts.profile, res.Machine.NProc, res.Machine.CPUModel)

	var runErr error
	if opts.target != "" {
		res.Mode, res.Target = "target", opts.target
		runErr = runTarget(ctx, opts, res, log)
	} else {
		runErr = runStandalone(ctx, opts, res, log)
	}
	res.Finished = time.Now().UTC()
	if ctx.Err() != nil {
		// Interrupted (SIGINT, SIGTERM) or out of time: say which, not "context canceled".
		runErr = fmt.Errorf("stopped early: %w", context.Cause(ctx))
	}
	if runErr != nil {
		res.Problems = append(res.Problems, runErr.Error())
	}

	fmt.Fprintln(stdout)
	if len(res.Rows) > 0 {
		fmt.Fprint(stdout, formatTable(res.Rows))
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, summaryLine(res.Rows))
	} else {
		fmt.Fprintln(stdout, "nothing measured")
	}
	if res.RunyardLog != nil && (res.RunyardLog.Warnings > 0 || res.RunyardLog.Errors > 0) {
		fmt.Fprintf(stdout, "runyard logged %d warnings and %d errors; first distinct:\n", res.RunyardLog.Warnings, res.RunyardLog.Errors)
		for _, k := range res.RunyardLog.First {
			fmt.Fprintf(stdout, "  %6d × %s\n", res.RunyardLog.Counts[k], k)
		}
	}
	for _, p := range res.Problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	if err := writeResults(opts.out, res); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprintf(stdout, "results written to %s (%s)\n", opts.out, res.Finished.Sub(res.Started).Round(time.Second))
	if runErr != nil {
		return fmt.Errorf("benchmark incomplete: %w", runErr)
	}
	return nil
}

func writeResults(path string, res *results) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// runStandalone measures bin/runyard standalone, started here.
func runStandalone(ctx context.Context, opts options, res *results, log *progress) (err error) {
	if _, err := checkBinary(opts.binary); err != nil {
		return err
	}
	// 1. The stack probe, before anything else runs on the machine.
	if opts.selected("probe") {
		if err := scenarioProbe(ctx, opts, res, log); err != nil {
			return err
		}
	}
	// 2. The server, which inherits the raised limit: the fan-out scenario holds a descriptor
	// per client on each side.
	if _, err := raiseFDLimit(); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	log.printf("starting %s standalone", opts.binary)
	srv, err := startServer(ctx, opts.binary, opts.serverEnv)
	for try := 1; err != nil && isPortRace(err) && try < 3 && ctx.Err() == nil; try++ {
		// Another process took a port between freePort and the server's bind: new ports.
		log.printf("  %v; starting again on other ports", firstLine(err))
		srv, err = startServer(ctx, opts.binary, opts.serverEnv)
	}
	if err != nil {
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			srv.kill()
			return
		}
		t0 := time.Now()
		serr := srv.stop(30 * time.Second)
		took := time.Since(t0)
		res.Shutdown = took.Round(time.Millisecond).String()
		if serr == nil {
			res.Rows = append(res.Rows, newRow("end", "SIGTERM to exit", ms(took), "ms", nil))
		}
		ls := srv.logs.summary()
		res.RunyardLog = &ls
		if serr != nil {
			err = errors.Join(err, serr)
		}
		res.Rows = append(res.Rows, newRow("runyard log", "warnings / errors logged", float64(ls.Warnings+ls.Errors), "", nil))
	}()
	log.printf("runyard ready on %s (NATS %s, pid %d)", srv.base, srv.natsURL, srv.pid())

	idle, ierr := idleUsage(ctx, srv.pid(), 10*time.Second)
	if ierr != nil {
		res.Rows = append(res.Rows, failedRow("idle", "RSS after start-up", "MB", goalIdleRSS, ierr))
	} else {
		res.Idle = &idle
		res.Rows = append(res.Rows, newRow("idle", "RSS after start-up", mb(idle.LastRSS), "MB", goalIdleRSS))
	}

	nc, err := nats.Connect(srv.natsURL, nats.Name("runyard-bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to runyard's NATS: %w", err)
	}
	defer nc.Close()

	cl := newAPIClient(srv.base, benchAdminKey, "", maxInFlight)
	defer cl.close()
	b := &bench{opts: opts, log: log, cl: cl, srv: srv}

	// 3. What a run costs, and the bound it implies.
	if opts.selected("costs") {
		const costRuns = 20
		log.printf("counting JetStream messages and store writes over %d runs", costRuns)
		costs, cerr := countRunCosts(ctx, srv, cl, nc, costRuns)
		if cerr != nil {
			res.Problems = append(res.Problems, "per-run costs: "+cerr.Error())
			res.Rows = append(res.Rows, failedRow("per-run cost", "messages and writes", "", nil, cerr))
		} else {
			res.Costs = &costs
			res.Rows = append(res.Rows,
				newRow("per-run cost", "JetStream messages (cmd+work+evt)", costs.Published, "msgs", nil),
				newRow("per-run cost", "  consumed + acked (cmd+work)", costs.Consumed, "msgs", nil),
				newRow("per-run cost", "  new subjects in RUNYARD_EVT", costs.EventSubjects, "subjects", nil),
				newRow("per-run cost", "  bytes stored in RUNYARD_EVT", costs.EventBytes, "bytes", nil),
				newRow("per-run cost", "store writes (events)", costs.StoreWrites, "writes", nil),
			)
			if costs.StoreWritesFromFile > 0 {
				res.Rows = append(res.Rows, newRow("per-run cost", "store writes (db file check)", costs.StoreWritesFromFile, "writes", nil))
			}
			log.printf("  per run: %.0f cmd + %.0f work + %.0f event messages; %.0f store writes (%.0f run insert, %.0f block-run insert tx, %.0f run updates, %.0f block-run updates); file check: %s",
				costs.CmdMessages, costs.WorkMessages, costs.EventMessages, costs.StoreWrites, costs.RunInserts, costs.BlockInsertTx, costs.RunUpdates, costs.BlockUpdates, costs.FileCheck)
			if res.Probe != nil {
				bd, berr := computeBound(*res.Probe, costs)
				if berr != nil {
					res.Problems = append(res.Problems, "bound: "+berr.Error())
				} else {
					res.Bound = &bd
					res.Rows = append(res.Rows,
						newRow("bound", "JetStream bound", bd.JetStreamRunsPerSec, "runs/s", nil),
						newRow("bound", "store bound", bd.StoreRunsPerSec, "runs/s", nil),
						newRow("bound", "upper bound (min)", bd.RunsPerSec, "runs/s", nil),
						newRow("bound", "  if not in parallel (sum)", bd.SerialRunsPerSec, "runs/s", nil),
					)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// The benchmark pipeline every other scenario triggers.
	b.scheduleID, b.token, err = cl.createNoopSchedule(ctx, "bench_noop")
	if err != nil {
		return fmt.Errorf("create the benchmark pipeline: %w", err)
	}
	b.tr = newTracker()
	if err := b.tr.subscribe(nc, "default", "bench_noop"); err != nil {
		return err
	}
	defer b.tr.unsubscribe()

	// 4. e2e latency, on the quiet system.
	if opts.selected("latency") {
		if err := scenarioLatency(ctx, b, res); err != nil {
			return err
		}
		if err := b.serverErr(); err != nil {
			return err
		}
	}
	// 5. Event fan-out, on the still quiet system.
	if opts.selected("events") {
		if err := scenarioSSE(ctx, b, nc, res); err != nil {
			return err
		}
		if err := scenarioWebhook(ctx, b, nc, res); err != nil {
			return err
		}
		if err := b.serverErr(); err != nil {
			return err
		}
	}
	// 6. Trigger.
	if opts.selected("trigger") {
		if err := scenarioTrigger(ctx, b, res); err != nil {
			return err
		}
		if err := b.serverErr(); err != nil {
			return err
		}
	}
	// 7. Throughput.
	if opts.selected("throughput") {
		if err := scenarioThroughput(ctx, b, res); err != nil {
			return err
		}
	}
	res.Rows = append(res.Rows, newRow("machine", "other processes' CPU, worst load window", maxOthersCPU(res), "%", nil))
	// 8. Reads.
	if opts.selected("reads") {
		if err := scenarioReads(ctx, b, res, true); err != nil {
			return err
		}
		if err := b.serverErr(); err != nil {
			return err
		}
	}
	if rss, err := readRSS(srv.pid()); err == nil {
		res.EndRSS = rss
		res.Rows = append(res.Rows, newRow("end", "RSS after the load, runs drained", mb(rss), "MB", nil))
	}
	return nil
}

func scenarioThroughput(ctx context.Context, b *bench, res *results) error {
	log, opts := b.log, b.opts
	log.printf("e2e throughput: open-loop arrivals at %v runs/s, %s each", opts.rates, opts.stepDuration)
	steps, terr := b.throughput(ctx)
	res.Throughput = steps
	if len(steps) > 0 {
		sum := summarizeSteps(steps)
		res.ThruSum = &sum
		res.Rows = append(res.Rows, newRow("e2e throughput", "highest rate kept up", sum.KeepsUpAt, "runs/s", nil))
		if sum.KeepsUpStep >= 0 {
			st := steps[sum.KeepsUpStep]
			res.Rows = append(res.Rows,
				newRow("e2e throughput", "  achieved at that rate", st.RunsPerSec, "runs/s", nil),
				newRow("e2e throughput", "  blocks at that rate", st.BlocksPerS, "blocks/s", nil),
				newRow("e2e throughput", "  runyard CPU at that rate", st.Usage.CPUPercent, "%", nil),
				newRow("e2e throughput", "  runyard CPU per completed run", st.CPUPerRunMs, "ms", nil),
				newRow("e2e throughput", "  peak RSS at that rate", mb(st.Usage.PeakRSS), "MB", nil),
			)
		}
		res.Rows = append(res.Rows, newRow("e2e throughput", "max sustained completions", sum.MaxRunsPerSec, "runs/s", nil))
		if res.Bound != nil {
			res.Rows = append(res.Rows, newRow("e2e throughput", "efficiency (max / bound)", 100*sum.MaxRunsPerSec/res.Bound.RunsPerSec, "%", goalEfficiency))
		}
		res.Rows = append(res.Rows, newRow("e2e throughput", "peak RSS, all steps", mb(sum.PeakRSS), "MB", goalThroughputRSS))
		if d := b.tr.droppedEvents(); d > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("throughput: the client dropped %d events (slow consumer): completions undercounted", d))
		}
	}
	if terr != nil {
		res.Problems = append(res.Problems, "throughput: "+terr.Error())
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	return b.serverErr()
}

// runTarget measures an already running Mage-compatible server through its API only.
func runTarget(ctx context.Context, opts options, res *results, log *progress) error {
	log.printf("target mode: %s, schedule %d; nothing is started", opts.target, opts.scheduleID)
	cl := newAPIClient(opts.target, opts.apiKey, opts.bearer, maxInFlight)
	defer cl.close()
	b := &bench{opts: opts, log: log, cl: cl, scheduleID: opts.scheduleID, token: opts.token}
	if _, err := cl.scheduleRuns(ctx, opts.scheduleID, 1); err != nil {
		return fmt.Errorf("target does not answer the runs list (check --api-key and --schedule-id): %w", err)
	}
	if err := scenarioLatency(ctx, b, res); err != nil {
		return err
	}
	if err := scenarioReads(ctx, b, res, false); err != nil {
		return err
	}
	return scenarioTrigger(ctx, b, res)
}

func scenarioLatency(ctx context.Context, b *bench, res *results) error {
	limit := 3 * time.Minute
	if b.opts.profile == profileLong {
		limit = 15 * time.Minute
	}
	b.log.printf("e2e latency: %d runs, one at a time, trigger → completed", b.opts.runs)
	lr := b.e2eLatency(ctx, b.opts.runs, limit)
	res.E2ELatency = &lr
	name := "e2e latency (" + lr.Method + ")"
	if lr.Runs == 0 {
		err := fmt.Errorf("no run completed: %s", lr.FirstError)
		res.Rows = append(res.Rows, failedRow(name, "p50", "ms", goalE2EP50, err), failedRow(name, "p99", "ms", goalE2EP99, err))
		res.Problems = append(res.Problems, "e2e latency: "+err.Error())
		return ctx.Err()
	}
	res.Rows = append(res.Rows,
		newRow(name, "runs measured", float64(lr.Runs), "", nil),
		newRow(name, "p50", ms(lr.Latency.P50), "ms", goalE2EP50),
		newRow(name, "p99", ms(lr.Latency.P99), "ms", goalE2EP99),
	)
	if lr.Errors > 0 || lr.NotOK > 0 {
		res.Rows = append(res.Rows, newRow(name, "errors / not completed", float64(lr.Errors+lr.NotOK), "", nil))
		res.Problems = append(res.Problems, fmt.Sprintf("e2e latency: %d errors, %d runs not completed; first error: %s", lr.Errors, lr.NotOK, lr.FirstError))
	}
	if lr.Stopped != "" {
		res.Problems = append(res.Problems, "e2e latency stopped early: "+lr.Stopped)
	}
	b.log.printf("  p50 %.2f ms, p95 %.2f ms, p99 %.2f ms over %d runs", ms(lr.Latency.P50), ms(lr.Latency.P95), ms(lr.Latency.P99), lr.Runs)
	return ctx.Err()
}

func scenarioTrigger(ctx context.Context, b *bench, res *results) error {
	top := b.opts.clients[len(b.opts.clients)-1]
	for _, c := range b.opts.clients {
		b.log.printf("trigger: %d clients for %s", c, b.opts.duration)
		lv := b.triggerLevel(ctx, c, b.opts.duration)
		if b.tr != nil {
			if err := b.drain(ctx, 90*time.Second); err != nil {
				lv.DrainError = err.Error()
				if b.running() {
					res.Problems = append(res.Problems, fmt.Sprintf("trigger at %d clients: %v", c, err))
				}
			}
		}
		res.Trigger = append(res.Trigger, lv)
		server := ""
		if b.srv != nil {
			server = fmt.Sprintf(", peak RSS %.0f MB; CPU: runyard %.0f%%,", mb(lv.Usage.PeakRSS), lv.Usage.CPUPercent)
			server += fmt.Sprintf(" this tool %.0f%%, others %.0f%%; runyard CPU %.2f ms per accepted run", lv.ClientUsage.CPUPercent, othersCPU(lv.Usage, lv.ClientUsage), lv.CPUPerRunMs)
		} else {
			server = fmt.Sprintf("; CPU: machine %.0f%% (the target's included), this tool %.0f%%", lv.Usage.MachinePercent, lv.ClientUsage.CPUPercent)
		}
		b.log.printf("  %.0f accepted/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, %d errors %v%s",
			lv.AcceptedPerSec, ms(lv.Latency.P50), ms(lv.Latency.P95), ms(lv.Latency.P99), lv.Errors, lv.Statuses, server)
		sc := fmt.Sprintf("trigger, %d clients", c)
		var gRate, gP99 *goal
		if c == top && top == 64 {
			gRate, gP99 = goalTriggerRate, goalTriggerP99
		}
		res.Rows = append(res.Rows,
			newRow(sc, "accepted (HTTP 200)", lv.AcceptedPerSec, "/s", gRate),
			newRow(sc, "p50", ms(lv.Latency.P50), "ms", nil),
			newRow(sc, "p95", ms(lv.Latency.P95), "ms", nil),
			newRow(sc, "p99", ms(lv.Latency.P99), "ms", gP99),
			newRow(sc, "errors", float64(lv.Errors), "", nil),
		)
		if res.Bound != nil {
			res.Rows = append(res.Rows, newRow(sc, "efficiency (accepted / bound)", 100*lv.AcceptedPerSec/res.Bound.RunsPerSec, "%", nil))
		}
		if b.srv != nil && lv.CPUPerRunMs > 0 {
			res.Rows = append(res.Rows, newRow(sc, "runyard CPU per accepted run", lv.CPUPerRunMs, "ms", nil))
		}
		if lv.Errors > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("trigger at %d clients: %d of %d requests not accepted %v; first: %s", c, lv.Errors, lv.Requests, lv.Statuses, lv.FirstError))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.serverErr(); err != nil {
			return err
		}
	}
	return nil
}

func scenarioReads(ctx context.Context, b *bench, res *results, build bool) error {
	rr := &readsResult{Wanted: b.opts.readRuns}
	res.Reads = rr
	if build && b.opts.readRuns > 0 {
		b.log.printf("reads: bringing the schedule to %d runs", b.opts.readRuns)
		if err := b.buildReadsData(ctx, b.opts.readRuns, b.opts.buildBudget, rr); err != nil {
			res.Problems = append(res.Problems, "reads data: "+err.Error())
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if rr.BuildNote != "" {
			res.Problems = append(res.Problems, "reads: "+rr.BuildNote)
		}
	}
	if build {
		// Reads are measured on a quiet server: runs still executing would compete with them.
		if err := b.drain(ctx, 2*time.Minute); err != nil {
			res.Problems = append(res.Problems, "reads measured with runs still executing: "+err.Error())
		}
	}
	b.log.printf("reads: %d requests per route, one at a time", b.opts.readRequests)
	if err := b.reads(ctx, rr); err != nil {
		res.Rows = append(res.Rows, failedRow("reads", "runs list, run by id", "ms", nil, err))
		res.Problems = append(res.Problems, "reads: "+err.Error())
		return ctx.Err()
	}
	sc := fmt.Sprintf("reads (%s runs)", groupDigits(float64(rr.StoredRuns), 0))
	res.Rows = append(res.Rows,
		newRow(sc, "runs list ?_limit=20 p50", ms(rr.List.P50), "ms", nil),
		newRow(sc, "runs list ?_limit=20 p99", ms(rr.List.P99), "ms", nil),
		newRow(sc, "run by id p50", ms(rr.ByID.P50), "ms", nil),
		newRow(sc, "run by id p99", ms(rr.ByID.P99), "ms", nil),
	)
	if rr.Built > 0 {
		res.Rows = append(res.Rows, newRow(sc, "runs created for reads", float64(rr.Built), "", nil), newRow(sc, "  creation rate", rr.BuildRate, "runs/s", nil))
	}
	if rr.ListErrors+rr.ByIDErrors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("reads: %d list errors, %d by-id errors; first: %s", rr.ListErrors, rr.ByIDErrors, rr.FirstError))
	}
	b.log.printf("  %d runs stored; list p50 %.2f ms p99 %.2f ms; by id p50 %.2f ms p99 %.2f ms",
		rr.StoredRuns, ms(rr.List.P50), ms(rr.List.P99), ms(rr.ByID.P50), ms(rr.ByID.P99))
	return ctx.Err()
}

// maxOthersCPU is the most CPU that processes other than runyard and this tool used during
// any trigger level or throughput step: a measurement taken while it was high is disturbed.
func maxOthersCPU(res *results) float64 {
	var m float64
	for _, lv := range res.Trigger {
		m = max(m, othersCPU(lv.Usage, lv.ClientUsage))
	}
	for _, st := range res.Throughput {
		m = max(m, othersCPU(st.Usage, st.ClientUsage))
	}
	return m
}

func scenarioSSE(ctx context.Context, b *bench, nc *nats.Conn, res *results) error {
	o := b.opts
	if o.sseClients == 0 {
		return nil
	}
	filter := "every event of the space"
	if o.sseTypes != "" {
		filter = "type=" + o.sseTypes
	}
	b.log.printf("sse fan-out: %d clients on the default space's stream (%s), %g runs/s for %s", o.sseClients, filter, o.sseRate, o.sseDuration)
	fr, err := b.sseFanout(ctx, nc, o.sseClients, o.sseRate, o.sseDuration, o.sseTypes)
	res.SSEFanout = &fr
	sc := fmt.Sprintf("sse fan-out, %d clients", o.sseClients)
	var gP99 *goal
	if o.sseClients >= 1000 {
		gP99 = goalSSEP99
	}
	if fr.Pairs == 0 {
		if err == nil {
			err = errors.New("no status event was delivered")
		}
		res.Rows = append(res.Rows, failedRow(sc, "delivery p99", "ms", gP99, err))
		res.Problems = append(res.Problems, "sse fan-out: "+err.Error())
		return ctx.Err()
	}
	if err != nil {
		res.Problems = append(res.Problems, "sse fan-out: "+err.Error())
	}
	if fr.FirstError != "" {
		res.Problems = append(res.Problems, "sse fan-out: "+fr.FirstError)
	}
	res.Rows = append(res.Rows,
		newRow(sc, "clients connected", float64(fr.Connected), "", nil),
		newRow(sc, "status events × clients", float64(fr.Pairs), "", nil),
		newRow(sc, "delivery p50 (occurred_at → client)", ms(fr.Latency.P50), "ms", nil),
		newRow(sc, "delivery p99", ms(fr.Latency.P99), "ms", gP99),
		newRow(sc, "delivery max", ms(fr.Latency.Max), "ms", nil),
		newRow(sc, "  publish p50 (occurred_at → NATS)", ms(fr.Publish.P50), "ms", nil),
		newRow(sc, "  publish p99", ms(fr.Publish.P99), "ms", nil),
		newRow(sc, "  relay p50 (NATS → client)", ms(fr.Relay.P50), "ms", nil),
		newRow(sc, "  relay p99", ms(fr.Relay.P99), "ms", nil),
		newRow(sc, "events lost (client, event)", float64(fr.Lost), "", goalNoneLost),
		newRow(sc, "duplicates", float64(fr.Duplicated), "", goalNoneLost),
		newRow(sc, "runyard writes per event per client", fr.WritesPerPair, "x", nil),
		newRow(sc, "runyard CPU per 1,000 deliveries", fr.CPUPerKPairs, "ms", nil),
		newRow(sc, "this tool's CPU (the clients)", fr.ClientUsage.CPUPercent, "%", nil),
		newRow(sc, "runyard CPU", fr.Usage.CPUPercent, "%", nil),
		newRow(sc, "runyard RSS before the clients", mb(fr.RSSBefore), "MB", nil),
		newRow(sc, "runyard RSS, clients connected", mb(fr.RSSConnected), "MB", nil),
		newRow(sc, "runyard peak RSS in the window", mb(fr.Usage.PeakRSS), "MB", nil),
		newRow(sc, "other processes' CPU", othersCPU(fr.Usage, fr.ClientUsage), "%", nil),
	)
	b.log.printf("  %d runs, %d status events to %d clients: p50 %.1f ms, p99 %.1f ms, max %.1f ms (publish p50 %.1f ms, p99 %.1f ms; relay p50 %.1f ms, p99 %.1f ms); lost %d, duplicated %d, overflows %d; %.2f writes per event and client, %.1f ms of runyard CPU per 1,000; CPU: runyard %.0f%%, this tool %.0f%%, others %.0f%%; runyard RSS %.0f → %.0f MB (peak %.0f)",
		fr.Runs, fr.Events, fr.Connected, ms(fr.Latency.P50), ms(fr.Latency.P99), ms(fr.Latency.Max), ms(fr.Publish.P50), ms(fr.Publish.P99), ms(fr.Relay.P50), ms(fr.Relay.P99),
		fr.Lost, fr.Duplicated, fr.Overflows, fr.WritesPerPair, fr.CPUPerKPairs, fr.Usage.CPUPercent, fr.ClientUsage.CPUPercent, othersCPU(fr.Usage, fr.ClientUsage),
		mb(fr.RSSBefore), mb(fr.RSSConnected), mb(fr.Usage.PeakRSS))
	return ctx.Err()
}

func scenarioWebhook(ctx context.Context, b *bench, nc *nats.Conn, res *results) error {
	o := b.opts
	if o.webhookDuration == 0 {
		return nil
	}
	b.log.printf("webhook delivery: one webhook for the default space's run status events, a receiver on loopback, %g runs/s for %s", o.webhookRate, o.webhookDuration)
	wr, err := b.webhookDelivery(ctx, nc, o.webhookRate, o.webhookDuration)
	res.Webhook = &wr
	const sc = "webhook delivery"
	if wr.Received == 0 {
		if err == nil {
			err = errors.New("no delivery received")
		}
		res.Rows = append(res.Rows, failedRow(sc, "delivery p50, p99", "ms", nil, err))
		res.Problems = append(res.Problems, "webhook delivery: "+err.Error())
		return ctx.Err()
	}
	if err != nil {
		res.Problems = append(res.Problems, "webhook delivery: "+err.Error())
	}
	if wr.FirstError != "" {
		res.Problems = append(res.Problems, "webhook delivery: "+wr.FirstError)
	}
	res.Rows = append(res.Rows,
		newRow(sc, "status events delivered", float64(wr.Received), "", nil),
		newRow(sc, "delivery p50 (occurred_at → receiver)", ms(wr.Latency.P50), "ms", nil),
		newRow(sc, "delivery p99", ms(wr.Latency.P99), "ms", nil),
		newRow(sc, "delivery max", ms(wr.Latency.Max), "ms", nil),
		newRow(sc, "  publish p50 (occurred_at → NATS)", ms(wr.Publish.P50), "ms", nil),
		newRow(sc, "lost", float64(wr.Lost), "", nil),
		newRow(sc, "duplicated", float64(wr.Duplicated), "", nil),
		newRow(sc, "bad signatures", float64(wr.BadSig), "", nil),
	)
	b.log.printf("  %d runs, %d of %d status events delivered: p50 %.1f ms, p99 %.1f ms, max %.1f ms; lost %d, duplicated %d, bad signatures %d; runyard CPU %.0f%%",
		wr.Runs, wr.Received, wr.Events, ms(wr.Latency.P50), ms(wr.Latency.P99), ms(wr.Latency.Max), wr.Lost, wr.Duplicated, wr.BadSig, wr.Usage.CPUPercent)
	return ctx.Err()
}

// scenarioProbe measures JetStream and the store in this process.
func scenarioProbe(ctx context.Context, opts options, res *results, log *progress) error {
	log.printf("stack probe: JetStream and the SQLite store in this process, %s per measurement", opts.probeWindow)
	probe, perr := probeStack(ctx, opts.probeWindow)
	if perr != nil {
		res.Problems = append(res.Problems, "stack probe: "+perr.Error())
		res.Rows = append(res.Rows, failedRow("stack probe", "JetStream and store", "", nil, perr))
	} else {
		res.Probe = &probe
		res.Rows = append(res.Rows,
			newRow("stack probe", "JS publish, sync ack + msg id", probe.PublishPerSec, "msgs/s", nil),
			newRow("stack probe", "JS pull consume + ack", probe.ConsumePerSec, "msgs/s", nil),
			newRow("stack probe", "store CreateRun", probe.RunInsertsPerSec, "inserts/s", nil),
			newRow("stack probe", "store CreateBlockRuns (3)", probe.BlockInsertTxPerS, "tx/s", nil),
			newRow("stack probe", "store UpdateRun", probe.RunUpdatesPerSec, "updates/s", nil),
			newRow("stack probe", "store UpdateBlockRun", probe.BlockUpdatesPerSec, "updates/s", nil),
		)
	}
	return ctx.Err()
}
