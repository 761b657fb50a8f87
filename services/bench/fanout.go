package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runyard/runyard/libs/webhook"
)

// The event fan-out scenarios time the way from a run's status change to its subscribers:
// the Server-Sent Events stream of a space read by many clients at once, and a signed
// webhook delivered to a receiver in this process. A delivery's latency runs from the
// event's occurred_at, which is the updated_at the executor stamps on the run just before
// its conditional store write, to the moment the client has read the whole message: it
// includes the write's commit, the JetStream publish and the relay.

// statusLog collects the pipeline_run.status_changed events of a space from core NATS while
// a scenario's window is open: the events every subscriber must receive.
type statusLog struct {
	sub *nats.Subscription

	mu      sync.Mutex
	stamps  map[string]stamp // by event id
	publish []time.Duration  // occurred_at → received here
	bad     int
}

// stamp is when an event's change was written and when the tool's subscription got it.
type stamp struct {
	occurred time.Time
	nats     time.Time
}

func watchStatusEvents(nc *nats.Conn, space string) (*statusLog, error) {
	l := &statusLog{stamps: map[string]stamp{}}
	sub, err := nc.Subscribe(fmt.Sprintf("runyard.evt.%s.run.*.*.*", space), func(m *nats.Msg) {
		at := time.Now()
		if strings.HasSuffix(m.Subject, ".sla_missed") {
			return
		}
		id, occurred, ok := eventStamp(m.Data)
		l.mu.Lock()
		defer l.mu.Unlock()
		if !ok {
			l.bad++
			return
		}
		if _, seen := l.stamps[id]; seen {
			return // published again (a retried publish): one event
		}
		l.stamps[id] = stamp{occurred: occurred, nats: at}
		l.publish = append(l.publish, at.Sub(occurred))
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to run events: %w", err)
	}
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("run event subscription limits: %w", err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to run events: %w", err)
	}
	l.sub = sub
	return l, nil
}

// settle waits until the subscription has handled every message the server sent it so far:
// once the tracker has seen the last run finish, the log has its events too (one connection
// delivers in order), but perhaps not yet handled.
func (l *statusLog) settle(nc *nats.Conn) {
	_ = nc.FlushTimeout(5 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	prev := -1
	for time.Now().Before(deadline) {
		msgs, _, _ := l.sub.Pending()
		l.mu.Lock()
		n := len(l.stamps) + l.bad
		l.mu.Unlock()
		if msgs == 0 && n == prev {
			return
		}
		prev = n
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshot returns the events seen so far.
func (l *statusLog) snapshot() map[string]stamp {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]stamp, len(l.stamps))
	for k, v := range l.stamps {
		out[k] = v
	}
	return out
}

// stop ends the log. An error means the log itself missed events (the subscription dropped
// some, or payloads could not be read), so losses counted against it are not the server's.
func (l *statusLog) stop() error {
	dropped, _ := l.sub.Dropped()
	_ = l.sub.Unsubscribe()
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if dropped > 0 {
		errs = append(errs, fmt.Errorf("the tool's NATS subscription dropped %d events", dropped))
	}
	if l.bad > 0 {
		errs = append(errs, fmt.Errorf("%d event payloads without a readable id and occurred_at", l.bad))
	}
	return errors.Join(errs...)
}

func (l *statusLog) publishLatency() latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	return summarize(l.publish)
}

// fireAt triggers runs open-loop at rate for window, at most 64 in flight, and waits for the
// answers. It returns the accepted triggers.
func (b *bench) fireAt(ctx context.Context, rate float64, window time.Duration) (accepted, failed int64, firstErr string) {
	var (
		wg         sync.WaitGroup
		acc, fails atomic.Int64
		mu         sync.Mutex
	)
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var sent int64
	t0 := time.Now()
	for ctx.Err() == nil && b.running() {
		elapsed := time.Since(t0)
		for due := dueArrivals(rate, elapsed, window); sent < due; sent++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				_, tr, err := b.fire(ctx)
				if err == nil && tr.Status != http.StatusOK {
					err = fmt.Errorf("trigger: HTTP %d", tr.Status)
				}
				if err != nil {
					fails.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					return
				}
				acc.Add(1)
			}()
		}
		if elapsed >= window {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	wg.Wait()
	return acc.Load(), fails.Load(), firstErr
}

// fanClient is one SSE subscriber.
type fanClient struct {
	cancel context.CancelFunc
	done   chan struct{}
	status atomic.Int64 // status events received so far

	// Owned by the reading goroutine until done closes.
	recv      []fanRecv
	other     int64 // events of other types
	overflows int
	malformed int
	err       error
}

type fanRecv struct {
	id string
	at time.Time
}

// connectFanClient opens the stream and returns once the server's ": connected" comment has
// arrived: from then on the client is registered and misses nothing published.
func connectFanClient(ctx context.Context, hc *http.Client, streamURL, key string) (*fanClient, error) {
	cctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, streamURL, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	res, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		body := readLimited(res, 4096)
		cancel()
		return nil, fmt.Errorf("events: HTTP %d: %s", res.StatusCode, truncate(strings.TrimSpace(string(body)), 200))
	}
	rd := newSSEReader(res.Body)
	// The first message is the server's greeting; a stream that sends nothing is cut off.
	timer := time.AfterFunc(30*time.Second, cancel)
	m, err := rd.next()
	stopped := timer.Stop()
	if err != nil || m.Comment != "connected" {
		cancel()
		res.Body.Close()
		if err == nil {
			err = fmt.Errorf("first message %+v is not the connected comment", *m)
		} else if !stopped {
			err = fmt.Errorf("no greeting within 30 s: %w", err)
		}
		return nil, err
	}
	c := &fanClient{cancel: cancel, done: make(chan struct{})}
	go c.read(cctx, rd, res.Body)
	return c, nil
}

