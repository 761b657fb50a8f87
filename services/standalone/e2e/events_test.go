package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/client"
	"github.com/runyard/runyard/libs/config"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/services/standalone/system"
)

// sseMsg is one Server-Sent Events message as a test reads it.
type sseMsg struct {
	ID, Event, Data string
	At              time.Time
}

// sseConn is an open event stream; its messages arrive on msgs, which closes when the
// stream ends.
type sseConn struct {
	res  *http.Response
	msgs chan sseMsg
}

// openEvents opens GET .../orchestration/events on base with key and extra headers (pairs).
func openEvents(t *testing.T, base, key, space, query string, headers ...string) *sseConn {
	t.Helper()
	u := base + "/api/v1.0/spaces/" + space + "/orchestration/events"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("events: status %d: %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("events: content type %q", ct)
	}
	c := &sseConn{res: res, msgs: make(chan sseMsg, 100000)}
	go readSSE(res.Body, c.msgs)
	t.Cleanup(c.close)
	return c
}

func (c *sseConn) close() { c.res.Body.Close() }

func readSSE(r io.Reader, out chan<- sseMsg) {
	defer close(out)
	br := bufio.NewReader(r)
	var m sseMsg
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			if m.ID != "" || m.Event != "" || len(data) > 0 {
				m.Data, m.At = strings.Join(data, "\n"), time.Now()
				out <- m
			}
			m, data = sseMsg{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.ID = value
		case "event":
			m.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

// events reads typed events (skipping id-only messages) until stop says it has enough or
// the deadline passes; ended reports whether the stream closed.
func (c *sseConn) events(t *testing.T, within time.Duration, stop func([]sseMsg) bool) (got []sseMsg, ended bool) {
	t.Helper()
	deadline := time.After(within)
	for !stop(got) {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return got, true
			}
			if m.Event != "" {
				got = append(got, m)
			}
		case <-deadline:
			t.Fatalf("after %s: %d events, condition not met; last %v", within, len(got), lastOf(got))
		}
	}
	return got, false
}

func lastOf(ms []sseMsg) any {
	if len(ms) == 0 {
		return nil
	}
	return ms[len(ms)-1]
}

func seqOf(t *testing.T, m sseMsg) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		t.Fatalf("event id %q is not a stream sequence", m.ID)
	}
	return n
}

func payload(t *testing.T, m sseMsg) event.Event {
	t.Helper()
	var ev event.Event
	if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
		t.Fatalf("event data %q: %v", m.Data, err)
	}
	if ev.Type != m.Event {
		t.Fatalf("event: %s with payload type %s", m.Event, ev.Type)
	}
	return ev
}

// streamSeqs reads the event stream straight from JetStream: the sequence of every event
// on subjects matching filter.
func streamSeqs(t *testing.T, natsURL, filter string) []uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, natsbus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			return seqs
		}
		if err != nil {
			t.Fatal(err)
		}
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, meta.Sequence.Stream)
		if meta.NumPending == 0 {
			return seqs
		}
	}
}

// gatewayProc is a gateway-only process beside a test's system, sharing its NATS server
// and store, that a test can stop and start again.
type gatewayProc struct {
	sys  *system.System
	base string
}

func (e *env) startGateway(extra map[string]string) *gatewayProc {
	e.t.Helper()
	vars := map[string]string{}
	for k, v := range e.vars {
		vars[k] = v
	}
	vars["RUNYARD_HTTP_ADDR"] = "127.0.0.1:0"
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := config.Load(config.ModeGateway, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, config.ModeGateway, cfg, zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel), io.Discard)
	if err != nil {
		e.t.Fatal(err)
	}
	g := &gatewayProc{sys: sys, base: "http://" + sys.HTTPAddr().String()}
	e.t.Cleanup(g.stop)
	return g
}

func (g *gatewayProc) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g.sys.Stop(ctx)
}

// resourceKey names the resource an event is about, for per-resource ordering checks.
func resourceKey(ev event.Event) string {
	switch {
	case ev.BlockRun != nil:
		return fmt.Sprintf("block_run-%d", ev.BlockRun.ID)
	case ev.PipelineRun != nil:
		return fmt.Sprintf("pipeline_run-%d", ev.PipelineRun.ID)
	}
	return ev.ID
}

