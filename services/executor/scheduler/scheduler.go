// Package scheduler fires time schedules. Every executor process runs one; the one holding
// the `scheduler` lease leads, and only the leader fires. Each second it looks for due ticks
// of the active time schedules of every space and publishes one pipeline_run.trigger command
// per tick, whose id is derived from the schedule and the tick: a tick fired twice (a
// fail-over, a retry) is the same command, which the executor turns into one run. Every few
// seconds the leader also marks the unfinished runs that passed their schedule's SLA.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

// Store is what the scheduler reads and writes.
type Store interface {
	ListSchedules(ctx context.Context, f store.ScheduleFilter, pg store.Page) ([]schedule.Schedule, int64, error)
	GetSchedules(ctx context.Context, ids []int64) (map[int64]*schedule.Schedule, error)
	ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error)
	ActiveRuns(ctx context.Context, limit int) ([]run.PipelineRun, error)
	UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error)
}

// Publisher publishes the scheduler's commands and events (natsbus.Bus).
type Publisher interface {
	PublishCommand(ctx context.Context, env command.Envelope) (duplicate bool, err error)
	PublishEvent(ctx context.Context, subject string, ev event.Event) error
}

// Lease elects the leader among scheduler instances (natsbus.Lease): Run calls lead while
// this instance holds the lease and cancels its context the moment it is lost.
type Lease interface {
	Run(ctx context.Context, lead func(ctx context.Context)) error
}

// Principal is the principal of the commands the scheduler publishes.
const Principal = "scheduler"

// Schedule settings the scheduler reads (Mage's names).
const (
	// SettingCatchUp: fire every tick missed while no leader ran (bounded per pass), rather
	// than only the latest.
	SettingCatchUp = "catchup"
	// SettingCreateInitialRun: enabling the schedule fires the interval it is enabled in.
	SettingCreateInitialRun = "create_initial_pipeline_run"
)

// Config tunes a scheduler. Zero fields take their defaults.
type Config struct {
	// Every is how often the leader looks for due ticks (1 s; Mage's scheduler ticks every
	// 10 s). It bounds the firing delay.
	Every time.Duration
	// SLAEvery is how often the leader checks SLAs (5 s).
	SLAEvery time.Duration
	// MaxCatchUp bounds the ticks one schedule fires in one pass when it catches up (1000);
	// the rest follow in the next passes, oldest first.
	MaxCatchUp int
	// SLABatch bounds the unfinished runs one SLA check reads, oldest first (1000).
	SLABatch int
	// Now is the clock (time.Now); tests set their own.
	Now func() time.Time
}

// pageSize is how many schedules one store read returns.
const pageSize = 500

// Scheduler fires time schedules while it holds the lease.
type Scheduler struct {
	cfg   Config
	store Store
	pub   Publisher
	lease Lease
	log   zerolog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	// passes counts firing passes, for tests to wait on.
	passes atomic.Int64
}

// New returns a scheduler; Start runs it.
func New(cfg Config, st Store, pub Publisher, lease Lease, log zerolog.Logger) *Scheduler {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.SLAEvery <= 0 {
		cfg.SLAEvery = 5 * time.Second
	}
	if cfg.MaxCatchUp <= 0 {
		cfg.MaxCatchUp = 1000
	}
	if cfg.SLABatch <= 0 {
		cfg.SLABatch = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg, store: st, pub: pub, lease: lease, log: log}
}

// Start contends for the lease in the background and leads whenever it holds it, until Stop.
func (s *Scheduler) Start(ctx context.Context) {
	// The scheduler lives until Stop, not until the start-up context ends.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.lease.Run(ctx, s.lead); err != nil {
			s.log.Error().Err(err).Msg("scheduler stopped contending for the lease")
		}
	}()
}

// Stop stops leading and contending, releasing the lease so that another executor takes
// over at once, and waits until ctx ends for that to finish.
func (s *Scheduler) Stop(ctx context.Context) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	s.cancel = nil
}

