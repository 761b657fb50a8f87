package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/natsserver"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/sqlitestore"
	"github.com/runyard/runyard/libs/store"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func ptr(t time.Time) *time.Time { return &t }

// TestDueTicks checks the firing rules on their own, without store or bus.
func TestDueTicks(t *testing.T) {
	t.Parallel()
	now := at("2026-01-14T10:00:30Z")
	hourly := func(enabled string, settings map[string]any) *schedule.Schedule {
		return &schedule.Schedule{ScheduleInterval: "@hourly", LastEnabledAt: ptr(at(enabled)), Settings: settings}
	}
	catchUp := map[string]any{SettingCatchUp: true}
	tests := []struct {
		name  string
		sc    *schedule.Schedule
		last  *time.Time
		limit int
		want  string
	}{
		{name: "the tick now is due", sc: hourly("2026-01-01T00:00:00Z", nil), last: ptr(at("2026-01-14T09:00:00Z")),
			want: "[2026-01-14 10:00:00 +0000 UTC]"},
		{name: "nothing after the latest run", sc: hourly("2026-01-01T00:00:00Z", nil), last: ptr(at("2026-01-14T10:00:00Z")),
			want: "[]"},
		{name: "without catch-up only the latest missed tick", sc: hourly("2026-01-01T00:00:00Z", nil), last: ptr(at("2026-01-14T06:00:00Z")),
			want: "[2026-01-14 10:00:00 +0000 UTC]"},
		{name: "catch-up fires every missed tick", sc: hourly("2026-01-01T00:00:00Z", catchUp), last: ptr(at("2026-01-14T06:00:00Z")),
			want: "[2026-01-14 07:00:00 +0000 UTC 2026-01-14 08:00:00 +0000 UTC 2026-01-14 09:00:00 +0000 UTC 2026-01-14 10:00:00 +0000 UTC]"},
		{name: "catch-up is bounded, oldest first", sc: hourly("2026-01-01T00:00:00Z", catchUp), last: ptr(at("2026-01-14T06:00:00Z")), limit: 2,
			want: "[2026-01-14 07:00:00 +0000 UTC 2026-01-14 08:00:00 +0000 UTC]"},
		{name: "no run yet: from when it was enabled", sc: hourly("2026-01-14T08:00:00Z", catchUp),
			want: "[2026-01-14 08:00:00 +0000 UTC 2026-01-14 09:00:00 +0000 UTC 2026-01-14 10:00:00 +0000 UTC]"},
		{name: "a tick before last_enabled_at is not fired", sc: hourly("2026-01-14T10:00:01Z", nil),
			want: "[]"},
		{name: "re-enabled: the disabled stretch is skipped, even catching up", sc: hourly("2026-01-14T09:30:00Z", catchUp), last: ptr(at("2026-01-13T00:00:00Z")),
			want: "[2026-01-14 10:00:00 +0000 UTC]"},
		{name: "create_initial_pipeline_run fires the interval it was enabled in", sc: hourly("2026-01-14T10:00:01Z", map[string]any{SettingCreateInitialRun: true}),
			want: "[2026-01-14 10:00:00 +0000 UTC]"},
		{name: "a start time after enabling wins", sc: &schedule.Schedule{ScheduleInterval: "@hourly", LastEnabledAt: ptr(at("2026-01-14T00:00:00Z")), StartTime: ptr(at("2026-01-14T09:30:00Z")), Settings: catchUp},
			want: "[2026-01-14 10:00:00 +0000 UTC]"},
		{name: "once with no run fires", sc: &schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(at("2026-01-10T00:00:00Z")), LastEnabledAt: ptr(at("2026-01-14T10:00:00Z"))},
			want: "[2026-01-10 00:00:00 +0000 UTC]"},
		{name: "once with a run does not", sc: &schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(at("2026-01-10T00:00:00Z"))}, last: ptr(at("2026-01-10T00:00:00Z")),
			want: "[]"},
		{name: "once before its start time does not", sc: &schedule.Schedule{ScheduleInterval: "@once", StartTime: ptr(at("2026-01-15T00:00:00Z"))},
			want: "[]"},
		{name: "always on is not time-driven", sc: &schedule.Schedule{ScheduleInterval: "@always_on", LastEnabledAt: ptr(at("2026-01-01T00:00:00Z"))},
			want: "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt, err := schedule.NewTimetable(tc.sc)
			if err != nil {
				t.Fatal(err)
			}
			limit := tc.limit
			if limit == 0 {
				limit = 1000
			}
			got := dueTicks(tc.sc, tt, tc.last, now, limit)
			if got == nil {
				got = []time.Time{}
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("due = %v\nwant  %s", got, tc.want)
			}
		})
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// recorder publishes through the real bus and records what was published.
type recorder struct {
	bus *natsbus.Bus
	mu  sync.Mutex
	cmd []command.Envelope
	dup []bool
	evs []recordedEvent
}

