package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestParseRunEventSubject(t *testing.T) {
	t.Parallel()
	id, st, ok := parseRunEventSubject("runyard.evt.default.run.bench_noop.42.completed")
	if !ok || id != 42 || st != "completed" {
		t.Fatalf("parse = %d %q %v", id, st, ok)
	}
	for _, s := range []string{
		"runyard.evt.default.block_run.bench_noop.42.completed",
		"runyard.evt.default.run.bench_noop.x.completed",
		"runyard.evt.default.run.bench_noop.42",
		"other.evt.default.run.p.1.completed",
	} {
		if _, _, ok := parseRunEventSubject(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

func TestTrackerWaitAndCounts(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	at := time.Unix(100, 0)
	tr.observe(1, "running", at)
	tr.observe(1, "completed", at)
	tr.observe(1, "completed", at.Add(time.Second)) // a republished event counts once
	tr.observe(2, "failed", at)
	if tr.completed.Load() != 1 || tr.failed.Load() != 1 || tr.finished() != 2 {
		t.Fatalf("counts: completed %d failed %d", tr.completed.Load(), tr.failed.Load())
	}
	// Already finished: returns at once with the first terminal time.
	got, err := tr.wait(context.Background(), 1)
	if err != nil || !got.At.Equal(at) || got.Status != "completed" {
		t.Fatalf("wait(1) = %+v, %v", got, err)
	}
	// Finished while waiting.
	done := make(chan terminalRun)
	registered := make(chan struct{})
	go func() {
		for {
			tr.mu.Lock()
			_, ok := tr.waiters[3]
			tr.mu.Unlock()
			if ok {
				close(registered)
				return
			}
		}
	}()
	go func() {
		r, _ := tr.wait(context.Background(), 3)
		done <- r
	}()
	<-registered
	tr.observe(3, "cancelled", at)
	if r := <-done; r.Status != "cancelled" {
		t.Fatalf("wait(3) = %+v", r)
	}
	// Never finishes: the context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.wait(ctx, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled context = %v", err)
	}
	if n, ok := tr.waitFinished(context.Background(), 3, time.Second); !ok || n != 3 {
		t.Fatalf("waitFinished = %d, %v", n, ok)
	}
	if n, ok := tr.waitFinished(ctx, 10, time.Minute); ok || n != 3 {
		t.Fatalf("waitFinished on a cancelled context = %d, %v", n, ok)
	}
}