// term is what one leadership term remembers. It starts empty: a new leader recomputes
// everything from the store, and re-publishes at worst what the previous one had published
// but the executor had not made into runs yet, which the command ids make harmless.
type term struct {
	// fired is the latest tick published per schedule: published commands are durable in
	// the stream, so they need not be published again while the runs are being created.
	fired map[int64]time.Time
	// plans caches each schedule's timetable and when it is next worth looking at.
	plans map[int64]*plan
}

// plan is the cached state of one schedule version.
type plan struct {
	version int64
	tt      *schedule.Timetable
	err     error
	// quietUntil: nothing is due before it for this version, so the schedule's runs need
	// not be read; zero means look at the next pass.
	quietUntil time.Time
	// never: nothing will ever be due for this version.
	never bool
}

// lead is one leadership term: a firing pass every Every and an SLA check every SLAEvery,
// until ctx is cancelled (the lease is lost or the scheduler stops).
func (s *Scheduler) lead(ctx context.Context) {
	s.log.Info().Msg("scheduler leading")
	defer s.log.Info().Msg("scheduler no longer leading")
	tm := &term{fired: map[int64]time.Time{}, plans: map[int64]*plan{}}
	t := time.NewTimer(s.cfg.Every)
	defer t.Stop()
	var lastSLA time.Time
	for {
		now := s.cfg.Now()
		if err := s.fire(ctx, tm, now); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("firing pass failed")
		}
		s.passes.Add(1)
		if lastSLA.IsZero() || now.Sub(lastSLA) >= s.cfg.SLAEvery {
			if err := s.checkSLA(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("SLA check failed")
			}
			lastSLA = now
		}
		t.Reset(s.untilNext(tm, now))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// untilNext is how long the leader may wait before its next pass: Every, or less when a known
// schedule's next tick comes sooner, so that a tick fires at its time rather than up to Every
// late. New and changed schedules are picked up within Every.
func (s *Scheduler) untilNext(tm *term, now time.Time) time.Duration {
	wait := s.cfg.Every
	for _, p := range tm.plans {
		if p.err != nil || p.never || p.quietUntil.IsZero() {
			continue
		}
		if d := p.quietUntil.Sub(now); d < wait {
			wait = d
		}
	}
	return max(wait, time.Millisecond)
}

// fire publishes the due ticks of every active time schedule.
func (s *Scheduler) fire(ctx context.Context, tm *term, now time.Time) error {
	seen := map[int64]bool{}
	for offset := 0; ; offset += pageSize {
		scs, _, err := s.store.ListSchedules(ctx, store.ScheduleFilter{Type: schedule.TypeTime, Status: schedule.StatusActive}, store.Page{Limit: pageSize, Offset: offset})
		if err != nil {
			return fmt.Errorf("scheduler: list time schedules: %w", err)
		}
		for i := range scs {
			if ctx.Err() != nil {
				return nil
			}
			sc := &scs[i]
			seen[sc.ID] = true
			if err := s.fireSchedule(ctx, tm, sc, now); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Int64(logging.KeySchedule, sc.ID).Str(logging.KeySpace, sc.Space).Msg("schedule not fired")
			}
		}
		if len(scs) < pageSize {
			break
		}
	}
	// Forget schedules that were deleted or deactivated; reactivating one bumps its version
	// and starts it afresh anyway.
	for id := range tm.plans {
		if !seen[id] {
			delete(tm.plans, id)
			delete(tm.fired, id)
		}
	}
	return nil
}

