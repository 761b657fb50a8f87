package syncworker_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/airflow/airflowtest"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/sqlitestore"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/testenv"
	"github.com/runyard/runyard/services/syncworker"
)

const space = "default"

// harness is one sync worker on a real NATS server and SQLite store, and a fake Airflow
// over loopback with a connector pointing at it.
type harness struct {
	t       testing.TB
	ctx     context.Context
	natsURL string
	st      *sqlitestore.Store
	bus     *natsbus.Bus
	ciph    *connector.Cipher
	fake    *airflowtest.Server
	conn    *connector.Connector
	w       *syncworker.Worker
}

type harnessConfig struct {
	fake   airflowtest.Config
	worker syncworker.Config
}

func newHarness(t testing.TB, hc harnessConfig) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, natsURL: testenv.NATS(t)}
	h.bus = h.connect("test")
	st, err := sqlitestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	h.st = st
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if h.ciph, err = connector.NewCipher(key); err != nil {
		t.Fatal(err)
	}
	h.fake = airflowtest.NewServer(hc.fake)
	t.Cleanup(h.fake.Close)
	h.conn = h.addConnector("airflow "+h.fake.APIVersion(), h.fake)
	h.w = h.startWorker(h.bus, hc.worker)
	return h
}

func (h *harness) connect(name string) *natsbus.Bus {
	h.t.Helper()
	bus, err := natsbus.Connect(h.ctx, h.natsURL, name, zerolog.Nop())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(bus.Close)
	if err := bus.Setup(h.ctx, natsbus.StreamOptions{}); err != nil {
		h.t.Fatal(err)
	}
	return bus
}