func (c *fanClient) read(ctx context.Context, rd *sseReader, body io.Closer) {
	defer close(c.done)
	defer body.Close()
	for {
		m, err := rd.next()
		if err != nil {
			if ctx.Err() == nil {
				c.err = err
			}
			return
		}
		switch m.Event {
		case "":
		case statusChanged:
			at := time.Now()
			id, ok := jsonStringField(m.Data, "id")
			if !ok {
				c.malformed++
				continue
			}
			c.recv = append(c.recv, fanRecv{id: id, at: at})
			c.status.Add(1)
		case "overflow":
			c.overflows++
		default:
			c.other++
		}
	}
}

func (c *fanClient) close() {
	c.cancel()
	<-c.done
}

// fanoutResult is the SSE fan-out scenario's outcome.
type fanoutResult struct {
	Clients     int     `json:"clients"`
	Connected   int     `json:"connected"`
	ConnectTime string  `json:"connect_time"`
	TypeFilter  string  `json:"type_filter,omitempty"`
	Rate        float64 `json:"runs_per_sec"`
	Window      string  `json:"window"`
	Runs        int64   `json:"runs"`
	// Events is how many pipeline_run.status_changed events were published in the window;
	// every connected client must receive each of them once.
	Events     int     `json:"events"`
	Pairs      int     `json:"pairs_measured"`
	Latency    latency `json:"delivery_latency"` // occurred_at → read by a client
	Publish    latency `json:"publish_latency"`  // occurred_at → this tool's core-NATS subscription
	Relay      latency `json:"relay_latency"`    // the tool's NATS receipt → read by a client
	Lost       int64   `json:"lost"`             // (client, event) pairs never received
	Duplicated int64   `json:"duplicated"`       // pairs received more than once
	Other      int64   `json:"other_events"`     // events of other types, all clients
	Overflows  int     `json:"overflows"`        // streams the server cut off as too slow
	ClientErrs int     `json:"client_errors"`    // streams that ended before the tool closed them
	FirstError string  `json:"first_error,omitempty"`
	FDLimit    uint64  `json:"fd_soft_limit"`
	// Server RSS before the clients connected, once they had, and the peak during the window.
	RSSBefore    int64 `json:"rss_before_bytes"`
	RSSConnected int64 `json:"rss_connected_bytes"`
	// WritesPerPair is runyard's write system calls over the window and the drain per
	// (client, event) pair of every type: below 1 when the relay batches events.
	WritesPerPair float64 `json:"writes_per_client_event,omitempty"`
	// CPUPerKPairs is runyard's CPU time over the window and the drain per 1,000 (client,
	// event) pairs of every type, in ms: the relay's cost, steadier than the latencies when
	// other processes share the machine.
	CPUPerKPairs float64 `json:"cpu_ms_per_1000_deliveries,omitempty"`
	Usage        usage   `json:"usage"`        // runyard over the window and the drain
	ClientUsage  usage   `json:"client_usage"` // this tool: the clients and the triggers
}