// fireSchedule publishes the due ticks of one schedule.
func (s *Scheduler) fireSchedule(ctx context.Context, tm *term, sc *schedule.Schedule, now time.Time) error {
	p := tm.plans[sc.ID]
	if p == nil || p.version != sc.Version {
		p = &plan{version: sc.Version}
		p.tt, p.err = schedule.NewTimetable(sc)
		tm.plans[sc.ID] = p
		if p.err != nil {
			// Validation keeps such schedules out; one that slipped through is reported
			// once per version rather than every second.
			s.log.Warn().Err(p.err).Int64(logging.KeySchedule, sc.ID).Str(logging.KeySpace, sc.Space).Msg("time schedule cannot be computed; skipped")
		}
	}
	if p.err != nil || p.never || now.Before(p.quietUntil) {
		return nil
	}

	runs, _, err := s.store.ListRuns(ctx, store.RunFilter{Space: sc.Space, ScheduleID: sc.ID}, store.Page{Limit: 1})
	if err != nil {
		return fmt.Errorf("scheduler: latest run of schedule %d: %w", sc.ID, err)
	}
	var last *time.Time
	if len(runs) > 0 {
		last = &runs[0].ExecutionDate
	}
	if fired, ok := tm.fired[sc.ID]; ok && (last == nil || fired.After(*last)) {
		last = &fired
	}
	due := dueTicks(sc, p.tt, last, now, s.cfg.MaxCatchUp)
	for _, tick := range due {
		if err := s.publish(ctx, sc, p.tt, tick); err != nil {
			return err
		}
		tm.fired[sc.ID] = tick
	}
	if len(due) < s.cfg.MaxCatchUp {
		// Nothing more is due until the next tick; a backlog cut short by MaxCatchUp goes on
		// at the next pass.
		next, ok := p.tt.Next(now)
		p.quietUntil, p.never = next, !ok
	}
	return nil
}

// dueTicks returns the ticks of sc to fire at now, oldest first. last is the execution date
// of the schedule's latest run (or latest published tick), nil when there is none.
//
// Mage's rules, made predictable: ticks after the latest run are due, but never one before
// the schedule was (last) enabled, unless settings.create_initial_pipeline_run asks for the
// interval it was enabled in; only the latest due tick fires, unless settings.catchup asks
// for all of them (at most maxCatchUp, the oldest). @once fires its tick once, if the
// schedule has no run at all.
func dueTicks(sc *schedule.Schedule, tt *schedule.Timetable, last *time.Time, now time.Time, maxCatchUp int) []time.Time {
	if sc.ScheduleInterval == schedule.IntervalOnce {
		if last != nil {
			return nil
		}
		if tick, ok := tt.Latest(now); ok {
			return []time.Time{tick}
		}
		return nil
	}
	floor := enabledAt(sc, now)
	if setting(sc, SettingCreateInitialRun) {
		if tick, ok := tt.Latest(floor); ok {
			floor = tick
		}
	}
	after := floor.Add(-time.Nanosecond) // a tick at the floor itself is due
	if last != nil && !last.Before(floor) {
		after = *last
	}
	if setting(sc, SettingCatchUp) {
		return tt.Between(after, now, maxCatchUp)
	}
	if tick, ok := tt.Latest(now); ok && tick.After(after) {
		return []time.Time{tick}
	}
	return nil
}

// enabledAt is when sc was last enabled: last_enabled_at, else its creation, else now (a
// schedule with neither fires from its next tick on).
func enabledAt(sc *schedule.Schedule, now time.Time) time.Time {
	switch {
	case sc.LastEnabledAt != nil:
		return *sc.LastEnabledAt
	case !sc.CreatedAt.IsZero():
		return sc.CreatedAt
	}
	return now
}

// setting reads a boolean schedule setting; absent or not a boolean is false.
func setting(sc *schedule.Schedule, key string) bool {
	v, _ := sc.Settings[key].(bool)
	return v
}

// TickCommandID is the id of the trigger command of sc's tick: the same tick is always the
// same command, which the executor makes into one run however often it is published.
func TickCommandID(space string, scheduleID int64, tick time.Time) string {
	return command.IdempotentID(space, "tick/"+strconv.FormatInt(scheduleID, 10), tick.UTC().Format(time.RFC3339))
}

// Interval variables a scheduled run gets, besides the schedule's own (merged by the
// executor). Mage's names.
const (
	VarIntervalStart   = "interval_start_datetime"
	VarIntervalEnd     = "interval_end_datetime"
	VarIntervalSeconds = "interval_seconds"
)

