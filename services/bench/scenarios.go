package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// bench holds what the scenarios share.
type bench struct {
	opts       options
	log        *progress
	cl         *apiClient
	scheduleID int64
	token      string
	srv        *server  // nil in target mode
	tr         *tracker // nil in target mode
	ids        idSet    // runs created, for reads by id
	accepted   atomic.Int64
}

// idSet collects run ids from any goroutine.
type idSet struct {
	mu  sync.Mutex
	ids []int64
}

func (s *idSet) add(id int64) {
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
}

func (s *idSet) sample(r *rand.Rand) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return 0, false
	}
	return s.ids[r.IntN(len(s.ids))], true
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (b *bench) pid() int {
	if b.srv == nil {
		return 0
	}
	return b.srv.pid()
}

// fire sends one trigger and accounts for it.
func (b *bench) fire(ctx context.Context) (time.Duration, triggerResult, error) {
	t0 := time.Now()
	res, err := b.cl.trigger(ctx, b.scheduleID, b.token)
	d := time.Since(t0)
	if err == nil && res.Status == http.StatusOK {
		b.accepted.Add(1)
		b.ids.add(res.RunID)
	}
	return d, res, err
}

// running reports whether the server under test still runs (always true in target mode).
func (b *bench) running() bool { return b.srv == nil || b.srv.alive() }

// serverErr is an error when the subprocess has exited, nil otherwise.
func (b *bench) serverErr() error {
	if b.running() {
		return nil
	}
	how := "with status 0, as it does on SIGTERM or SIGINT: something else signalled it"
	if b.srv.waitErr != nil {
		how = "with " + b.srv.waitErr.Error()
	}
	return fmt.Errorf("runyard exited during the benchmark %s; its last output:\n%s", how, b.srv.logs.tailText())
}

// drain waits until every run accepted so far has finished (local mode only).
func (b *bench) drain(ctx context.Context, limit time.Duration) error {
	if b.tr == nil {
		return nil
	}
	want := b.accepted.Load()
	deadline := time.Now().Add(limit)
	for {
		got, ok := b.tr.waitFinished(ctx, want, min(time.Until(deadline), time.Second))
		switch {
		case ok:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !b.running():
			return b.serverErr()
		case !time.Now().Before(deadline):
			return fmt.Errorf("%d of %d accepted runs still unfinished after %s", want-got, want, limit)
		}
	}
}

// triggerLevelResult is one concurrency level of the trigger scenario.
type triggerLevelResult struct {
	Clients        int              `json:"clients"`
	Duration       string           `json:"duration"`
	Requests       int64            `json:"requests"`
	Accepted       int64            `json:"accepted"`
	Errors         int64            `json:"errors"`
	Statuses       map[string]int64 `json:"statuses"`
	AcceptedPerSec float64          `json:"accepted_per_sec"`
	Latency        latency          `json:"latency"`
	Usage          usage            `json:"usage"`
	ClientUsage    usage            `json:"client_usage"` // this tool, sharing the machine
	// CPUPerRunMs is the server's CPU time per accepted trigger, in ms: unlike the rates, it
	// hardly moves when other processes take CPU from the server.
	CPUPerRunMs float64 `json:"cpu_ms_per_run"`
	FirstError  string  `json:"first_error,omitempty"`
	DrainError  string  `json:"drain_error,omitempty"`
}