// checkOrdered fails unless the events come in stream order, each resource's sequence
// rises, and every run's first and last events are its creation and its terminal status.
func checkOrdered(t *testing.T, msgs []sseMsg) {
	t.Helper()
	var prev uint64
	last := map[string]int64{}
	seen := map[string]bool{}
	for _, m := range msgs {
		seq := seqOf(t, m)
		if seq <= prev {
			t.Fatalf("event %d after %d: out of order or repeated", seq, prev)
		}
		prev = seq
		ev := payload(t, m)
		k := resourceKey(ev)
		if seen[k] && ev.Sequence <= last[k] {
			t.Fatalf("%s: run sequence %d after %d", k, ev.Sequence, last[k])
		}
		last[k], seen[k] = ev.Sequence, true
	}
}

func TestEventsResumeAcrossGatewayRestart(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	gw := e.startGateway(nil)
	id, token := e.pipelineWithSchedule("relay",
		block("a", noop), block("b", noop, "a"), block("c", noop, "b"))

	first := openEvents(t, gw.base, adminKey, "default", "")
	var runIDs []int64
	for range 3 {
		r := e.must(200, e.trigger(id, token, map[string]any{"pipeline_run": map[string]any{}}))
		runIDs = append(runIDs, num(obj(r.Body, "pipeline_run"), "id"))
	}
	got, _ := first.events(t, 30*time.Second, func(ms []sseMsg) bool { return len(ms) >= 10 })
	for _, rid := range runIDs {
		e.waitRun(rid)
	}
	// The gateway goes away while events keep coming: the stream ends cleanly.
	gw.stop()
	rest, ended := first.events(t, 30*time.Second, func([]sseMsg) bool { return false })
	if !ended {
		t.Fatal("the stream did not end when its gateway stopped")
	}
	got = append(got, rest...)
	resumeFrom := got[len(got)-1].ID
	for range 3 {
		r := e.must(200, e.trigger(id, token, map[string]any{"pipeline_run": map[string]any{}}))
		runIDs = append(runIDs, num(obj(r.Body, "pipeline_run"), "id"))
	}
	for _, rid := range runIDs {
		e.waitRun(rid)
	}
	want := streamSeqs(t, e.natsURL, natsbus.SpaceEventsFilter("default"))

	// A new gateway process; the client resumes with the last id it got.
	gw = e.startGateway(nil)
	second := openEvents(t, gw.base, adminKey, "default", "", "Last-Event-ID", resumeFrom)
	more, _ := second.events(t, 30*time.Second, func(ms []sseMsg) bool {
		return len(ms) > 0 && seqOf(t, ms[len(ms)-1]) >= want[len(want)-1]
	})
	all := append(got, more...)
	checkOrdered(t, all)
	var seqs []uint64
	for _, m := range all {
		seqs = append(seqs, seqOf(t, m))
	}
	// The first stream started at the events of the first trigger, so compare from there.
	from := sort.Search(len(want), func(i int) bool { return want[i] >= seqs[0] })
	if !slices.Equal(seqs, want[from:]) {
		t.Fatalf("stream ids across the restart:\n got %v\nwant %v", seqs, want[from:])
	}
	// Every run's whole life is there, in order.
	terminal := map[int64]bool{}
	for _, m := range all {
		if ev := payload(t, m); ev.Type == event.TypePipelineRunStatusChanged && ev.PipelineRun.Status.Terminal() {
			terminal[ev.PipelineRun.ID] = true
		}
	}
	for _, rid := range runIDs {
		if !terminal[rid] {
			t.Errorf("run %d: no terminal event through the restart", rid)
		}
	}
}

