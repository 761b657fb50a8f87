package main

import (
	"math"
	"time"
)

// backlogAllowance is how much backlog a rate may leave and still keep up: two seconds'
// worth of arrivals (a fifth of the window when that is shorter), measured at the end of the
// window plus stepDrain.
const (
	backlogAllowance = 2 * time.Second
	stepDrain        = time.Second
)

// allowanceFor is the backlog allowance of a window: backlogAllowance, or a fifth of a window
// shorter than ten seconds, so that a short window cannot pass by its allowance alone.
func allowanceFor(window time.Duration) time.Duration {
	return min(backlogAllowance, window/5)
}

// evaluateStep decides whether an open-loop rate step kept up: due arrivals minus the runs
// completed by the end of the window plus the drain must stay within allowance worth of
// arrivals at rate.
func evaluateStep(rate float64, due, completed int64, allowance time.Duration) (backlog int64, keepsUp bool) {
	backlog = max(due-completed, 0)
	limit := int64(math.Ceil(rate * allowance.Seconds()))
	return backlog, backlog <= limit
}

// dueArrivals is how many arrivals an open-loop schedule at rate has due after elapsed,
// capped at the window's total.
func dueArrivals(rate float64, elapsed, window time.Duration) int64 {
	total := int64(math.Floor(rate * window.Seconds()))
	if elapsed >= window {
		return total
	}
	if elapsed <= 0 {
		return 0
	}
	return min(int64(math.Floor(rate*elapsed.Seconds())), total)
}

// rateStep is one window of open-loop arrivals at a fixed rate.
type rateStep struct {
	Rate        float64 `json:"rate"`
	Window      string  `json:"window"`
	Due         int64   `json:"due"`
	Sent        int64   `json:"sent"`
	Shed        int64   `json:"shed"` // due but not sent: the client's in-flight bound was reached
	Accepted    int64   `json:"accepted"`
	Rejected    int64   `json:"rejected"` // answered, not 200
	Transport   int64   `json:"transport_errors"`
	InWindow    int64   `json:"completed_in_window"`
	Completed   int64   `json:"completed_after_drain"`
	Backlog     int64   `json:"backlog"`
	KeepsUp     bool    `json:"keeps_up"`
	RunsPerSec  float64 `json:"runs_per_sec"` // completions within the window per second
	BlocksPerS  float64 `json:"blocks_per_sec"`
	Usage       usage   `json:"usage"`
	ClientUsage usage   `json:"client_usage"`   // this tool, sharing the machine
	CPUPerRunMs float64 `json:"cpu_ms_per_run"` // server CPU per run completed in the window
	Trigger     latency `json:"trigger_latency"`
	FirstError  string  `json:"first_error,omitempty"`
}

// throughputSummary reduces the steps: the highest rate that kept up (the steps stop rising
// at the first that does not), the best completion rate any step sustained, and the peak RSS.
type throughputSummary struct {
	KeepsUpAt       float64 `json:"keeps_up_at"` // 0: none did
	KeepsUpStep     int     `json:"keeps_up_step"`
	MaxRunsPerSec   float64 `json:"max_runs_per_sec"`
	MaxBlocksPerS   float64 `json:"max_blocks_per_sec"`
	PeakRSS         int64   `json:"peak_rss_bytes"`
	CPUAtKeepsUp    float64 `json:"cpu_percent_at_keeps_up"`
	StoppedRisingAt float64 `json:"stopped_rising_at,omitempty"`
}

func summarizeSteps(steps []rateStep) throughputSummary {
	s := throughputSummary{KeepsUpStep: -1}
	for i, st := range steps {
		if st.KeepsUp && st.Rate > s.KeepsUpAt {
			s.KeepsUpAt, s.KeepsUpStep, s.CPUAtKeepsUp = st.Rate, i, st.Usage.CPUPercent
		}
		if !st.KeepsUp && s.StoppedRisingAt == 0 {
			s.StoppedRisingAt = st.Rate
		}
		s.MaxRunsPerSec = max(s.MaxRunsPerSec, st.RunsPerSec)
		s.MaxBlocksPerS = max(s.MaxBlocksPerS, st.BlocksPerS)
		s.PeakRSS = max(s.PeakRSS, st.Usage.PeakRSS)
	}
	return s
}

// refinementRate is the extra step after the rising steps: halfway between the last rate that
// kept up and the first that did not, when they are more than 20% apart. None when every step
// kept up or none did.
func refinementRate(steps []rateStep) (float64, bool) {
	if len(steps) < 2 {
		return 0, false
	}
	failed, ok := steps[len(steps)-1], steps[len(steps)-2]
	if failed.KeepsUp || !ok.KeepsUp || failed.Rate <= ok.Rate*1.2 {
		return 0, false
	}
	return math.Round((ok.Rate + failed.Rate) / 2), true
}

// cpuPerRun is the server's CPU time per run in ms, from its CPU share over a window (100% =
// one core) and the runs per second in that window; 0 when no run was counted.
func cpuPerRun(cpuPercent, runsPerSec float64) float64 {
	if runsPerSec <= 0 {
		return 0
	}
	return cpuPercent * 10 / runsPerSec
}