type recordedEvent struct {
	subject string
	ev      event.Event
}

func (r *recorder) PublishCommand(ctx context.Context, env command.Envelope) (bool, error) {
	dup, err := r.bus.PublishCommand(ctx, env)
	if err == nil {
		r.mu.Lock()
		r.cmd, r.dup = append(r.cmd, env), append(r.dup, dup)
		r.mu.Unlock()
	}
	return dup, err
}

func (r *recorder) PublishEvent(ctx context.Context, subject string, ev event.Event) error {
	err := r.bus.PublishEvent(ctx, subject, ev)
	if err == nil {
		r.mu.Lock()
		r.evs = append(r.evs, recordedEvent{subject, ev})
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) commands() []command.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]command.Envelope(nil), r.cmd...)
}

func (r *recorder) events() []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedEvent(nil), r.evs...)
}

// world is one test's NATS server, store and clock.
type world struct {
	t     *testing.T
	ctx   context.Context
	url   string
	st    *sqlitestore.Store
	clock *clock
	js    jetstream.JetStream
}

func newWorld(t *testing.T, now time.Time) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	// An embedded server as testenv.NATS starts one, without testenv's MongoDB dependencies
	// in this module.
	ns, err := natsserver.Start(natsserver.Config{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	w := &world{t: t, ctx: ctx, url: ns.URL(), clock: &clock{t: now}}
	st, err := sqlitestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	w.st = st
	bus := w.bus("setup")
	// A lease bucket with a short TTL first, so that fail-over tests are quick; Setup keeps it.
	if _, err := bus.NewLease(ctx, natsbus.LeaseConfig{Key: natsbus.LeaseScheduler, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Setup(ctx, natsbus.StreamOptions{EventMaxAge: time.Hour, EventMaxBytes: 1 << 24}); err != nil {
		t.Fatal(err)
	}
	if w.js, err = jetstream.New(bus.Conn()); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) bus(name string) *natsbus.Bus {
	w.t.Helper()
	bus, err := natsbus.Connect(w.ctx, w.url, name, zerolog.Nop())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(bus.Close)
	return bus
}

// scheduler returns a scheduler on its own connection, with the world's clock; it does not
// contend for the lease until started.
func (w *world) scheduler(name string, cfg Config) (*Scheduler, *recorder) {
	w.t.Helper()
	bus := w.bus(name)
	lease, err := bus.NewLease(w.ctx, natsbus.LeaseConfig{Key: natsbus.LeaseScheduler, Holder: name})
	if err != nil {
		w.t.Fatal(err)
	}
	rec := &recorder{bus: bus}
	cfg.Now = w.clock.Now
	if cfg.Every == 0 {
		cfg.Every = 10 * time.Millisecond
	}
	return New(cfg, w.st, rec, lease, zerolog.Nop()), rec
}

func (w *world) schedule(id int64, interval string, enabled time.Time, settings map[string]any) *schedule.Schedule {
	w.t.Helper()
	if settings == nil {
		settings = map[string]any{}
	}
	sc := &schedule.Schedule{ID: id, Space: "default", PipelineUUID: "etl", Name: fmt.Sprint("s", id), ScheduleType: schedule.TypeTime,
		ScheduleInterval: interval, Status: schedule.StatusActive, Variables: map[string]any{}, Settings: settings,
		LastEnabledAt: &enabled, CreatedAt: enabled, UpdatedAt: enabled}
	if err := w.st.CreateSchedule(w.ctx, sc); err != nil {
		w.t.Fatal(err)
	}
	return sc
}

// materialize does what the executor does with trigger commands: one run per command id.
func (w *world) materialize(cmds []command.Envelope) {
	w.t.Helper()
	for _, env := range cmds {
		var p command.TriggerRun
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			w.t.Fatal(err)
		}
		id, err := w.st.NextIDs(w.ctx, "pipeline_runs", 1)
		if err != nil {
			w.t.Fatal(err)
		}
		err = w.st.CreateRun(w.ctx, &run.PipelineRun{ID: id, Space: env.Space, PipelineUUID: p.PipelineUUID, PipelineScheduleID: p.ScheduleID,
			CommandID: env.ID, ExecutionDate: *p.ExecutionDate, Status: run.StatusRunning, Variables: p.Variables, RunType: p.RunType})
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			w.t.Fatal(err)
		}
	}
}

// streamCommands counts the commands the command stream holds: re-publishes of one command
// id within the duplicate window are stored once.
func (w *world) streamCommands() uint64 {
	w.t.Helper()
	s, err := w.js.Stream(w.ctx, natsbus.StreamCommands)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := s.Info(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return info.State.Msgs
}

func executionDates(cmds []command.Envelope) string {
	var out []string
	for _, env := range cmds {
		var p command.TriggerRun
		_ = json.Unmarshal(env.Payload, &p)
		out = append(out, p.ExecutionDate.UTC().Format("15:04"))
	}
	return fmt.Sprint(out)
}

// pass runs one firing pass of a leadership term.
func pass(t *testing.T, s *Scheduler, tm *term, now time.Time) {
	t.Helper()
	if err := s.fire(context.Background(), tm, now); err != nil {
		t.Fatal(err)
	}
}

func newTerm() *term { return &term{fired: map[int64]time.Time{}, plans: map[int64]*plan{}} }

func TestFiresEachTickOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, at("2026-01-14T10:00:00Z"))
	w.schedule(1, "@hourly", at("2026-01-14T09:30:00Z"), nil)
	s, rec := w.scheduler("a", Config{})
	tm := newTerm()

	pass(t, s, tm, at("2026-01-14T09:59:59Z"))
	if n := len(rec.commands()); n != 0 {
		t.Fatalf("%d commands before the first tick", n)
	}
	// Passes every second while the run is being created publish the tick once.
	for i := range 5 {
		pass(t, s, tm, at("2026-01-14T10:00:00Z").Add(time.Duration(i)*time.Second))
	}
	cmds := rec.commands()
	if len(cmds) != 1 {
		t.Fatalf("%d commands for one tick, want 1", len(cmds))
	}
	env := cmds[0]
	var p command.TriggerRun
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		t.Fatal(err)
	}
	tick := at("2026-01-14T10:00:00Z")
	if env.ID != TickCommandID("default", 1, tick) || env.Type != command.TypeTriggerRun || env.Space != "default" || env.Principal != Principal {
		t.Fatalf("envelope = %+v", env)
	}
	if p.PipelineUUID != "etl" || p.ScheduleID != 1 || p.RunType != run.TypeScheduled || p.ExecutionDate == nil || !p.ExecutionDate.Equal(tick) {
		t.Fatalf("payload = %+v", p)
	}
	if p.Variables[VarIntervalStart] != "2026-01-14T10:00:00Z" || p.Variables[VarIntervalEnd] != "2026-01-14T11:00:00Z" || p.Variables[VarIntervalSeconds] != 3600.0 || len(p.Variables) != 3 {
		t.Fatalf("variables = %v", p.Variables)
	}

	// A new term (a new leader) knows nothing of what was published: it publishes the tick
	// again under the same id, which the stream drops.
	tm2 := newTerm()
	pass(t, s, tm2, at("2026-01-14T10:00:05Z"))
	cmds = rec.commands()
	if len(cmds) != 2 || cmds[1].ID != env.ID || !rec.dup[1] {
		t.Fatalf("re-publish by a new term: %d commands, duplicate=%v", len(cmds), rec.dup)
	}
	if n := w.streamCommands(); n != 1 {
		t.Fatalf("the stream holds %d commands, want 1", n)
	}

	// Once the run exists, only the next tick fires.
	w.materialize(cmds)
	tm3 := newTerm()
	pass(t, s, tm3, at("2026-01-14T10:30:00Z"))
	pass(t, s, tm3, at("2026-01-14T11:00:00Z"))
	pass(t, s, tm3, at("2026-01-14T11:00:01Z"))
	if got := executionDates(rec.commands()[2:]); got != "[11:00]" {
		t.Fatalf("after the run: fired %s, want [11:00]", got)
	}
	if n := w.streamCommands(); n != 2 {
		t.Fatalf("the stream holds %d commands, want 2", n)
	}
}