// sseFanout connects the clients to the default space's stream, triggers runs at rate for
// window and checks that every client gets every status event.
func (b *bench) sseFanout(ctx context.Context, nc *nats.Conn, clients int, rate float64, window time.Duration, types string) (fanoutResult, error) {
	res := fanoutResult{Clients: clients, TypeFilter: types, Rate: rate, Window: window.String()}
	soft, err := raiseFDLimit()
	res.FDLimit = soft
	if err != nil {
		return res, err
	}
	// Each client is one descriptor here and one in the server; the rest is headroom for the
	// API client, NATS and the runtime.
	if need := uint64(clients) + 256; soft != 0 && soft < need {
		return res, fmt.Errorf("open-file limit %d is below the %d that %d clients need: raise the hard limit (ulimit -Hn) or lower --sse-clients", soft, need, clients)
	}
	res.RSSBefore, _ = readRSS(b.pid())

	streamURL := b.srv.base + "/api/v1.0/spaces/default/orchestration/events"
	if types != "" {
		streamURL += "?type=" + url.QueryEscape(types)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   -1, // a closed stream's connection is not kept
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr} // no overall timeout: the streams stay open

	t0 := time.Now()
	conns := make([]*fanClient, clients)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		connErr error
		nErr    int
	)
	sem := make(chan struct{}, 32)
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := connectFanClient(ctx, hc, streamURL, benchAdminKey)
			if err != nil {
				mu.Lock()
				nErr++
				if connErr == nil {
					connErr = err
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	res.ConnectTime = time.Since(t0).Round(time.Millisecond).String()
	live := conns[:0]
	for _, c := range conns {
		if c != nil {
			live = append(live, c)
		}
	}
	res.Connected = len(live)
	defer func() {
		for _, c := range live {
			c.close()
		}
	}()
	if nErr > 0 {
		res.FirstError = fmt.Sprintf("%d of %d clients could not connect; first: %v", nErr, clients, connErr)
		if len(live) == 0 {
			return res, errors.New(res.FirstError)
		}
	}
	b.log.printf("  %d clients connected in %s", len(live), res.ConnectTime)
	res.RSSConnected, _ = readRSS(b.pid())

	slog, err := watchStatusEvents(nc, "default")
	if err != nil {
		return res, err
	}
	smp := startSampler(ctx, b.pid(), 250*time.Millisecond)
	self := startSampler(ctx, os.Getpid(), time.Second)
	w0, werr := readWriteSyscalls(b.pid())
	tw := time.Now()
	accepted, failed, firstErr := b.fireAt(ctx, rate, window)
	res.Runs = accepted
	if failed > 0 && res.FirstError == "" {
		res.FirstError = fmt.Sprintf("%d triggers failed; first: %s", failed, firstErr)
	}
	drainErr := b.drain(ctx, time.Minute)
	slog.settle(nc)
	expected := slog.snapshot()
	res.Events = len(expected)
	// Every client has had the last event's message written to it by the time the runs have
	// drained, give or take the relay: wait until each has as many as were published.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := 0
		for _, c := range live {
			if c.status.Load() < int64(len(expected)) {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w1, werr1 := readWriteSyscalls(b.pid())
	wall := time.Since(tw)
	res.Usage, _ = smp.stop()
	res.ClientUsage, _ = self.stop()
	logErr := slog.stop()
	res.Publish = slog.publishLatency()
	for _, c := range live {
		c.close()
	}
	pairs := make([]time.Duration, 0, len(live)*len(expected))
	relay := make([]time.Duration, 0, len(live)*len(expected))
	for _, c := range live {
		got := make(map[string]bool, len(c.recv))
		for _, r := range c.recv {
			st, ok := expected[r.id]
			if !ok {
				continue // published before the window opened
			}
			if got[r.id] {
				res.Duplicated++
				continue
			}
			got[r.id] = true
			pairs = append(pairs, r.at.Sub(st.occurred))
			relay = append(relay, r.at.Sub(st.nats))
		}
		res.Lost += int64(len(expected) - len(got))
		res.Other += c.other
		res.Overflows += c.overflows
		if c.err != nil {
			res.ClientErrs++
			if res.FirstError == "" {
				res.FirstError = "stream ended early: " + c.err.Error()
			}
		}
		if c.malformed > 0 && res.FirstError == "" {
			res.FirstError = fmt.Sprintf("%d status events without an id", c.malformed)
		}
	}
	live = nil
	res.Pairs = len(pairs)
	if all := int64(res.Pairs) + res.Other; werr == nil && werr1 == nil && all > 0 {
		res.WritesPerPair = float64(w1-w0) / float64(all)
	}
	if all := int64(res.Pairs) + res.Other; all > 0 {
		res.CPUPerKPairs = res.Usage.CPUPercent / 100 * float64(wall.Milliseconds()) * 1000 / float64(all)
	}
	res.Latency = summarize(pairs)
	res.Relay = summarize(relay)
	return res, errors.Join(drainErr, logErr)
}

// webhookResult is the webhook delivery scenario's outcome.
type webhookResult struct {
	Rate       float64 `json:"runs_per_sec"`
	Window     string  `json:"window"`
	Runs       int64   `json:"runs"`
	Events     int     `json:"events"`           // status events published in the window
	Received   int     `json:"received"`         // distinct ones delivered
	Latency    latency `json:"delivery_latency"` // occurred_at → request read by the receiver
	Publish    latency `json:"publish_latency"`
	Lost       int     `json:"lost"`
	Duplicated int     `json:"duplicated"`
	BadSig     int     `json:"bad_signatures"`
	FirstError string  `json:"first_error,omitempty"`
	Usage      usage   `json:"usage"`
}

// hookSink is the webhook receiver: it verifies each request's signature as docs/events.md
// tells receivers to, and records when each event arrived.
type hookSink struct {
	mu       sync.Mutex
	secret   string
	arrivals map[string][]time.Time // event id → receipt times
	bad      int
	firstBad string
	total    atomic.Int64
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	at := time.Now()
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhook.Verify(h.secret, r.Header.Get("X-Runyard-Signature"), r.Header.Get("X-Runyard-Timestamp"), body, at, 5*time.Minute); err != nil {
		h.reject("signature: " + err.Error())
		// Accepted all the same: a refusal would only make the notifier retry.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, ok := jsonStringField(body, "id")
	if !ok {
		h.reject("body without an event id")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if typ := r.Header.Get("X-Runyard-Event"); typ != statusChanged {
		h.reject(fmt.Sprintf("X-Runyard-Event %q, want %s", typ, statusChanged))
	}
	h.arrivals[id] = append(h.arrivals[id], at)
	h.total.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookSink) reject(why string) {
	h.bad++
	if h.firstBad == "" {
		h.firstBad = why
	}
}

// webhookDelivery registers a webhook for the default space's run status events with a
// receiver in this process, triggers runs at rate for window and times each delivery.
func (b *bench) webhookDelivery(ctx context.Context, nc *nats.Conn, rate float64, window time.Duration) (webhookResult, error) {
	res := webhookResult{Rate: rate, Window: window.String()}
	sink := &hookSink{arrivals: map[string][]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("webhook receiver: %w", err)
	}
	hs := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()

	body, err := json.Marshal(map[string]any{
		"url":         "http://" + ln.Addr().String() + "/runyard",
		"event_types": []string{statusChanged},
		"description": "runyard-bench receiver",
	})
	if err != nil {
		return res, fmt.Errorf("encode webhook: %w", err)
	}
	const hooks = "/api/v1.0/spaces/default/webhooks"
	status, answer, err := b.cl.do(ctx, http.MethodPost, hooks, body, true)
	if err != nil {
		return res, err
	}
	if status != http.StatusCreated {
		return res, &httpStatusError{Method: http.MethodPost, Path: hooks, Status: status, Body: string(answer)}
	}
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(answer, &created); err != nil || created.ID == "" || created.Secret == "" {
		return res, fmt.Errorf("POST %s: no id or secret in %s", hooks, truncate(string(answer), 300))
	}
	sink.mu.Lock()
	sink.secret = created.Secret
	sink.mu.Unlock()
	defer func() {
		// Later scenarios should not pay for deliveries.
		_, _, _ = b.cl.do(context.WithoutCancel(ctx), http.MethodDelete, hooks+"/"+created.ID, nil, true)
	}()

	// The notifier caches a space's webhooks for a couple of seconds, so the runs of the
	// moments after the creation may find none: warm-up runs, one every half second, until
	// a delivery shows the webhook is in use.
	warm := time.Now().Add(30 * time.Second)
	for next := time.Now(); sink.total.Load() == 0; {
		if time.Now().After(warm) || ctx.Err() != nil {
			sink.mu.Lock()
			bad, firstBad := sink.bad, sink.firstBad
			sink.mu.Unlock()
			_, log, _ := b.cl.do(context.WithoutCancel(ctx), http.MethodGet, hooks+"/"+created.ID+"/deliveries", nil, true)
			return res, fmt.Errorf("no delivery of the warm-up runs within 30 s (%d refused here, first: %q); delivery log: %s", bad, firstBad, truncate(string(log), 600))
		}
		if !time.Now().Before(next) {
			if _, tr, err := b.fire(ctx); err != nil || tr.Status != http.StatusOK {
				return res, fmt.Errorf("warm-up trigger: HTTP %d, %v", tr.Status, err)
			}
			next = time.Now().Add(500 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.drain(ctx, 30*time.Second); err != nil {
		return res, err
	}

	slog, err := watchStatusEvents(nc, "default")
	if err != nil {
		return res, err
	}
	smp := startSampler(ctx, b.pid(), 250*time.Millisecond)
	accepted, failed, firstErr := b.fireAt(ctx, rate, window)
	res.Runs = accepted
	if failed > 0 {
		res.FirstError = fmt.Sprintf("%d triggers failed; first: %s", failed, firstErr)
	}
	drainErr := b.drain(ctx, time.Minute)
	slog.settle(nc)
	expected := slog.snapshot()
	res.Events = len(expected)
	received := func() int {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		n := 0
		for id := range expected {
			if len(sink.arrivals[id]) > 0 {
				n++
			}
		}
		return n
	}
	// A delivery that failed is retried after 1 s, so give stragglers a few retries' time.
	deadline := time.Now().Add(20 * time.Second)
	for received() < len(expected) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res.Usage, _ = smp.stop()
	logErr := slog.stop()
	res.Publish = slog.publishLatency()

	sink.mu.Lock()
	defer sink.mu.Unlock()
	lats := make([]time.Duration, 0, len(expected))
	for id, st := range expected {
		at := sink.arrivals[id]
		if len(at) == 0 {
			res.Lost++
			continue
		}
		res.Received++
		res.Duplicated += len(at) - 1
		lats = append(lats, at[0].Sub(st.occurred))
	}
	res.Latency = summarize(lats)
	res.BadSig = sink.bad
	if sink.firstBad != "" && res.FirstError == "" {
		res.FirstError = sink.firstBad
	}
	return res, errors.Join(drainErr, logErr)
}
