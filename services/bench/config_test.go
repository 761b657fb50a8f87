package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.profile != profileQuick || o.out != "bench-results.json" || o.binary != "bin/runyard" || o.target != "" {
		t.Fatalf("defaults: %+v", o)
	}
	if o.duration != 10*time.Second || o.readRuns != 20_000 || o.runs != 200 || len(o.clients) != 3 || o.clients[2] != 64 {
		t.Fatalf("quick profile: %+v", o)
	}
	long, err := parseFlags([]string{"--profile", "long", "--read-runs", "5000", "--duration", "3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if long.readRuns != 5000 || long.duration != 3*time.Second || long.timeout != 3*time.Hour {
		t.Fatalf("explicit flags must win over the profile: %+v", long)
	}
	if o, err := parseFlags([]string{"--env", "RUNYARD_EXECUTOR_WORKERS=64", "--env", "RUNYARD_COMMAND_WAIT=2s"}, io.Discard); err != nil || len(o.serverEnv) != 2 {
		t.Fatalf("--env: %v, %v", o.serverEnv, err)
	}
	if o, err := parseFlags([]string{"--read-runs", "0"}, io.Discard); err != nil || o.readRuns != 0 {
		t.Fatalf("--read-runs 0 = %d, %v", o.readRuns, err)
	}
	if o.sseClients != 1000 || o.sseRate != 10 || o.sseDuration != 10*time.Second || o.webhookDuration != 10*time.Second || o.scenarios != nil || !o.selected("reads") {
		t.Fatalf("event scenario defaults: %+v", o)
	}
	if long.sseDuration != time.Minute || long.webhookDuration != time.Minute {
		t.Fatalf("long profile event windows: %s, %s", long.sseDuration, long.webhookDuration)
	}
	ev, err := parseFlags([]string{"--scenarios", "events", "--sse-clients", "0", "--sse-types", "pipeline_run.status_changed, block_run.status_changed", "--webhook-duration", "0s"}, io.Discard)
	if err != nil || ev.sseClients != 0 || ev.webhookDuration != 0 || !ev.selected("events") || ev.selected("reads") ||
		ev.sseTypes != "pipeline_run.status_changed,block_run.status_changed" {
		t.Fatalf("event scenario flags: %+v, %v", ev, err)
	}
}

func TestParseFlagsTargetMode(t *testing.T) {
	t.Parallel()
	o, err := parseFlags([]string{"--target", "http://localhost:6789/", "--api-key", "k", "--schedule-id", "3", "--token", "abc"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.target != "http://localhost:6789" || o.scheduleID != 3 || o.token != "abc" || o.apiKey != "k" {
		t.Fatalf("target options: %+v", o)
	}
	if _, err := parseFlags([]string{"--target", "http://10.1.2.3:6789", "--api-key", "k", "--schedule-id", "3", "--token", "abc", "--allow-remote"}, io.Discard); err != nil {
		t.Fatalf("--allow-remote: %v", err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	t.Parallel()
	target := []string{"--target", "http://127.0.0.1:6789", "--api-key", "k", "--schedule-id", "3", "--token", "abc"}
	cases := []struct {
		args []string
		want []string // every one must appear in the error
	}{
		{[]string{"--profile", "medium"}, []string{`--profile "medium": want quick or long`}},
		{[]string{"--duration", "0s"}, []string{"--duration 0s: must be between"}},
		{[]string{"--runs", "0"}, []string{"--runs 0: must be between 1"}},
		{[]string{"--read-runs", "-5"}, []string{"--read-runs -5"}},
		{[]string{"--clients", "1,x"}, []string{`--clients "1,x"`, `"x" is not a whole number`}},
		{[]string{"--rates", "100,50"}, []string{"rates must rise: 50 follows 100"}},
		{[]string{"--out", " "}, []string{"--out: must name a file"}},
		{[]string{"--token", "abc", "--schedule-id", "2"}, []string{"--token: only applies with --target", "--schedule-id: only applies with --target"}},
		{[]string{"--target", "http://localhost:6789"}, []string{"--api-key: required", "--schedule-id: required", "--token: required"}},
		{append([]string{"--binary", "x"}, target...), []string{"--binary, --env: target mode starts nothing"}},
		{[]string{"--target", "ftp://localhost", "--api-key", "k", "--schedule-id", "1", "--token", "t"}, []string{"want http://host:port"}},
		{[]string{"--target", "http://example.com:6789", "--api-key", "k", "--schedule-id", "1", "--token", "t"}, []string{"not a loopback address", "--allow-remote"}},
		{[]string{"--target", "http://localhost:6789/api", "--api-key", "k", "--schedule-id", "1", "--token", "t"}, []string{"without path or query"}},
		{[]string{"--target", "http://u:p@localhost:6789", "--api-key", "k", "--schedule-id", "1", "--token", "t"}, []string{"must not carry credentials"}},
		{[]string{"--target", "http://localhost:6789", "--api-key", "k", "--schedule-id", "-1", "--token", "a/b"}, []string{"--schedule-id: required", "--token: must not contain"}},
		{[]string{"extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--env", "RUNYARD_DATA_DIR=/x"}, []string{"RUNYARD_DATA_DIR is set by the tool"}},
		{[]string{"--env", "HOME=/x"}, []string{"only RUNYARD_* variables"}},
		{[]string{"--env", "RUNYARD_EXECUTOR_WORKERS"}, []string{"want RUNYARD_NAME=value"}},
		{append([]string{"--env", "RUNYARD_EXECUTOR_WORKERS=64"}, target...), []string{"target mode starts nothing"}},
		{[]string{"--no-such-flag"}, []string{"no-such-flag"}},
		{[]string{"--sse-clients", "-1", "--sse-rate", "0", "--webhook-rate", "5000"}, []string{"--sse-clients -1", "--sse-rate 0", "--webhook-rate 5000"}},
		{[]string{"--sse-duration", "0s", "--sse-types", "a b"}, []string{"--sse-duration 0s", `--sse-types "a b"`}},
		{[]string{"--scenarios", "events,nope"}, []string{`"nope" is not one of probe`}},
		{append([]string{"--sse-clients", "10", "--scenarios", "reads"}, target...), []string{"--sse-clients: the event scenarios run only", "--scenarios: the event scenarios"}},
		{[]string{"--env", "RUNYARD_CONNECTOR_ALLOW_PRIVATE=false"}, []string{"RUNYARD_CONNECTOR_ALLOW_PRIVATE is set by the tool"}},
	}
	for _, c := range cases {
		_, err := parseFlags(c.args, io.Discard)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.args, err, w)
			}
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	_, err := parseFlags([]string{"-h"}, &b)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(b.String(), "usage: runyard-bench") || !strings.Contains(b.String(), "-target") {
		t.Fatalf("usage text: %q", b.String())
	}
}

func TestRunStopsOnBadFlagsAndHelp(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"--runs", "0", "--out", t.TempDir() + "/r.json"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--runs 0") {
		t.Fatalf("run with --runs 0: %v", err)
	}
	var b strings.Builder
	if err := run(t.Context(), []string{"-h"}, &b); err != nil || !strings.Contains(b.String(), "usage:") {
		t.Fatalf("run -h: %v, %q", err, b.String())
	}
}