func TestEventsSlowClientIsCutOffWithoutDelayingOthers(t *testing.T) {
	t.Parallel()
	e := start(t, nil) // the default buffer of 1024 events

	// The slow client asks for the stream and then reads nothing.
	addr := strings.TrimPrefix(e.base, "http://")
	// Its receive buffer is made small before connecting (shrinking it afterwards can leave
	// the window closed for good once the scale is agreed), so the server's writes stall
	// after a few megabytes.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /api/v1.0/spaces/default/orchestration/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, adminKey)

	fast := openEvents(t, e.base, adminKey, "default", "")
	// The slow client's registration is in place once the fast one's is (the gateway
	// registers before answering), provided its request was handled first: wait for it.
	var sawHeaders sync.WaitGroup
	sawHeaders.Add(1)
	slowReader := bufio.NewReader(slow)
	go func() {
		defer sawHeaders.Done()
		_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := slowReader.ReadString('\n')
			if err != nil || line == "\r\n" {
				return
			}
		}
	}()
	sawHeaders.Wait()
	_ = slow.SetReadDeadline(time.Time{})

	// Events are published straight to the stream, large enough to fill the socket buffers
	// of a client that reads nothing.
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	pad := strings.Repeat("x", 4000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	published := make([]time.Time, n)
	for i := range n {
		r := &run.PipelineRun{ID: int64(i + 1), Space: "default", PipelineUUID: "load", Status: run.StatusRunning, Note: pad}
		ev := event.PipelineRunStatusChanged(r)
		data, _ := json.Marshal(ev)
		published[i] = time.Now()
		if _, err := js.Publish(ctx, natsbus.RunEventSubject("default", "load", r.ID, r.Status), data, jetstream.WithMsgID(ev.ID)); err != nil {
			t.Fatal(err)
		}
	}
	done := time.Now()
	t.Logf("published %d events in %s", n, done.Sub(published[0]).Round(time.Millisecond))
	got, _ := fast.events(t, 60*time.Second, func(ms []sseMsg) bool { return len(ms) >= n })
	lat := make([]time.Duration, n)
	for i, m := range got {
		if m.Event == "overflow" {
			t.Fatal("the fast client was cut off")
		}
		if ev := payload(t, m); ev.PipelineRun.ID != int64(i+1) {
			t.Fatalf("fast client: event %d is run %d", i, ev.PipelineRun.ID)
		}
		lat[i] = m.At.Sub(published[i])
	}
	slices.Sort(lat)
	t.Logf("fast client beside a stalled one: %d events of 4 KB in %s after the last publish; publish→SSE latency p50 %s p99 %s max %s",
		n, got[n-1].At.Sub(done).Round(time.Millisecond), lat[n/2], lat[n*99/100], lat[n-1])

	// The slow client now reads: what it was sent, then the overflow event naming the last
	// event it got, then the end of the stream.
	slowMsgs := make(chan sseMsg, n+10)
	go readSSE(newChunkedReader(slowReader), slowMsgs)
	var lastID string
	var overflow *sseMsg
	for m := range slowMsgs {
		if overflow != nil {
			t.Fatalf("message after the overflow event: %+v", m)
		}
		if m.Event == "overflow" {
			overflow = &m
			continue
		}
		if m.ID != "" {
			lastID = m.ID
		}
	}
	if overflow == nil {
		t.Fatalf("the slow client got no overflow event; last id %s", lastID)
	}
	var o struct {
		LastEventID string `json:"last_event_id"`
	}
	if err := json.Unmarshal([]byte(overflow.Data), &o); err != nil || o.LastEventID != lastID || lastID == "" {
		t.Fatalf("overflow data %s, last id read %q", overflow.Data, lastID)
	}
	// It resumes from there and gets the rest.
	resumed := openEvents(t, e.base, adminKey, "default", "", "Last-Event-ID", o.LastEventID)
	rest, _ := resumed.events(t, 30*time.Second, func(ms []sseMsg) bool {
		return len(ms) > 0 && payload(t, ms[len(ms)-1]).PipelineRun.ID == n
	})
	if first := payload(t, rest[0]).PipelineRun.ID; seqOf(t, rest[0]) != mustUint(t, o.LastEventID)+1 || first < 1 {
		t.Fatalf("resumed at %s (run %d) after %s", rest[0].ID, first, o.LastEventID)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newChunkedReader decodes an HTTP/1.1 chunked body read from r.
func newChunkedReader(r *bufio.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			if err != nil || size == 0 {
				pw.Close()
				return
			}
			if _, err := io.CopyN(pw, r, size); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

func TestEventsSpacesFiltersAndValidation(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.newSpace("alpha")
	aliceID, aliceKey := e.newUser("alice")
	_, bobKey := e.newUser("bob")
	e.setRole(adminKey, "alpha", aliceID, "viewer")

	// A non-member gets exactly the answer of a space that does not exist.
	get := func(key, path string, headers ...string) qres {
		t.Helper()
		req, err := http.NewRequest("GET", e.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		out := qres{Status: res.StatusCode, Raw: raw}
		_ = json.Unmarshal(raw, &out.Obj)
		return out
	}
	hidden := get(bobKey, "/api/v1.0/spaces/alpha/orchestration/events")
	missing := get(bobKey, "/api/v1.0/spaces/nowhere/orchestration/events")
	if hidden.Status != 404 || string(hidden.Raw) != strings.Replace(string(missing.Raw), "nowhere", "alpha", 1) {
		t.Fatalf("non-member: %d %s; missing space: %d %s", hidden.Status, hidden.Raw, missing.Status, missing.Raw)
	}

	// Bad parameters are 422s locating the parameter.
	for _, tc := range []struct {
		query   string
		headers []string
		want    string
	}{
		{"run_id=abc", nil, `["query","run_id"]`},
		{"run_id=1,0", nil, `["query","run_id"]`},
		{"type=pipeline_run.status_changed,nope", nil, `["query","type"]`},
		{"pipeline_id=", nil, `["query","pipeline_id"]`},
		{"since=yesterday", nil, `["query","since"]`},
		{"last_event_id=x", nil, `["query","last_event_id"]`},
		{"", []string{"Last-Event-ID", "-1"}, `["header","last-event-id"]`},
	} {
		r := get(aliceKey, "/api/v1.0/spaces/alpha/orchestration/events?"+tc.query, tc.headers...)
		if got := e.locs(r); fmt.Sprint(got) != "["+tc.want+"]" {
			t.Errorf("%q %v: located at %v, want %s", tc.query, tc.headers, got, tc.want)
		}
	}

	// Alice follows alpha; the admin follows default, once filtered by run and type.
	aliceAll := openEvents(t, e.base, aliceKey, "alpha", "")
	adminAll := openEvents(t, e.base, adminKey, "default", "")
	e.must(200, e.call("POST", "/api/pipelines?space=alpha", map[string]any{"pipeline": map[string]any{"uuid": "shared", "blocks": []any{block("a", noop)}}}))
	r := e.must(200, e.call("POST", "/api/pipelines/shared/pipeline_schedules?space=alpha",
		map[string]any{"pipeline_schedule": map[string]any{"name": "alpha api", "schedule_type": "api", "status": "active"}}))
	alphaSched := obj(r.Body, "pipeline_schedule")
	defSched, defToken := e.pipelineWithSchedule("shared", block("a", noop), block("b", noop, "a"))
	other, otherToken := e.pipelineWithSchedule("other", block("a", noop))

	trig := func(id int64, token string) int64 {
		r := e.must(200, e.trigger(id, token, map[string]any{"pipeline_run": map[string]any{}}))
		return num(obj(r.Body, "pipeline_run"), "id")
	}
	defRun := trig(defSched, defToken)
	filtered := openEvents(t, e.base, adminKey, "default", fmt.Sprintf("run_id=%d&type=pipeline_run.status_changed,block_run.status_changed", defRun+100))
	byPipeline := openEvents(t, e.base, adminKey, "default", "pipeline_id=other&type=pipeline_run.status_changed")
	e.waitRun(defRun)
	alphaRun := trig(num(alphaSched, "id"), alphaSched["token"].(string))
	otherRun := trig(other, otherToken)
	defRun2 := trig(defSched, defToken)
	for _, id := range []int64{alphaRun, otherRun, defRun2} {
		e.waitRun(id)
	}
	// A run id that will never exist selects nothing; the run filter is checked below with a
	// stream opened for defRun2 after the fact, resuming from the start of the log.
	isTerminalOf := func(id int64) func([]sseMsg) bool {
		return func(ms []sseMsg) bool {
			for _, m := range ms {
				if ev := payload(t, m); ev.PipelineRun != nil && ev.PipelineRun.ID == id && ev.Type == event.TypePipelineRunStatusChanged && ev.PipelineRun.Status.Terminal() {
					return true
				}
			}
			return false
		}
	}
	alice, _ := aliceAll.events(t, 30*time.Second, isTerminalOf(alphaRun))
	for _, m := range alice {
		if ev := payload(t, m); ev.Space != "alpha" {
			t.Fatalf("alice got an event of space %s: %s", ev.Space, m.Data)
		}
	}
	admin, _ := adminAll.events(t, 30*time.Second, isTerminalOf(defRun2))
	for _, m := range admin {
		if ev := payload(t, m); ev.Space != "default" {
			t.Fatalf("the default stream got an event of space %s", ev.Space)
		}
	}
	checkOrdered(t, admin)
	pipe, _ := byPipeline.events(t, 30*time.Second, isTerminalOf(otherRun))
	for _, m := range pipe {
		if ev := payload(t, m); ev.Type != event.TypePipelineRunStatusChanged || ev.PipelineRun.PipelineUUID != "other" {
			t.Fatalf("pipeline and type filter let through %s", m.Data)
		}
	}
	// The run filter, replaying the log from its start.
	runOnly := openEvents(t, e.base, adminKey, "default", fmt.Sprintf("run_id=%d&type=block_run.status_changed", defRun2), "Last-Event-ID", "0")
	blocks, _ := runOnly.events(t, 30*time.Second, func(ms []sseMsg) bool {
		done := 0
		for _, m := range ms {
			if ev := payload(t, m); ev.BlockRun.Status == run.StatusCompleted {
				done++
			}
		}
		return done == 2
	})
	for _, m := range blocks {
		if ev := payload(t, m); ev.BlockRun == nil || ev.BlockRun.PipelineRunID != defRun2 || ev.RunID != defRun2 {
			t.Fatalf("run filter let through %s", m.Data)
		}
	}
	// The stream for a run that does not exist got nothing but heartbeats and positions.
	for {
		select {
		case m := <-filtered.msgs:
			if m.Event != "" {
				t.Fatalf("a filter matching nothing delivered %+v", m)
			}
			continue
		default:
		}
		break
	}
}

func TestEventsHeartbeat(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"RUNYARD_EVENT_HEARTBEAT": "50ms"})
	res, err := http.NewRequest("GET", e.base+"/api/v1.0/spaces/default/orchestration/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(res)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	beats := 0
	deadline := time.Now().Add(10 * time.Second)
	for beats < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats in 10s", beats)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": heartbeat\n" {
			beats++
		}
	}
}

func TestClientWaitRunAndEvents(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	id, token := e.pipelineWithSchedule("waited", block("a", shell("sleep 0.3")), block("b", noop, "a"))
	c := client.New(e.base, adminKey)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	st, err := c.Events(ctx, "default", client.EventFilter{PipelineIDs: []string{"waited"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.TriggerSchedule(ctx, id, token, map[string]any{"day": "monday"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID < 1 {
		t.Fatalf("triggered run = %+v", r)
	}
	began := time.Now()
	done, err := c.WaitRun(ctx, "default", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.ID != r.ID || done.Status != run.StatusCompleted {
		t.Fatalf("WaitRun = %+v", done)
	}
	t.Logf("WaitRun returned %s after the trigger answered (block a sleeps 300ms)", time.Since(began).Round(time.Millisecond))
	// A finished run is answered from the store.
	again, err := c.WaitRun(ctx, "default", r.ID)
	if err != nil || again.Status != run.StatusCompleted {
		t.Fatalf("WaitRun of a finished run = %+v, %v", again, err)
	}

	// Through the orchestration trigger, with a configuration.
	r2, err := c.TriggerPipeline(ctx, "default", "waited", map[string]any{"day": "tuesday"})
	if err != nil {
		t.Fatal(err)
	}
	done2, err := c.WaitRun(ctx, "default", r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done2.ID != r2.ID || done2.Status != run.StatusCompleted || done2.Variables["day"] != "tuesday" || done2.Space != "default" {
		t.Fatalf("WaitRun after TriggerPipeline = %+v", done2)
	}

	// The stream saw the run's whole life, in order.
	var seen []client.Event
	for ev := range st.C {
		seen = append(seen, ev)
		if pr := ev.Payload.PipelineRun; pr != nil && pr.ID == r.ID && pr.Status.Terminal() {
			break
		}
	}
	if len(seen) < 8 || seen[0].Type != event.TypePipelineRunStatusChanged {
		t.Fatalf("stream saw %d events, first %+v", len(seen), seen[0])
	}
	for i := 1; i < len(seen); i++ {
		if mustUint(t, seen[i].ID) <= mustUint(t, seen[i-1].ID) {
			t.Fatalf("event %s after %s", seen[i].ID, seen[i-1].ID)
		}
	}

	// Errors carry the gateway's status and detail.
	_, err = c.Events(ctx, "default", client.EventFilter{Types: []string{"nope"}}, "")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 422 || !ce.Permanent() {
		t.Fatalf("bad filter: %v", err)
	}
	_, err = client.New(e.base, "wrong-key").WaitRun(ctx, "default", r.ID)
	if !errors.As(err, &ce) || ce.Status != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}