// publish publishes the trigger command of one tick.
func (s *Scheduler) publish(ctx context.Context, sc *schedule.Schedule, tt *schedule.Timetable, tick time.Time) error {
	start, end, ok := tt.Interval(tick)
	vars := map[string]any{VarIntervalStart: start.Format(time.RFC3339)}
	if ok {
		vars[VarIntervalEnd] = end.Format(time.RFC3339)
		vars[VarIntervalSeconds] = int64(end.Sub(start) / time.Second)
	}
	execDate := tick
	id := TickCommandID(sc.Space, sc.ID, tick)
	env, err := command.New(id, command.TypeTriggerRun, sc.Space, Principal, command.TriggerRun{
		PipelineUUID: sc.PipelineUUID, ScheduleID: sc.ID, Variables: vars, ExecutionDate: &execDate, RunType: run.TypeScheduled,
	})
	if err != nil {
		return fmt.Errorf("scheduler: schedule %d tick %s: %w", sc.ID, tick.Format(time.RFC3339), err)
	}
	duplicate, err := s.pub.PublishCommand(ctx, env)
	if err != nil {
		return fmt.Errorf("scheduler: schedule %d tick %s: %w", sc.ID, tick.Format(time.RFC3339), err)
	}
	// The firing delay (tick to publish) is what the one-second pass and a fail-over cost.
	s.log.Debug().Int64(logging.KeySchedule, sc.ID).Str(logging.KeySpace, sc.Space).Str(logging.KeyPipeline, sc.PipelineUUID).
		Str(logging.KeyCommandID, id).Time(logging.KeyTick, tick).Dur("delay", s.cfg.Now().Sub(tick)).Bool("duplicate", duplicate).
		Msg("tick fired")
	return nil
}

// maxSLA is the longest SLA a time.Duration holds (292 years); a longer one never passes.
const maxSLA = int64(math.MaxInt64 / time.Second)

// checkSLA marks the unfinished runs whose schedule's SLA has passed (execution date + sla
// before now) and announces each once. The run goes on, as in Mage.
func (s *Scheduler) checkSLA(ctx context.Context, now time.Time) error {
	runs, err := s.store.ActiveRuns(ctx, s.cfg.SLABatch)
	if err != nil {
		return fmt.Errorf("scheduler: active runs: %w", err)
	}
	var ids []int64
	for i := range runs {
		if !runs[i].PassedSLA && runs[i].PipelineScheduleID != 0 {
			ids = append(ids, runs[i].PipelineScheduleID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	scs, err := s.store.GetSchedules(ctx, ids)
	if err != nil {
		return fmt.Errorf("scheduler: schedules of active runs: %w", err)
	}
	for i := range runs {
		r := &runs[i]
		sc := scs[r.PipelineScheduleID]
		if r.PassedSLA || sc == nil || sc.SLA <= 0 || sc.SLA > maxSLA || !r.ExecutionDate.Add(time.Duration(sc.SLA)*time.Second).Before(now) {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		log := s.log.With().Int64(logging.KeyRunID, r.ID).Str(logging.KeySpace, r.Space).Int64(logging.KeySchedule, sc.ID).Logger()
		updated, err := s.store.UpdateRun(ctx, r.ID, func(r *run.PipelineRun) error {
			if r.PassedSLA || r.Status.Terminal() {
				return run.ErrNoChange // marked by a previous leader, or finished meanwhile
			}
			r.PassedSLA = true
			return nil
		})
		if errors.Is(err, run.ErrNoChange) {
			continue
		} else if err != nil {
			log.Warn().Err(err).Msg("run past its SLA not marked")
			continue
		}
		log.Info().Int64("sla_seconds", sc.SLA).Msg("run missed its SLA")
		// One SLA miss per run: the event id makes a re-publish a duplicate the stream drops.
		ev := event.PipelineRunSLAMissed(updated)
		// The store holds the mark, the source of truth; a lost event is logged, not retried.
		if err := s.pub.PublishEvent(context.WithoutCancel(ctx), natsbus.RunSLAMissedSubject(updated.Space, updated.PipelineUUID, updated.ID), ev); err != nil {
			log.Warn().Err(err).Str("event_id", ev.ID).Msg("event not published")
		}
	}
	return nil
}
