package main

import (
	"testing"
	"time"
)

func TestEvaluateStep(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		rate           float64
		due, completed int64
		allowance      time.Duration
		wantBacklog    int64
		wantKeepsUp    bool
	}{
		{"all done", 100, 1000, 1000, 2 * time.Second, 0, true},
		{"within two seconds of arrivals", 100, 1000, 800, 2 * time.Second, 200, true},
		{"one run over", 100, 1000, 799, 2 * time.Second, 201, false},
		{"far behind", 800, 8000, 2700, 2 * time.Second, 5300, false},
		{"more completed than due (earlier runs)", 50, 500, 510, 2 * time.Second, 0, true},
		{"fractional rate rounds the allowance up", 0.5, 10, 9, 2 * time.Second, 1, true},
		{"nothing completed", 10, 100, 0, time.Second, 100, false},
	}
	for _, c := range cases {
		backlog, ok := evaluateStep(c.rate, c.due, c.completed, c.allowance)
		if backlog != c.wantBacklog || ok != c.wantKeepsUp {
			t.Errorf("%s: evaluateStep = (%d, %v), want (%d, %v)", c.name, backlog, ok, c.wantBacklog, c.wantKeepsUp)
		}
	}
}

func TestAllowanceForShortWindows(t *testing.T) {
	t.Parallel()
	if got := allowanceFor(10 * time.Second); got != 2*time.Second {
		t.Fatalf("allowance of 10s = %v", got)
	}
	if got := allowanceFor(2 * time.Second); got != 400*time.Millisecond {
		t.Fatalf("allowance of 2s = %v", got)
	}
	// A 2 s window at 800 runs/s that completed a third of its arrivals must not pass.
	if _, ok := evaluateStep(800, 1600, 530, allowanceFor(2*time.Second)); ok {
		t.Fatal("a short window passed on its allowance alone")
	}
}

func TestDueArrivals(t *testing.T) {
	t.Parallel()
	w := 10 * time.Second
	cases := []struct {
		rate    float64
		elapsed time.Duration
		want    int64
	}{
		{100, 0, 0},
		{100, -time.Second, 0},
		{100, 10 * time.Millisecond, 1},
		{100, 9 * time.Millisecond, 0},
		{100, 5 * time.Second, 500},
		{100, 10 * time.Second, 1000},
		{100, 11 * time.Second, 1000},
		{33.3, 10 * time.Second, 333},
	}
	for _, c := range cases {
		if got := dueArrivals(c.rate, c.elapsed, w); got != c.want {
			t.Errorf("dueArrivals(%g, %v) = %d, want %d", c.rate, c.elapsed, got, c.want)
		}
	}
}

func TestSummarizeSteps(t *testing.T) {
	t.Parallel()
	steps := []rateStep{
		{Rate: 50, KeepsUp: true, RunsPerSec: 49, BlocksPerS: 147, Usage: usage{CPUPercent: 20, PeakRSS: 100}},
		{Rate: 100, KeepsUp: true, RunsPerSec: 99, BlocksPerS: 297, Usage: usage{CPUPercent: 40, PeakRSS: 120}},
		{Rate: 200, KeepsUp: false, RunsPerSec: 150, BlocksPerS: 480, Usage: usage{CPUPercent: 190, PeakRSS: 300}},
	}
	s := summarizeSteps(steps)
	if s.KeepsUpAt != 100 || s.KeepsUpStep != 1 || s.CPUAtKeepsUp != 40 {
		t.Fatalf("keeps up = %v at step %d, CPU %v", s.KeepsUpAt, s.KeepsUpStep, s.CPUAtKeepsUp)
	}
	if s.MaxRunsPerSec != 150 || s.MaxBlocksPerS != 480 || s.PeakRSS != 300 || s.StoppedRisingAt != 200 {
		t.Fatalf("summary = %+v", s)
	}
	none := summarizeSteps([]rateStep{{Rate: 50, KeepsUp: false, RunsPerSec: 10}})
	if none.KeepsUpAt != 0 || none.KeepsUpStep != -1 {
		t.Fatalf("no step kept up, summary says %+v", none)
	}
}

func TestRefinementRate(t *testing.T) {
	t.Parallel()
	ok := func(r float64) rateStep { return rateStep{Rate: r, KeepsUp: true} }
	fail := func(r float64) rateStep { return rateStep{Rate: r} }
	cases := []struct {
		name  string
		steps []rateStep
		want  float64
		has   bool
	}{
		{"between the last good and the first bad", []rateStep{ok(50), ok(100), ok(200), fail(400)}, 300, true},
		{"every step kept up", []rateStep{ok(50), ok(100)}, 0, false},
		{"the first step failed", []rateStep{fail(50)}, 0, false},
		{"too close to refine", []rateStep{ok(100), fail(110)}, 0, false},
		{"rounded", []rateStep{ok(33), fail(67)}, 50, true},
	}
	for _, c := range cases {
		got, has := refinementRate(c.steps)
		if got != c.want || has != c.has {
			t.Errorf("%s: refinementRate = (%v, %v), want (%v, %v)", c.name, got, has, c.want, c.has)
		}
	}
}

func TestCPUPerRun(t *testing.T) {
	t.Parallel()
	// 150% of a core at 300 runs/s is 5 ms of CPU per run.
	if got := cpuPerRun(150, 300); got != 5 {
		t.Fatalf("cpuPerRun(150, 300) = %v, want 5", got)
	}
	if got := cpuPerRun(80, 0); got != 0 {
		t.Fatalf("cpuPerRun with no runs = %v, want 0", got)
	}
}
