package notifier_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/sqlitestore"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/testenv"
	"github.com/runyard/runyard/libs/webhook"
	"github.com/runyard/runyard/services/notifier"
)

// world is a bus, a store and the notifiers under test.
type world struct {
	t   *testing.T
	bus *natsbus.Bus
	js  jetstream.JetStream
	st  *sqlitestore.Store
	seq int
	mu  sync.Mutex
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	bus, err := natsbus.Connect(ctx, testenv.NATS(t), "notifier-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	if err := bus.Setup(ctx, natsbus.StreamOptions{Replicas: 1, EventMaxAge: time.Hour, EventMaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return &world{t: t, bus: bus, js: js, st: st}
}

// notifier starts a notifier process on the world's bus and store.
func (w *world) notifier(cfg notifier.Config) {
	w.t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 10 * time.Millisecond
	}
	log := zerolog.New(zerolog.NewTestWriter(w.t)).Level(zerolog.ErrorLevel)
	n := notifier.New(cfg, w.st, w.bus, log)
	if err := n.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
}

// hook stores an active webhook of space to url, as the gateway would.
func (w *world) hook(space, url string, types, pipelines []string) *webhook.Subscription {
	w.t.Helper()
	now := store.Now().Add(-time.Minute)
	s := &webhook.Subscription{ID: webhook.NewID(), Space: space, URL: url, EventTypes: types, PipelineIDs: pipelines,
		Secret: webhook.NewSecret(), Active: true, CreatedAt: now, UpdatedAt: now}
	s.Normalize()
	if err := w.st.CreateWebhook(context.Background(), s); err != nil {
		w.t.Fatal(err)
	}
	return s
}

// publish appends an event to the stream as the executor would, without deduplication, so a
// test can publish the same event twice as JetStream would redeliver it.
func (w *world) publish(space, typ, pipeline, id string) []byte {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"type": typ, "version": 1, "id": id, "occurred_at": time.Now().UTC(), "space": space, "sequence": 1,
		"pipeline_run": map[string]any{"id": 1, "pipeline_uuid": pipeline, "status": "completed"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.js.Publish(ctx, "runyard.evt."+space+".run."+pipeline+".1.completed", body); err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.seq++
	w.mu.Unlock()
	return body
}

// drained waits until the notifiers' consumer has taken and acked everything published.
func (w *world) drained() {
	w.t.Helper()
	w.mu.Lock()
	want := uint64(w.seq)
	w.mu.Unlock()
	poll(w.t, 20*time.Second, "event consumer drained", func() bool {
		c, err := w.js.Consumer(context.Background(), natsbus.StreamEvents, natsbus.DurableNotifierEvents)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= want && info.NumAckPending == 0
	})
}

func (w *world) deliveries(h *webhook.Subscription) []webhook.Delivery {
	w.t.Helper()
	ds, _, err := w.st.ListDeliveries(context.Background(), h.Space, h.ID, store.Page{})
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

// waitDeliveries waits until h has n deliveries, all in status.
func (w *world) waitDeliveries(h *webhook.Subscription, n int, status string, within time.Duration) []webhook.Delivery {
	w.t.Helper()
	var ds []webhook.Delivery
	poll(w.t, within, fmt.Sprintf("%d %s deliveries to %s", n, status, h.ID), func() bool {
		ds = w.deliveries(h)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != status {
				return false
			}
		}
		return true
	})
	return ds
}

func poll(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receiver is a webhook endpoint on loopback that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	// answer decides the status of the n-th request (from 1).
	answer func(n int) int
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, req)
	r.bodies = append(r.bodies, body)
	n := len(r.got)
	r.mu.Unlock()
	status := http.StatusNoContent
	if r.answer != nil {
		status = r.answer(n)
	}
	w.WriteHeader(status)
}

func (r *receiver) requests() ([]*http.Request, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), slices.Clone(r.bodies)
}

// eventIDs are the ids of the events received, sorted.
func (r *receiver) eventIDs() []string {
	_, bodies := r.requests()
	var ids []string
	for _, b := range bodies {
		var ev struct{ ID string }
		_ = json.Unmarshal(b, &ev)
		ids = append(ids, ev.ID)
	}
	sort.Strings(ids)
	return ids
}

var private = netguard.Guard{AllowPrivate: true}