// addConnector stores a connector to fake, with the credentials its version takes.
func (h *harness) addConnector(name string, fake *airflowtest.Server) *connector.Connector {
	h.t.Helper()
	now := store.Now()
	c := &connector.Connector{
		ID: connector.NewID(), Space: space, Name: name, BaseURL: fake.URL, APIVersion: connector.APIVersionAuto,
		Auth: connector.Auth{Kind: connector.AuthBasic, Username: "admin", Password: "admin"},
		Sync: connector.SyncSettings{IntervalSeconds: 300, LookbackDays: 30}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	if fake.APIVersion() == "v2" {
		c.Auth.Kind = connector.AuthPassword
	}
	c.Normalize()
	if err := c.Validate(true); err != nil {
		h.t.Fatal(err)
	}
	if err := h.ciph.SealAuth(c); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.CreateConnector(h.ctx, c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) startWorker(bus *natsbus.Bus, cfg syncworker.Config) *syncworker.Worker {
	h.t.Helper()
	cfg.Cipher, cfg.AllowPrivate = h.ciph, true
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 2000
	}
	if cfg.BusyRetry == 0 {
		cfg.BusyRetry = 200 * time.Millisecond
	}
	w := syncworker.New(cfg, h.st, bus, zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.WarnLevel))
	if err := w.Start(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return w
}

// sync queues a sync of conn and waits for its job to finish.
func (h *harness) sync(conn *connector.Connector) *connector.SyncJob {
	h.t.Helper()
	j, _, err := command.StartSync(h.ctx, h.st, h.bus, conn, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return h.waitJob(j.ID, 60*time.Second)
}

func (h *harness) waitJob(id string, within time.Duration) *connector.SyncJob {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := h.st.GetSyncJob(h.ctx, space, id)
		if err != nil {
			h.t.Fatal(err)
		}
		if j.Terminal() {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("sync job %s still %s after %s", id, j.Status, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) mustComplete(j *connector.SyncJob) {
	h.t.Helper()
	if j.Status != connector.JobCompleted {
		h.t.Fatalf("sync job %s: %s: %s", j.ID, j.Status, j.Error)
	}
}

// verifier reads the fake as the truth, with a client of its own.
func (h *harness) verifier(fake *airflowtest.Server) *airflow.Client {
	h.t.Helper()
	a := airflow.Auth{Kind: airflow.AuthBasic, Username: "admin", Password: "admin"}
	if fake.APIVersion() == "v2" {
		a.Kind = airflow.AuthPassword
	}
	c, err := airflow.New(airflow.Config{BaseURL: fake.URL, Version: airflow.APIVersion(fake.APIVersion()), Auth: a, RateLimit: 5000})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// canonical is v as JSON with sorted keys, for comparing records.
func canonical(v any) string {
	b, _ := json.Marshal(v)
	var x any
	_ = json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

func ms(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

// assertMirror checks that the store holds exactly what the fake holds for conn: every DAG
// as a pipeline with its fields, every run with its fields, every task instance (mapped ones
// and retries included) as a block run with its fields, and no more.
func (h *harness) assertMirror(conn *connector.Connector, fake *airflowtest.Server) {
	h.t.Helper()
	ctx := h.ctx
	v := h.verifier(fake)
	dags, err := v.ListDAGs(ctx, airflow.DAGFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, d := range dags {
		want := connector.PipelineFromDAG(space, conn.ID, d)
		got, err := h.st.GetPipeline(ctx, space, want.UUID)
		if err != nil {
			h.t.Fatalf("dag %s: %v", d.DAGID, err)
		}
		if got.Name != want.Name || got.State != want.State || got.ProviderID != d.DAGID || got.ScheduleDescription != want.ScheduleDescription ||
			canonical(got.Owners) != canonical(want.Owners) || canonical(got.Tags) != canonical(want.Tags) ||
			canonical(got.ProviderMetadata) != canonical(want.ProviderMetadata) || got.Provider != "airflow" || got.ConnectorID != conn.ID {
			h.t.Fatalf("dag %s mirrored as %+v, want %+v", d.DAGID, got, want)
		}
	}
	runs, err := v.ListDAGRuns(ctx, airflow.AllDAGs, airflow.RunFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	wantDAGs, wantRuns, wantTIs := fake.Counts()
	if len(dags) != wantDAGs || len(runs) != wantRuns {
		h.t.Fatalf("verifier read %d dags, %d runs; the fake holds %d, %d", len(dags), len(runs), wantDAGs, wantRuns)
	}
	tis, mapped, retried := 0, 0, 0
	for _, dr := range runs {
		got, err := h.st.GetRunByCommand(ctx, connector.RunCommandID(conn.ID, dr.DAGID, dr.RunID))
		if err != nil {
			h.t.Fatalf("run %s/%s: %v", dr.DAGID, dr.RunID, err)
		}
		if got.Status != connector.RunStatus(dr.State) || ms(&got.ExecutionDate) != ms(ptr(dr.AnchorDate())) || ms(got.StartedAt) != ms(dr.StartDate) ||
			got.RunType != dr.RunType || got.Metrics["airflow_state"] != dr.State || got.ProviderRunID != dr.RunID || got.Note != dr.Note ||
			canonical(nonEmpty(got.Variables)) != canonical(nonEmpty(dr.Conf)) {
			h.t.Fatalf("run %s/%s mirrored as %+v, want %+v", dr.DAGID, dr.RunID, got, dr)
		}
		if got.Status.Terminal() && ms(got.CompletedAt) != ms(dr.EndDate) {
			h.t.Fatalf("run %s/%s completed_at %s, want %s", dr.DAGID, dr.RunID, ms(got.CompletedAt), ms(dr.EndDate))
		}
		want, err := v.ListTaskInstances(ctx, dr.DAGID, dr.RunID)
		if err != nil {
			h.t.Fatal(err)
		}
		brs, err := h.st.BlockRunsOf(ctx, got.ID)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(brs) != len(want) {
			h.t.Fatalf("run %s/%s: %d block runs, want %d task instances", dr.DAGID, dr.RunID, len(brs), len(want))
		}
		byUUID := map[string]run.BlockRun{}
		for _, br := range brs {
			byUUID[br.BlockUUID] = br
		}
		for _, ti := range want {
			br, ok := byUUID[connector.BlockUUID(ti.TaskID, ti.MapIndex)]
			if !ok || br.Status != connector.TaskStatus(ti.State) || br.TryNumber != ti.TryNumber || br.MapIndex == nil || *br.MapIndex != ti.MapIndex ||
				br.ProviderTaskID != ti.TaskID || br.Metrics["airflow_state"] != ti.State || ms(br.StartedAt) != ms(ti.StartDate) {
				h.t.Fatalf("task %s[%d] of %s/%s mirrored as %+v, want %+v", ti.TaskID, ti.MapIndex, dr.DAGID, dr.RunID, br, ti)
			}
			if br.Status.Terminal() && ms(br.CompletedAt) != ms(ti.EndDate) {
				h.t.Fatalf("task %s[%d] completed_at %s, want %s", ti.TaskID, ti.MapIndex, ms(br.CompletedAt), ms(ti.EndDate))
			}
			if ti.MapIndex >= 0 {
				mapped++
			}
			if ti.TryNumber > 1 {
				retried++
			}
		}
		tis += len(want)
	}
	if tis != wantTIs {
		h.t.Fatalf("verifier read %d task instances; the fake holds %d", tis, wantTIs)
	}
	if mapped == 0 || retried == 0 {
		h.t.Fatalf("the data has %d mapped and %d retried task instances: the check needs both", mapped, retried)
	}
	// No more than the fake holds: every stored run of the connector is one of the fake's.
	stored, total, err := h.st.ListRuns(ctx, store.RunFilter{Space: space}, store.Page{Limit: 100000})
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, r := range stored {
		if r.ConnectorID == conn.ID {
			n++
		}
	}
	if n != len(runs) {
		h.t.Fatalf("the store holds %d runs of the connector (%d in all), the fake %d", n, total, len(runs))
	}
}

func ptr[T any](v T) *T { return &v }

func nonEmpty(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// events subscribes to the space's events on core NATS and collects them.
type events struct {
	mu  sync.Mutex
	got []event.Event
}

func (h *harness) events() *events {
	h.t.Helper()
	nc, err := nats.Connect(h.natsURL)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(nc.Close)
	e := &events{}
	if _, err := nc.Subscribe(natsbus.SpaceEventsFilter(space), func(m *nats.Msg) {
		var ev event.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			e.mu.Lock()
			e.got = append(e.got, ev)
			e.mu.Unlock()
		}
	}); err != nil {
		h.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		h.t.Fatal(err)
	}
	return e
}

// waitFor waits until an event matches, and returns it.
func (e *events) waitFor(t testing.TB, within time.Duration, what string, match func(event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e.mu.Lock()
		for _, ev := range e.got {
			if match(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no event %s within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *events) count(match func(event.Event) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.got {
		if match(ev) {
			n++
		}
	}
	return n
}

func routes(reqs []airflowtest.Request) string {
	m := map[string]int{}
	for _, r := range reqs {
		m[r.Route]++
	}
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