// triggerLevel runs clients closed-loop clients firing triggers for d.
func (b *bench) triggerLevel(ctx context.Context, clients int, d time.Duration) triggerLevelResult {
	res := triggerLevelResult{Clients: clients, Statuses: map[string]int64{}}
	var (
		mu       sync.Mutex
		lats     []time.Duration
		firstErr string
	)
	smp := startSampler(ctx, b.pid(), 250*time.Millisecond)
	self := startSampler(ctx, os.Getpid(), time.Second)
	t0 := time.Now()
	deadline := t0.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			statuses := map[string]int64{}
			var requests, accepted int64
			var errText string
			for time.Now().Before(deadline) && ctx.Err() == nil && b.running() {
				lat, tr, err := b.fire(ctx)
				requests++
				switch {
				case err != nil:
					statuses["transport"]++
					if errText == "" {
						errText = err.Error()
					}
					continue
				case tr.Status == http.StatusOK:
					accepted++
				default:
					if errText == "" {
						errText = fmt.Sprintf("HTTP %d", tr.Status)
					}
				}
				statuses[fmt.Sprint(tr.Status)]++
				local = append(local, lat)
			}
			mu.Lock()
			defer mu.Unlock()
			lats = append(lats, local...)
			res.Requests += requests
			res.Accepted += accepted
			for k, v := range statuses {
				res.Statuses[k] += v
			}
			if firstErr == "" {
				firstErr = errText
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	res.Usage, _ = smp.stop()
	res.ClientUsage, _ = self.stop()
	res.Duration = elapsed.Round(time.Millisecond).String()
	res.Errors = res.Requests - res.Accepted
	res.AcceptedPerSec = perSecond(res.Accepted, elapsed)
	res.CPUPerRunMs = cpuPerRun(res.Usage.CPUPercent, res.AcceptedPerSec)
	res.Latency = summarize(lats)
	res.FirstError = firstErr
	return res
}

// latencyResult is the e2e latency scenario's outcome.
type latencyResult struct {
	Method     string  `json:"method"` // "events" or "polling"
	Runs       int     `json:"runs"`
	Errors     int     `json:"errors"`
	NotOK      int     `json:"runs_not_completed"`
	Latency    latency `json:"latency"`
	Stopped    string  `json:"stopped,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

// e2eLatency triggers runs one at a time and measures trigger → completed, through the
// completion event (local mode) or by polling GET /api/pipeline_runs/:id every 5 ms (target
// mode). It gives up after limit.
func (b *bench) e2eLatency(ctx context.Context, runs int, limit time.Duration) latencyResult {
	res := latencyResult{Method: "events"}
	if b.tr == nil {
		res.Method = "polling"
	}
	deadline := time.Now().Add(limit)
	lats := make([]time.Duration, 0, runs)
	for i := 0; i < runs; i++ {
		if ctx.Err() != nil || !b.running() {
			res.Stopped = "interrupted"
			break
		}
		if time.Now().After(deadline) {
			res.Stopped = fmt.Sprintf("time limit %s reached after %d runs", limit, i)
			break
		}
		if res.Errors > 10 && res.Errors > i/10 {
			res.Stopped = "too many errors"
			break
		}
		t0 := time.Now()
		_, tr, err := b.fire(ctx)
		if err == nil && tr.Status != http.StatusOK {
			err = fmt.Errorf("trigger: HTTP %d", tr.Status)
		}
		if err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		var (
			status string
			done   time.Time
		)
		if b.tr != nil {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			t, werr := b.tr.wait(wctx, tr.RunID)
			cancel()
			status, done, err = t.Status, t.At, werr
		} else {
			status, done, err = b.poll(ctx, tr.RunID, 2*time.Minute)
		}
		if err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		if status != "completed" {
			res.NotOK++
		}
		lats = append(lats, done.Sub(t0))
	}
	res.Runs = len(lats)
	res.Latency = summarize(lats)
	return res
}

// poll reads the run every 5 ms until it has a terminal status or limit passes.
func (b *bench) poll(ctx context.Context, id int64, limit time.Duration) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := b.cl.runStatus(ctx, id)
		now := time.Now()
		if err == nil && terminalStatus(st) {
			return st, now, nil
		}
		var hse *httpStatusError
		if err != nil && !errors.As(err, &hse) {
			return "", now, fmt.Errorf("poll run %d: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return "", now, fmt.Errorf("run %d not finished within %s (last status %q)", id, limit, st)
		case <-t.C:
		}
	}
}

// throughput runs open-loop steps at rising rates until one does not keep up, then one step
// halfway between the last rate that kept up and the first that did not.
func (b *bench) throughput(ctx context.Context) ([]rateStep, error) {
	var steps []rateStep
	step := func(rate float64) (rateStep, error) {
		if err := b.serverErr(); err != nil {
			return rateStep{}, err
		}
		if err := b.drain(ctx, 60*time.Second); err != nil {
			return rateStep{}, fmt.Errorf("before %g runs/s: %w", rate, err)
		}
		st := b.rateStep(ctx, rate, b.opts.stepDuration)
		b.log.printf("  %6.0f runs/s: %d due, %d completed (%.0f runs/s in window), backlog %d, keeps up: %v, CPU: runyard %.0f%% (%.2f ms per run), this tool %.0f%%, others %.0f%%; peak RSS %.0f MB, trigger p99 %.1f ms",
			rate, st.Due, st.Completed, st.RunsPerSec, st.Backlog, st.KeepsUp, st.Usage.CPUPercent, st.CPUPerRunMs, st.ClientUsage.CPUPercent, othersCPU(st.Usage, st.ClientUsage), mb(st.Usage.PeakRSS), ms(st.Trigger.P99))
		return st, ctx.Err()
	}
	for _, rate := range b.opts.rates {
		st, err := step(rate)
		if err != nil {
			return steps, err
		}
		steps = append(steps, st)
		if !st.KeepsUp {
			break
		}
	}
	if rate, ok := refinementRate(steps); ok {
		st, err := step(rate)
		if err != nil {
			return steps, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// maxInFlight bounds the open-loop client's concurrent requests.
const maxInFlight = 1024

// rateStep fires triggers at rate for window without waiting for answers (each in its own
// goroutine, at most maxInFlight at once), then waits stepDrain and checks the backlog.
func (b *bench) rateStep(ctx context.Context, rate float64, window time.Duration) rateStep {
	st := rateStep{Rate: rate, Window: window.String()}
	c0, b0 := b.tr.completed.Load(), b.tr.blocksCompleted.Load()
	smp := startSampler(ctx, b.pid(), 100*time.Millisecond)
	self := startSampler(ctx, os.Getpid(), time.Second)
	sem := make(chan struct{}, maxInFlight)
	var (
		wg                            sync.WaitGroup
		accepted, rejected, transport atomic.Int64
		mu                            sync.Mutex
		lats                          []time.Duration
		firstErr                      string
	)
	tick := time.NewTicker(2 * time.Millisecond)
	t0 := time.Now()
loop:
	for {
		elapsed := time.Since(t0)
		due := dueArrivals(rate, elapsed, window)
		for st.Sent+st.Shed < due {
			select {
			case sem <- struct{}{}:
				st.Sent++
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					lat, tr, err := b.fire(ctx)
					switch {
					case err != nil:
						transport.Add(1)
					case tr.Status == http.StatusOK:
						accepted.Add(1)
					default:
						rejected.Add(1)
						err = fmt.Errorf("HTTP %d", tr.Status)
					}
					mu.Lock()
					if err == nil {
						lats = append(lats, lat)
					} else if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				}()
			default:
				st.Shed++
			}
		}
		if elapsed >= window || !b.running() {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
	}
	tick.Stop()
	end := time.Since(t0)
	st.Due = dueArrivals(rate, end, window)
	st.InWindow = b.tr.completed.Load() - c0
	blocks := b.tr.blocksCompleted.Load() - b0
	st.RunsPerSec = perSecond(st.InWindow, end)
	st.BlocksPerS = perSecond(blocks, end)
	select {
	case <-ctx.Done():
	case <-time.After(stepDrain):
	}
	st.Completed = b.tr.completed.Load() - c0
	st.Backlog, st.KeepsUp = evaluateStep(rate, st.Due, st.Completed, allowanceFor(window))
	sampled := time.Since(t0)
	st.Usage, _ = smp.stop()
	st.ClientUsage, _ = self.stop()
	// The sampler spans the window and the drain after it, as do the completions counted.
	st.CPUPerRunMs = cpuPerRun(st.Usage.CPUPercent, perSecond(st.Completed, sampled))
	// Requests still in flight end within the client's timeout.
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(requestTimeout + 5*time.Second):
	}
	st.Accepted, st.Rejected, st.Transport = accepted.Load(), rejected.Load(), transport.Load()
	mu.Lock()
	st.Trigger, st.FirstError = summarize(lats), firstErr
	mu.Unlock()
	return st
}

// readsResult is the reads scenario's outcome.
type readsResult struct {
	StoredRuns   int64   `json:"stored_runs"`
	Wanted       int     `json:"wanted_runs"`
	Built        int64   `json:"runs_created_for_reads"`
	BuildTime    string  `json:"build_time"`
	BuildRate    float64 `json:"build_runs_per_sec"`
	BuildNote    string  `json:"build_note,omitempty"`
	List         latency `json:"list_latency"`
	ListErrors   int     `json:"list_errors"`
	ByID         latency `json:"by_id_latency"`
	ByIDErrors   int     `json:"by_id_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	ReadRequests int     `json:"requests_per_route"`
}

// buildReadsData triggers runs with 64 closed-loop clients until the schedule holds want
// runs or budget passes, then lets them finish.
func (b *bench) buildReadsData(ctx context.Context, want int, budget time.Duration, res *readsResult) error {
	page, err := b.cl.scheduleRuns(ctx, b.scheduleID, 1)
	if err != nil {
		return err
	}
	need := int64(want) - page.Count
	if need <= 0 {
		return nil
	}
	b.log.printf("  creating %d runs through the API (64 clients, at most %s)", need, budget)
	// issued reserves a run before its trigger is sent and gives the reservation back when the
	// trigger is not accepted, so the clients create exactly need runs.
	var created, issued atomic.Int64
	t0 := time.Now()
	bctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bctx.Err() == nil && b.running() {
				if issued.Add(1) > need {
					return
				}
				_, tr, err := b.fire(bctx)
				if err == nil && tr.Status == http.StatusOK {
					created.Add(1)
				} else {
					issued.Add(-1)
				}
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				b.log.printf("  … %d of %d created", created.Load(), need)
			}
		}
	}()
	wg.Wait()
	close(progressDone)
	res.Built = created.Load()
	el := time.Since(t0)
	res.BuildTime, res.BuildRate = el.Round(time.Millisecond).String(), perSecond(res.Built, el)
	if res.Built < need {
		res.BuildNote = fmt.Sprintf("build budget %s reached: %d of %d runs created", budget, res.Built, need)
	}
	return ctx.Err()
}

