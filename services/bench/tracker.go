package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// tracker follows a pipeline's runs through Runyard's event stream: it records when each run
// reached a terminal status and counts completed block runs. It reads only subjects
// (runyard.evt.<space>.run.<pipeline>.<run id>.<status>), never payloads, so it keeps up with
// any rate the server publishes at.
type tracker struct {
	subs []*nats.Subscription

	mu       sync.Mutex
	terminal map[int64]terminalRun
	waiters  map[int64]chan struct{}

	completed       atomic.Int64 // distinct runs that ended completed
	failed          atomic.Int64 // distinct runs that ended failed or cancelled
	blocksCompleted atomic.Int64 // block-run completed events (a republished event counts again)
	dropped         atomic.Int64 // events the client dropped as a slow consumer
}

type terminalRun struct {
	At     time.Time
	Status string
}

func newTracker() *tracker {
	return &tracker{terminal: map[int64]terminalRun{}, waiters: map[int64]chan struct{}{}}
}

// runEventSubject is the subject of every status event of pipeline's runs in space.
func runEventSubject(space, pipeline string) string {
	return fmt.Sprintf("runyard.evt.%s.run.%s.*.*", space, pipeline)
}

// subscribe starts following pipeline's runs on nc and waits until the server has the
// subscriptions in place.
func (t *tracker) subscribe(nc *nats.Conn, space, pipeline string) error {
	runSub, err := nc.Subscribe(runEventSubject(space, pipeline), func(m *nats.Msg) {
		id, status, ok := parseRunEventSubject(m.Subject)
		if ok {
			t.observe(id, status, time.Now())
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to run events: %w", err)
	}
	blockSub, err := nc.Subscribe(fmt.Sprintf("runyard.evt.%s.block_run.%s.*.completed", space, pipeline), func(*nats.Msg) {
		t.blocksCompleted.Add(1)
	})
	if err != nil {
		_ = runSub.Unsubscribe()
		return fmt.Errorf("subscribe to block-run events: %w", err)
	}
	t.subs = []*nats.Subscription{runSub, blockSub}
	for _, s := range t.subs {
		// Generous client-side buffers: a burst of events must not be dropped.
		if err := s.SetPendingLimits(1<<20, 256<<20); err != nil {
			return fmt.Errorf("event subscription limits: %w", err)
		}
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("subscribe to events: %w", err)
	}
	return nil
}

func (t *tracker) unsubscribe() {
	for _, s := range t.subs {
		if d, err := s.Dropped(); err == nil && d > 0 {
			t.dropped.Add(int64(d))
		}
		_ = s.Unsubscribe()
	}
	t.subs = nil
}

// droppedEvents is how many events were lost to the client's buffers so far.
func (t *tracker) droppedEvents() int64 {
	n := t.dropped.Load()
	for _, s := range t.subs {
		if d, err := s.Dropped(); err == nil {
			n += int64(d)
		}
	}
	return n
}

// parseRunEventSubject extracts the run id and status from
// runyard.evt.<space>.run.<pipeline>.<run id>.<status>.
func parseRunEventSubject(subject string) (int64, string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 7 || parts[0] != "runyard" || parts[1] != "evt" || parts[3] != "run" {
		return 0, "", false
	}
	id, err := strconv.ParseInt(parts[5], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return id, parts[6], true
}

func terminalStatus(s string) bool { return s == "completed" || s == "failed" || s == "cancelled" }

// observe records a run's status event; the first terminal status of a run counts.
func (t *tracker) observe(id int64, status string, at time.Time) {
	if !terminalStatus(status) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.terminal[id]; seen {
		return
	}
	t.terminal[id] = terminalRun{At: at, Status: status}
	if status == "completed" {
		t.completed.Add(1)
	} else {
		t.failed.Add(1)
	}
	if ch, ok := t.waiters[id]; ok {
		close(ch)
		delete(t.waiters, id)
	}
}

// finished is how many distinct runs have reached a terminal status.
func (t *tracker) finished() int64 { return t.completed.Load() + t.failed.Load() }

// wait blocks until run id reaches a terminal status (which may have happened already) or ctx
// ends.
func (t *tracker) wait(ctx context.Context, id int64) (terminalRun, error) {
	t.mu.Lock()
	if tr, ok := t.terminal[id]; ok {
		t.mu.Unlock()
		return tr, nil
	}
	ch, ok := t.waiters[id]
	if !ok {
		ch = make(chan struct{})
		t.waiters[id] = ch
	}
	t.mu.Unlock()
	select {
	case <-ch:
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.terminal[id], nil
	case <-ctx.Done():
		t.mu.Lock()
		if t.waiters[id] == ch {
			delete(t.waiters, id)
		}
		t.mu.Unlock()
		return terminalRun{}, fmt.Errorf("run %d: no terminal event: %w", id, context.Cause(ctx))
	}
}

// waitFinished waits until at least n runs have finished, checking every 20 ms, for at most
// limit. It returns how many had finished.
func (t *tracker) waitFinished(ctx context.Context, n int64, limit time.Duration) (int64, bool) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		got := t.finished()
		if got >= n {
			return got, true
		}
		if time.Now().After(deadline) {
			return got, false
		}
		select {
		case <-ctx.Done():
			return t.finished(), false
		case <-tick.C:
		}
	}
}