func TestCatchUp(t *testing.T) {
	t.Parallel()
	w := newWorld(t, at("2026-01-14T10:00:30Z"))
	w.schedule(1, "@hourly", at("2026-01-01T00:00:00Z"), nil)
	w.schedule(2, "@hourly", at("2026-01-01T00:00:00Z"), map[string]any{SettingCatchUp: true})
	s, rec := w.scheduler("a", Config{MaxCatchUp: 3})
	// Both schedules last ran at 05:00; the executors were down since.
	w.materialize([]command.Envelope{
		mustCommand(t, 1, at("2026-01-14T05:00:00Z")),
		mustCommand(t, 2, at("2026-01-14T05:00:00Z")),
	})
	tm := newTerm()
	pass(t, s, tm, at("2026-01-14T10:00:30Z"))
	bySchedule := func() map[int64][]command.Envelope {
		m := map[int64][]command.Envelope{}
		for _, env := range rec.commands() {
			var p command.TriggerRun
			_ = json.Unmarshal(env.Payload, &p)
			m[p.ScheduleID] = append(m[p.ScheduleID], env)
		}
		return m
	}
	if got := executionDates(bySchedule()[1]); got != "[10:00]" {
		t.Fatalf("catch-up off fired %s, want only the latest [10:00]", got)
	}
	if got := executionDates(bySchedule()[2]); got != "[06:00 07:00 08:00]" {
		t.Fatalf("catch-up on, first pass fired %s, want the oldest three", got)
	}
	pass(t, s, tm, at("2026-01-14T10:00:31Z"))
	pass(t, s, tm, at("2026-01-14T10:00:32Z"))
	if got := executionDates(bySchedule()[2]); got != "[06:00 07:00 08:00 09:00 10:00]" {
		t.Fatalf("catch-up on fired %s, want every missed tick once", got)
	}
	if got := executionDates(bySchedule()[1]); got != "[10:00]" {
		t.Fatalf("catch-up off fired %s in later passes", got)
	}
}

