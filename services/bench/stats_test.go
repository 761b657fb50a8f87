package main

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", hundred, 0, time.Millisecond},
		{"p50 of 4 is the 2nd", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p51 of 4 is the 3rd", []time.Duration{1, 2, 3, 4}, 51, 3},
		{"p99 of 10 is the max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p10 of 10 is the min", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10, 1},
	}
	for _, c := range cases {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: percentile(p%g) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestSummarizeSortsACopy(t *testing.T) {
	t.Parallel()
	ds := []time.Duration{5, 1, 4, 2, 3}
	s := summarize(ds)
	if s.N != 5 || s.P50 != 3 || s.P99 != 5 || s.Max != 5 || s.Mean != 3 {
		t.Fatalf("summarize = %+v", s)
	}
	if ds[0] != 5 || ds[1] != 1 {
		t.Fatalf("summarize reordered its input: %v", ds)
	}
	if z := summarize(nil); z != (latency{}) {
		t.Fatalf("summarize(nil) = %+v", z)
	}
}

func TestPerSecond(t *testing.T) {
	t.Parallel()
	if got := perSecond(500, 2*time.Second); got != 250 {
		t.Fatalf("perSecond = %v", got)
	}
	if got := perSecond(500, 0); got != 0 {
		t.Fatalf("perSecond over no time = %v", got)
	}
}