// reads measures GET /api/pipeline_schedules/:id/pipeline_runs?_limit=20 and
// GET /api/pipeline_runs/:id, one request at a time.
func (b *bench) reads(ctx context.Context, res *readsResult) error {
	page, err := b.cl.scheduleRuns(ctx, b.scheduleID, 20)
	if err != nil {
		return err
	}
	res.StoredRuns = page.Count
	res.ReadRequests = b.opts.readRequests
	for _, id := range page.IDs {
		if b.ids.len() < 20 {
			b.ids.add(id)
		}
	}
	if b.ids.len() == 0 {
		return errors.New("the schedule has no runs to read")
	}
	listPath := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs?_limit=20", b.scheduleID)
	lats := make([]time.Duration, 0, b.opts.readRequests)
	for range b.opts.readRequests {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		status, body, err := b.cl.do(ctx, http.MethodGet, listPath, nil, true)
		d := time.Since(t0)
		if err == nil && status != http.StatusOK {
			err = &httpStatusError{Method: http.MethodGet, Path: listPath, Status: status, Body: string(body)}
		}
		if err != nil {
			res.ListErrors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		lats = append(lats, d)
	}
	res.List = summarize(lats)

	rng := rand.New(rand.NewPCG(1, 2))
	lats = lats[:0]
	for range b.opts.readRequests {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		id, _ := b.ids.sample(rng)
		path := fmt.Sprintf("/api/pipeline_runs/%d", id)
		t0 := time.Now()
		status, body, err := b.cl.do(ctx, http.MethodGet, path, nil, true)
		d := time.Since(t0)
		if err == nil && status != http.StatusOK {
			err = &httpStatusError{Method: http.MethodGet, Path: path, Status: status, Body: string(body)}
		}
		if err != nil {
			res.ByIDErrors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		lats = append(lats, d)
	}
	res.ByID = summarize(lats)
	return nil
}

// idleUsage waits for the process's RSS to settle (four readings 250 ms apart within 1% of
// each other, at most limit) and returns it with the CPU share over the wait.
func idleUsage(ctx context.Context, pid int, limit time.Duration) (usage, error) {
	smp := startSampler(ctx, pid, time.Hour) // CPU over the whole wait; RSS read below
	deadline := time.Now().Add(limit)
	var readings []int64
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			_, _ = smp.stop()
			return usage{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		rss, err := readRSS(pid)
		if err != nil {
			_, _ = smp.stop()
			return usage{}, err
		}
		readings = append(readings, rss)
		if n := len(readings); n >= 4 {
			lo, hi := readings[n-4], readings[n-4]
			for _, r := range readings[n-4:] {
				lo, hi = min(lo, r), max(hi, r)
			}
			if float64(hi-lo) <= 0.01*float64(hi) {
				break
			}
		}
	}
	u, err := smp.stop()
	if len(readings) > 0 {
		u.LastRSS = readings[len(readings)-1]
	}
	return u, err
}

// othersCPU is the CPU the machine spent on processes other than runyard and this tool over a
// window (in % of one core): load that competes with the measurement.
func othersCPU(server, client usage) float64 {
	return max(server.MachinePercent-server.CPUPercent-client.CPUPercent, 0)
}
