package main

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFormatTableAligns(t *testing.T) {
	t.Parallel()
	rows := []row{
		newRow("trigger, 64 clients", "accepted (HTTP 200)", 2345.6, "/s", atLeast(2000)),
		newRow("trigger, 64 clients", "p99", 31.234, "ms", atMost(25)),
		newRow("idle", "RSS after start-up", 33.8, "MB", atMost(80)),
		newRow("reads", "stored", 1234567, "", nil),
		failedRow("e2e latency", "p50", "ms", atMost(10), errors.New("no run completed")),
	}
	out := formatTable(rows)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2+len(rows) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 2+len(rows), out)
	}
	want := []string{
		"scenario             metric               value                     target       ok?",
		"-------------------  -------------------  ------------------------  -----------  ----",
		"trigger, 64 clients  accepted (HTTP 200)  2,346 /s                  >= 2,000 /s  ok",
		"                     p99                  31.23 ms                  <= 25.00 ms  MISS",
		"idle                 RSS after start-up   33.8 MB                   <= 80.0 MB   ok",
		"reads                stored               1,234,567",
		"e2e latency          p50                  failed: no run completed  <= 10.00 ms  MISS",
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
	// Every column starts at the same rune offset on every full line.
	col := strings.Index(lines[0], "value")
	for _, l := range lines[2:5] {
		if utf8.RuneCountInString(l) <= col || l[col-2:col] != "  " || l[col] == ' ' {
			t.Errorf("value column misaligned in %q", l)
		}
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    float64
		unit string
		want string
	}{
		{1234567.4, "", "1,234,567"},
		{999, "", "999"},
		{-1234, "", "-1,234"},
		{12.345, "ms", "12.35 ms"},
		{49.6, "%", "50%"},
		{79.95, "MB", "80.0 MB"},
		{29980.2, "msgs/s", "29,980 msgs/s"},
		{3.5, "msgs", "3.5 msgs"},
		{17, "msgs", "17 msgs"},
	}
	for _, c := range cases {
		if got := formatValue(c.v, c.unit); got != c.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

func TestGoalsAndSummary(t *testing.T) {
	t.Parallel()
	if !atLeast(2000).met(2000) || atLeast(2000).met(1999.9) {
		t.Fatal("atLeast is wrong at its limit")
	}
	if !atMost(25).met(25) || atMost(25).met(25.01) {
		t.Fatal("atMost is wrong at its limit")
	}
	nan := newRow("x", "y", 0/zero(), "ms", atMost(1))
	if !nan.Failed || nan.OK == nil || *nan.OK {
		t.Fatalf("a NaN value must be a failed row that misses its target: %+v", nan)
	}
	rows := []row{
		newRow("a", "m1", 1, "", atLeast(2)),
		newRow("b", "m2", 1, "", atMost(2)),
		newRow("c", "m3", 1, "", nil),
	}
	if got := summaryLine(rows); got != "1 of 2 targets missed: a / m1" {
		t.Fatalf("summary = %q", got)
	}
	if got := summaryLine(rows[1:]); got != "all 1 targets met" {
		t.Fatalf("summary = %q", got)
	}
}

func zero() float64 { return 0 }