func mustCommand(t *testing.T, scheduleID int64, tick time.Time) command.Envelope {
	t.Helper()
	env, err := command.New(TickCommandID("default", scheduleID, tick), command.TypeTriggerRun, "default", Principal,
		command.TriggerRun{PipelineUUID: "etl", ScheduleID: scheduleID, ExecutionDate: &tick, RunType: run.TypeScheduled})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestLastEnabledAt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, at("2026-01-14T10:00:05Z"))
	// Enabled at 10:00 today: today's 00:00 tick is before, so it does not fire ...
	w.schedule(1, "@daily", at("2026-01-14T10:00:00Z"), map[string]any{SettingCatchUp: true})
	// ... unless the schedule asks for the interval it was enabled in.
	w.schedule(2, "@daily", at("2026-01-14T10:00:00Z"), map[string]any{SettingCreateInitialRun: true})
	// Last ran a week ago, disabled since, re-enabled at 10:00: the week is not caught up.
	w.schedule(3, "@daily", at("2026-01-14T10:00:00Z"), map[string]any{SettingCatchUp: true})
	w.materialize([]command.Envelope{mustCommand(t, 3, at("2026-01-07T00:00:00Z"))})
	s, rec := w.scheduler("a", Config{})
	tm := newTerm()
	pass(t, s, tm, at("2026-01-14T10:00:05Z"))
	cmds := rec.commands()
	if len(cmds) != 1 || cmds[0].ID != TickCommandID("default", 2, at("2026-01-14T00:00:00Z")) {
		t.Fatalf("fired %s, want only schedule 2's 00:00 tick", executionDates(cmds))
	}
	// The next day's tick fires for all three.
	pass(t, s, tm, at("2026-01-15T00:00:01Z"))
	if got := executionDates(rec.commands()[1:]); got != "[00:00 00:00 00:00]" {
		t.Fatalf("next day fired %s", got)
	}
}

func TestOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, at("2026-01-14T10:00:00Z"))
	sc := w.schedule(1, "@once", at("2026-01-14T09:00:00Z"), nil)
	future := w.schedule(2, "@once", at("2026-01-14T09:00:00Z"), nil)
	if _, err := w.st.UpdateSchedule(w.ctx, future.ID, func(s *schedule.Schedule) error {
		s.StartTime = ptr(at("2026-01-14T12:00:00Z"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s, rec := w.scheduler("a", Config{})
	tm := newTerm()
	for i := range 3 {
		pass(t, s, tm, at("2026-01-14T10:00:00Z").Add(time.Duration(i)*time.Second))
	}
	cmds := rec.commands()
	if len(cmds) != 1 || cmds[0].ID != TickCommandID("default", sc.ID, at("2026-01-14T09:00:00Z")) {
		t.Fatalf("@once fired %d commands (%s), want one at its enabling", len(cmds), executionDates(cmds))
	}
	var p command.TriggerRun
	_ = json.Unmarshal(cmds[0].Payload, &p)
	if _, ok := p.Variables[VarIntervalEnd]; ok || len(p.Variables) != 1 {
		t.Fatalf("@once variables = %v, want only the interval start", p.Variables)
	}
	// Its run exists: later terms never fire it again, while the other fires at its start.
	w.materialize(cmds)
	tm = newTerm()
	pass(t, s, tm, at("2026-01-14T11:00:00Z"))
	pass(t, s, tm, at("2026-01-14T12:00:00Z"))
	pass(t, s, tm, at("2026-01-15T12:00:00Z"))
	cmds = rec.commands()[1:]
	if len(cmds) != 1 || cmds[0].ID != TickCommandID("default", future.ID, at("2026-01-14T12:00:00Z")) {
		t.Fatalf("later: fired %s, want only schedule 2 at 12:00", executionDates(cmds))
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOneLeaderFiresAndFailOver(t *testing.T) {
	t.Parallel()
	w := newWorld(t, at("2026-01-14T10:00:02Z"))
	w.schedule(1, "@hourly", at("2026-01-14T09:30:00Z"), nil)
	a, recA := w.scheduler("a", Config{})
	b, recB := w.scheduler("b", Config{})
	a.Start(w.ctx)
	b.Start(w.ctx)
	t.Cleanup(func() { a.Stop(context.Background()); b.Stop(context.Background()) })

	total := func() int { return len(recA.commands()) + len(recB.commands()) }
	eventually(t, 5*time.Second, "the due tick fires", func() bool { return total() >= 1 })
	leader, follower, recL, recF := a, b, recA, recB
	if len(recB.commands()) > 0 {
		leader, follower, recL, recF = b, a, recB, recA
	}
	// Many more passes of the leader: still one command, and the follower never passed.
	from := leader.passes.Load()
	eventually(t, 5*time.Second, "twenty more passes", func() bool { return leader.passes.Load() >= from+20 })
	if total() != 1 || follower.passes.Load() != 0 {
		t.Fatalf("%d commands, follower passes %d: want 1 command from the leader alone", total(), follower.passes.Load())
	}
	first := recL.commands()[0]

	// The leader stops before the executor made the run: the follower takes over and fires
	// the tick again, as the same command, which the stream stores once.
	leader.Stop(w.ctx)
	eventually(t, 5*time.Second, "the follower takes over", func() bool { return len(recF.commands()) >= 1 })
	if again := recF.commands()[0]; again.ID != first.ID {
		t.Fatalf("the new leader fired tick %s as %s, the old one as %s", executionDates([]command.Envelope{again}), again.ID, first.ID)
	}
	if n := w.streamCommands(); n != 1 {
		t.Fatalf("the stream holds %d commands after fail-over, want 1", n)
	}

	// Runs made; the clock reaches the next tick: the new leader fires it once.
	w.materialize(recF.commands())
	w.clock.Set(at("2026-01-14T11:00:00Z"))
	eventually(t, 5*time.Second, "the next tick fires", func() bool { return len(recF.commands()) >= 2 })
	from = follower.passes.Load()
	eventually(t, 5*time.Second, "twenty more passes", func() bool { return follower.passes.Load() >= from+20 })
	if got := executionDates(recF.commands()); got != "[10:00 11:00]" {
		t.Fatalf("the new leader fired %s, want [10:00 11:00]", got)
	}
	if n := len(recL.commands()); n != 1 {
		t.Fatalf("the stopped leader published %d commands, want 1", n)
	}
}

func TestSLA(t *testing.T) {
	t.Parallel()
	now := at("2026-01-14T10:00:00Z")
	w := newWorld(t, now)
	withSLA := w.schedule(1, "@hourly", at("2026-01-01T00:00:00Z"), nil)
	noSLA := w.schedule(2, "@hourly", at("2026-01-01T00:00:00Z"), nil)
	if _, err := w.st.UpdateSchedule(w.ctx, withSLA.ID, func(s *schedule.Schedule) error { s.SLA = 3600; return nil }); err != nil {
		t.Fatal(err)
	}
	mk := func(id, scheduleID int64, st run.Status, execDate time.Time) {
		t.Helper()
		err := w.st.CreateRun(w.ctx, &run.PipelineRun{ID: id, Space: "default", PipelineUUID: "etl", PipelineScheduleID: scheduleID,
			CommandID: fmt.Sprint("c", id), ExecutionDate: execDate, Status: st})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(1, withSLA.ID, run.StatusRunning, now.Add(-2*time.Hour))    // past its SLA
	mk(2, withSLA.ID, run.StatusRunning, now.Add(-30*time.Minute)) // within it
	mk(3, withSLA.ID, run.StatusCompleted, now.Add(-3*time.Hour))  // finished
	mk(4, noSLA.ID, run.StatusRunning, now.Add(-5*time.Hour))      // no SLA
	mk(5, withSLA.ID, run.StatusInitial, now.Add(-time.Hour-time.Second))

	s, rec := w.scheduler("a", Config{})
	for range 3 {
		if err := s.checkSLA(w.ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	evs := rec.events()
	if len(evs) != 2 {
		t.Fatalf("%d SLA events, want 2 (runs 1 and 5, once each)", len(evs))
	}
	for _, e := range evs {
		r := e.ev.PipelineRun
		if e.ev.Type != event.TypePipelineRunSLAMissed || r == nil || !r.PassedSLA || e.subject != natsbus.RunSLAMissedSubject("default", "etl", r.ID) {
			t.Fatalf("event %s %+v", e.subject, e.ev)
		}
	}
	for id, want := range map[int64]bool{1: true, 2: false, 3: false, 4: false, 5: true} {
		r, err := w.st.GetRun(w.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.PassedSLA != want || (id == 1 && r.Status != run.StatusRunning) {
			t.Fatalf("run %d: passed_sla %v status %s, want passed_sla %v and the run going on", id, r.PassedSLA, r.Status, want)
		}
	}
	// A later leader finds the marks and announces nothing again.
	s2, rec2 := w.scheduler("b", Config{})
	if err := s2.checkSLA(w.ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec2.events()); n != 1 {
		t.Fatalf("a later check announced %d misses, want 1 (run 2, now past its SLA)", n)
	}
	st, err := w.js.Stream(w.ctx, natsbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("the event stream holds %d events, want 3", info.State.Msgs)
	}
}