func TestDeliveryIsSignedAsDocumented(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	h := w.hook("a", rcv.URL+"/hook?token=t", nil, nil)
	w.notifier(notifier.Config{Guard: private})
	body := w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")

	ds := w.waitDeliveries(h, 1, webhook.StatusSucceeded, 10*time.Second)
	reqs, bodies := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	req, got := reqs[0], bodies[0]
	if string(got) != string(body) {
		t.Fatalf("body = %s, want the event as published: %s", got, body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "Runyard-Webhook/1",
		"X-Runyard-Event": "pipeline_run.status_changed", "X-Runyard-Delivery": ds[0].ID,
	} {
		if v := req.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if req.Method != http.MethodPost || req.URL.RawQuery != "token=t" {
		t.Errorf("request %s %s", req.Method, req.URL)
	}
	// The recipe of docs/events.md: hex HMAC-SHA256 keyed with the secret over
	// "<timestamp>.<body>", prefixed with v1=.
	ts := req.Header.Get("X-Runyard-Timestamp")
	mac := hmac.New(sha256.New, []byte(h.Secret))
	mac.Write([]byte(ts + "." + string(got)))
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); req.Header.Get("X-Runyard-Signature") != want {
		t.Fatalf("signature %q, want %q", req.Header.Get("X-Runyard-Signature"), want)
	}
	if err := webhook.Verify(h.Secret, req.Header.Get("X-Runyard-Signature"), ts, got, time.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.Attempts != 1 || d.ResponseCode != 204 || d.DeliveredAt == nil || d.EventID != "ev-1" || d.EventType != "pipeline_run.status_changed" || d.LastError != "" {
		t.Fatalf("delivery = %+v", d)
	}
}

func TestRetriesStopOnFirstSuccess(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	h := w.hook("a", rcv.URL, nil, nil)
	w.notifier(notifier.Config{Guard: private})
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")

	// Attempts at 0, 1 s and 3 s: the third succeeds.
	ds := w.waitDeliveries(h, 1, webhook.StatusSucceeded, 15*time.Second)
	if reqs, _ := rcv.requests(); len(reqs) != 3 || ds[0].Attempts != 3 || ds[0].ResponseCode != 200 || ds[0].NextAttemptAt != nil {
		t.Fatalf("%d requests, delivery %+v", len(reqs), ds[0])
	}
	ids := map[string]bool{}
	reqs, _ := rcv.requests()
	for _, r := range reqs {
		ids[r.Header.Get("X-Runyard-Delivery")] = true
	}
	if len(ids) != 1 {
		t.Fatalf("retries carry different delivery ids: %v", ids)
	}
}

func TestGivesUpAfterTheHorizon(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	h := w.hook("a", rcv.URL, nil, nil)
	w.notifier(notifier.Config{Guard: private, RetryHorizon: 2 * time.Second})
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	// Attempts at 0 and 1 s; the next would be at 3 s, past the horizon.
	ds := w.waitDeliveries(h, 1, webhook.StatusFailed, 10*time.Second)
	if ds[0].Attempts != 2 || ds[0].ResponseCode != 500 || !strings.Contains(ds[0].LastError, "500") || ds[0].NextAttemptAt != nil {
		t.Fatalf("delivery = %+v", ds[0])
	}
	if reqs, _ := rcv.requests(); len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
}

// TestReceiverDownThenBack: events published while the receiver refuses connections reach it
// once it listens again, each exactly once, though two notifier processes share the work.
func TestReceiverDownThenBack(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens: connection refused
	h := w.hook("a", "http://"+addr+"/hook", nil, nil)
	down := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	h503 := w.hook("a", down.URL, nil, nil)
	w.notifier(notifier.Config{Guard: private})
	w.notifier(notifier.Config{Guard: private})
	var want []string
	for i := range 5 {
		id := fmt.Sprint("ev-", i)
		want = append(want, id)
		w.publish("a", "block_run.status_changed", "etl", id)
	}
	poll(t, 15*time.Second, "two failed attempts of every delivery", func() bool {
		ds := append(w.deliveries(h), w.deliveries(h503)...)
		if len(ds) != 10 {
			return false
		}
		for _, d := range ds {
			if d.Attempts < 2 || d.Status != webhook.StatusRetrying {
				return false
			}
		}
		return true
	})
	for _, d := range w.deliveries(h) {
		if d.ResponseCode != 0 || !strings.Contains(d.LastError, "refused") {
			t.Fatalf("refused delivery = %+v", d)
		}
	}

	// Back: the endpoint listens again on the same address, the other answers 200.
	var back *receiver
	poll(t, 10*time.Second, "listening again on "+addr, func() bool {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		back = &receiver{}
		back.Server = httptest.NewUnstartedServer(http.HandlerFunc(back.serve))
		_ = back.Listener.Close()
		back.Listener = l
		back.Start()
		t.Cleanup(back.Close)
		return true
	})
	down.mu.Lock()
	failed := len(down.got)
	down.answer = func(n int) int {
		if n <= failed {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	down.mu.Unlock()

	w.waitDeliveries(h, 5, webhook.StatusSucceeded, 30*time.Second)
	w.waitDeliveries(h503, 5, webhook.StatusSucceeded, 30*time.Second)
	if got := back.eventIDs(); !slices.Equal(got, want) {
		t.Fatalf("received %v, want each of %v once", got, want)
	}
	down.mu.Lock()
	var ok []string
	for i, b := range down.bodies {
		if i >= failed {
			var ev struct{ ID string }
			_ = json.Unmarshal(b, &ev)
			ok = append(ok, ev.ID)
		}
	}
	down.mu.Unlock()
	sort.Strings(ok)
	if !slices.Equal(ok, want) {
		t.Fatalf("after 503s, received %v, want each of %v once", ok, want)
	}
}

// TestRedeliveredEventIsNotSentAgain: the same event reaching the notifier twice (as a
// JetStream redelivery or a republish does) is sent once.
func TestRedeliveredEventIsNotSentAgain(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	h := w.hook("a", rcv.URL, nil, nil)
	w.notifier(notifier.Config{Guard: private})
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	w.waitDeliveries(h, 1, webhook.StatusSucceeded, 10*time.Second)
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-2")
	w.drained()
	w.waitDeliveries(h, 2, webhook.StatusSucceeded, 10*time.Second)
	if got := rcv.eventIDs(); !slices.Equal(got, []string{"ev-1", "ev-2"}) {
		t.Fatalf("received %v, want ev-1 and ev-2 once each", got)
	}
}

// TestFiltersAndSpaces: each webhook gets the events of its space that its types and
// pipelines select, and nothing of another space.
func TestFiltersAndSpaces(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	all, blocks, etl, other := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	hAll := w.hook("a", all.URL, nil, nil)
	hBlocks := w.hook("a", blocks.URL, []string{"block_run.status_changed"}, nil)
	hETL := w.hook("a", etl.URL, nil, []string{"etl"})
	hOther := w.hook("b", other.URL, nil, nil)
	inactive := w.hook("a", all.URL, nil, nil)
	if _, err := w.st.UpdateWebhook(context.Background(), "a", inactive.ID, func(s *webhook.Subscription) error { s.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	w.notifier(notifier.Config{Guard: private})
	w.publish("a", "pipeline_run.status_changed", "etl", "a-run-etl")
	w.publish("a", "block_run.status_changed", "sales", "a-block-sales")
	w.publish("a", "block_run.status_changed", "etl", "a-block-etl")
	w.publish("b", "pipeline_run.status_changed", "etl", "b-run-etl")
	w.drained()
	for _, tc := range []struct {
		h    *webhook.Subscription
		r    *receiver
		want []string
	}{
		{hAll, all, []string{"a-block-etl", "a-block-sales", "a-run-etl"}},
		{hBlocks, blocks, []string{"a-block-etl", "a-block-sales"}},
		{hETL, etl, []string{"a-block-etl", "a-run-etl"}},
		{hOther, other, []string{"b-run-etl"}},
	} {
		// Every delivery record exists once the consumer drained; wait for them to be sent.
		w.waitDeliveries(tc.h, len(tc.want), webhook.StatusSucceeded, 10*time.Second)
		if got := tc.r.eventIDs(); !slices.Equal(got, tc.want) {
			t.Errorf("%s received %v, want %v", tc.h.URL, got, tc.want)
		}
	}
	if ds := w.deliveries(inactive); len(ds) != 0 {
		t.Errorf("inactive webhook got deliveries: %+v", ds)
	}
}

// TestRefusedAddresses: loopback is refused unless allowed, metadata and link-local
// addresses always; the receiver is never reached and the delivery fails with the reason.
func TestRefusedAddresses(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rcv.URL, "http://"))
	loop := w.hook("a", rcv.URL, nil, nil)
	named := w.hook("a", "http://localhost:"+port+"/", nil, nil)
	w.notifier(notifier.Config{RetryHorizon: 500 * time.Millisecond})

	lenient := newWorld(t)
	meta := lenient.hook("a", "http://169.254.169.254/latest/meta-data/", nil, nil)
	link := lenient.hook("a", "http://[fe80::1]:"+port+"/", nil, nil)
	lenient.notifier(notifier.Config{Guard: private, RetryHorizon: 500 * time.Millisecond})

	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	lenient.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	for _, c := range []struct {
		w *world
		h *webhook.Subscription
	}{{w, loop}, {w, named}, {lenient, meta}, {lenient, link}} {
		ds := c.w.waitDeliveries(c.h, 1, webhook.StatusFailed, 10*time.Second)
		if !strings.Contains(ds[0].LastError, "refused") || ds[0].ResponseCode != 0 {
			t.Errorf("%s: delivery %+v", c.h.URL, ds[0])
		}
	}
	if reqs, _ := rcv.requests(); len(reqs) != 0 {
		t.Fatalf("the refused receiver got %d requests", len(reqs))
	}
}

// TestSlowEndpointDoesNotBlockOthers: a webhook whose endpoint hangs holds at most its own
// share of the workers; another webhook's deliveries flow meanwhile.
func TestSlowEndpointDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fast := newReceiver(t, nil)
	hSlow := w.hook("a", slow.URL, nil, nil)
	hFast := w.hook("a", fast.URL, nil, nil)
	w.notifier(notifier.Config{Guard: private, Workers: 3, PerWebhook: 2})
	t.Cleanup(func() { close(release) }) // before the notifier stops, so its attempts end
	var want []string
	for i := range 10 {
		id := fmt.Sprint("ev-", i)
		want = append(want, id)
		w.publish("a", "pipeline_run.status_changed", "etl", id)
	}
	w.waitDeliveries(hFast, 10, webhook.StatusSucceeded, 10*time.Second)
	if got := fast.eventIDs(); !slices.Equal(got, want) {
		t.Fatalf("fast receiver got %v", got)
	}
	inflight := 0
	for _, d := range w.deliveries(hSlow) {
		if d.Attempts > 0 {
			inflight++
		}
	}
	if inflight > 2 {
		t.Fatalf("%d attempts to the slow webhook at once, want at most 2", inflight)
	}
}

// TestSealedSecret: a secret stored sealed (AES-256-GCM, bound to the webhook's id) signs
// with its clear value; a notifier without the key fails the delivery instead of signing
// with the sealed text.
func TestSealedSecret(t *testing.T) {
	t.Parallel()
	key := make([]byte, connector.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	box, err := connector.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	h := w.hook("a", rcv.URL, nil, nil)
	const clear = "whsec_sealed-secret-value"
	if _, err := w.st.UpdateWebhook(context.Background(), "a", h.ID, func(s *webhook.Subscription) error { return s.SetSecret(box, clear) }); err != nil {
		t.Fatal(err)
	}
	stored, err := w.st.GetWebhook(context.Background(), "a", h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.SecretSealed || strings.Contains(stored.Secret, clear) {
		t.Fatalf("stored secret %q is not sealed", stored.Secret)
	}
	w.notifier(notifier.Config{Guard: private, Secrets: box})
	w.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	w.waitDeliveries(h, 1, webhook.StatusSucceeded, 10*time.Second)
	reqs, bodies := rcv.requests()
	if err := webhook.Verify(clear, reqs[0].Header.Get("X-Runyard-Signature"), reqs[0].Header.Get("X-Runyard-Timestamp"), bodies[0], time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}

	keyless := newWorld(t)
	h2 := keyless.hook("a", rcv.URL, nil, nil)
	if _, err := keyless.st.UpdateWebhook(context.Background(), "a", h2.ID, func(s *webhook.Subscription) error { return s.SetSecret(box, clear) }); err != nil {
		t.Fatal(err)
	}
	keyless.notifier(notifier.Config{Guard: private, RetryHorizon: 500 * time.Millisecond})
	keyless.publish("a", "pipeline_run.status_changed", "etl", "ev-1")
	ds := keyless.waitDeliveries(h2, 1, webhook.StatusFailed, 10*time.Second)
	if !strings.Contains(ds[0].LastError, "secret") {
		t.Fatalf("delivery = %+v", ds[0])
	}
	if reqs, _ := rcv.requests(); len(reqs) != 1 {
		t.Fatalf("%d requests, want only the first world's", len(reqs))
	}
}
