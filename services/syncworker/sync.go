package syncworker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// progressEvery bounds how often a running job's counts are written.
const progressEvery = time.Second

// listPage is the page size of the worker's own store listings.
const listPage = 500

// handleSync runs the job of a sync command under the connector's lease. A job already
// finished (a redelivered command) is done; one whose connector is being synced waits its
// turn: the command is retried after BusyRetry.
func (w *Worker) handleSync(ctx context.Context, env command.Envelope, p command.SyncConnector) error {
	job, err := w.store.GetSyncJob(ctx, env.Space, p.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // its connector was deleted, and its jobs with it
	} else if err != nil {
		return err
	}
	if job.Terminal() {
		return nil
	}
	select {
	case w.syncSlots <- struct{}{}:
		defer func() { <-w.syncSlots }()
	default:
		return natsbus.Retry(errors.New("syncworker: every sync slot is busy"), w.cfg.BusyRetry)
	}
	ran, err := w.withConnectorLease(ctx, p.ConnectorID, func(ctx context.Context) error {
		return w.runJob(ctx, env.Space, p.JobID)
	})
	if err != nil {
		return err
	}
	if !ran {
		return natsbus.Retry(errBusy, w.cfg.BusyRetry)
	}
	return nil
}

// runJob runs a sync job to its end and records the outcome on the job and the connector.
// It returns an error only when the sync was cut short (shutdown, lease lost) and should be
// redelivered; a failed sync is a recorded outcome.
func (w *Worker) runJob(ctx context.Context, space, jobID string) error {
	log := zerolog.Ctx(ctx)
	job, err := w.store.GetSyncJob(ctx, space, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if job.Terminal() {
		return nil // finished by another worker while this one waited for the lease
	}
	conn, err := w.store.GetConnector(ctx, space, job.ConnectorID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	start := w.cfg.Now().UTC().Truncate(time.Millisecond)
	job, err = w.store.UpdateSyncJob(ctx, space, jobID, func(j *connector.SyncJob) error {
		j.Status = connector.JobRunning
		j.StartedAt = &start
		j.FinishedAt, j.Error = nil, ""
		j.DAGs, j.Runs, j.TaskRuns = connector.Counts{}, connector.Counts{}, connector.Counts{}
		return nil
	})
	if err != nil {
		return err
	}
	w.setLastSync(ctx, conn, job, nil)
	w.emitSync(ctx, job, event.TypeSyncStarted)
	log.Info().Str("connector_id", conn.ID).Str("sync_job_id", job.ID).Msg("sync started")

	s := &syncer{w: w, conn: conn, job: job, start: start, log: log}
	serr := s.run(ctx)
	if serr != nil && ctx.Err() != nil {
		// Cut short: the command comes back, and the job (still running) is resumed.
		return fmt.Errorf("syncworker: sync %s interrupted: %w", job.ID, serr)
	}
	finished := w.cfg.Now().UTC().Truncate(time.Millisecond)
	final, err := w.store.UpdateSyncJob(ctx, space, jobID, func(j *connector.SyncJob) error {
		s.mu.Lock()
		j.DAGs, j.Runs, j.TaskRuns = s.job.DAGs, s.job.Runs, s.job.TaskRuns
		s.mu.Unlock()
		j.FinishedAt = &finished
		j.Status, j.Error = connector.JobCompleted, ""
		if serr != nil {
			j.Status, j.Error = connector.JobFailed, serr.Error()
		}
		return nil
	})
	if err != nil {
		return err
	}
	var watermark *time.Time
	if serr == nil {
		watermark = &start
	}
	w.setLastSync(ctx, conn, final, func(c *connector.Connector) {
		if watermark != nil {
			c.Sync.Watermark = watermark
		}
		if s.detected != "" {
			c.DetectedVersion, c.AirflowVersion = s.detected, s.airflowVersion
		}
	})
	typ := event.TypeSyncCompleted
	ev := log.Info()
	if serr != nil {
		typ, ev = event.TypeSyncFailed, log.Warn().Err(serr)
	}
	w.emitSync(ctx, final, typ)
	ev.Str("connector_id", conn.ID).Str("sync_job_id", job.ID).Str("status", final.Status).
		Int64("dags", final.DAGs.Seen).Int64("runs", final.Runs.Seen).Int64("task_runs", final.TaskRuns.Seen).
		Int64("requests", s.requests).Msg("sync finished")
	return nil
}

// setLastSync records the job on its connector (and applies more, when given). A connector
// deleted meanwhile is no error.
func (w *Worker) setLastSync(ctx context.Context, conn *connector.Connector, j *connector.SyncJob, more func(*connector.Connector)) {
	_, err := w.store.UpdateConnector(ctx, conn.Space, conn.ID, func(c *connector.Connector) error {
		c.LastSync = &connector.LastSync{Status: j.Status, JobID: j.ID, At: j.UpdatedAt, Error: j.Error}
		if more != nil {
			more(c)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("connector_id", conn.ID).Msg("connector's last sync not recorded")
	}
}

// syncer is one sync of one connector.
type syncer struct {
	w     *Worker
	conn  *connector.Connector
	start time.Time
	log   *zerolog.Logger
	// incremental is set when an earlier sync completed: runs are read by updated_at, and
	// status changes are published as events (the first sync imports history quietly).
	incremental bool

	mu        sync.Mutex // guards job's counts and lastFlush
	job       *connector.SyncJob
	lastFlush time.Time

	detected, airflowVersion string
	requests                 int64
}

// target is a run whose task instances are to be read.
type target struct {
	dagID, runID string
	run          *run.PipelineRun
}

func (s *syncer) run(ctx context.Context) error {
	client, err := s.w.client(s.conn)
	if err != nil {
		return err
	}
	before := client.Requests()
	defer func() { s.requests = client.Requests() - before }()
	v, err := client.APIVersion(ctx)
	if err != nil {
		return fmt.Errorf("airflow at %s: %w", s.conn.BaseURL, err)
	}
	if string(v) != s.conn.DetectedVersion || s.conn.AirflowVersion == "" {
		info, err := client.Version(ctx)
		if err != nil {
			return fmt.Errorf("airflow version: %w", err)
		}
		s.detected, s.airflowVersion = string(v), info.Version
	}
	s.incremental = s.conn.Sync.Watermark != nil
	// After a failed sync, runs it stored may lack their task instances: read them all again.
	rereadAll := !s.incremental || (s.conn.LastSync != nil && s.conn.LastSync.Status == connector.JobFailed)

	uuids, err := s.syncDAGs(ctx, client)
	if err != nil {
		return err
	}
	s.flush(ctx, true)
	return s.syncRuns(ctx, client, uuids, rereadAll)
}

// syncDAGs mirrors every DAG the connector selects and marks inactive the pipelines whose
// DAG a complete listing lacks (deleted in Airflow). It returns the pipeline uuid of each
// selected DAG.
func (s *syncer) syncDAGs(ctx context.Context, client *airflow.Client) (map[string]string, error) {
	listed := map[string]bool{}
	uuids := map[string]string{}
	err := client.EachDAGPage(ctx, airflow.DAGFilter{}, func(page []airflow.DAG) error {
		for _, d := range page {
			listed[d.DAGID] = true
			if !s.conn.MatchesDAG(d.DAGID) {
				continue
			}
			p := connector.PipelineFromDAG(s.conn.Space, s.conn.ID, d)
			o, err := s.w.store.UpsertProviderPipeline(ctx, p)
			if err != nil {
				return err
			}
			uuids[d.DAGID] = p.UUID
			s.add(func(j *connector.SyncJob) { j.DAGs.Add(o) })
		}
		s.flush(ctx, false)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dags: %w", err)
	}
	f := store.PipelineFilter{Space: s.conn.Space, Provider: pipeline.ProviderAirflow, ConnectorID: s.conn.ID}
	for off := 0; ; off += listPage {
		ps, _, err := s.w.store.ListPipelinesFiltered(ctx, f, store.Page{Limit: listPage, Offset: off})
		if err != nil {
			return nil, err
		}
		for i := range ps {
			p := ps[i]
			if listed[p.ProviderID] || p.State == pipeline.StateInactive {
				continue
			}
			// Deleted in Airflow: kept, with its runs, comments and governance, as inactive.
			p.State = pipeline.StateInactive
			o, err := s.w.store.UpsertProviderPipeline(ctx, &p)
			if err != nil {
				return nil, err
			}
			if o == connector.Updated {
				s.add(func(j *connector.SyncJob) { j.DAGs.Updated++ })
			}
		}
		if len(ps) < listPage {
			break
		}
	}
	return uuids, nil
}

// syncRuns mirrors the runs Airflow reports changed (the lookback window on a first sync),
// then re-reads by id the stored runs still unfinished that the listing did not return,
// since offset paging over a changing set can skip a row. The task instances of each run
// that is new, changed or unfinished are read and stored right after the run. Runs are
// handled by Fetches workers at once, so Airflow's answers and the store's writes overlap.
func (s *syncer) syncRuns(ctx context.Context, client *airflow.Client, uuids map[string]string, rereadAll bool) error {
	f := airflow.RunFilter{}
	if s.incremental {
		since := s.conn.Sync.Watermark.Add(-s.w.cfg.Overlap)
		until := s.start
		f.UpdatedAtGTE, f.UpdatedAtLTE, f.OrderBy = &since, &until, "updated_at"
	} else {
		since := s.start.AddDate(0, 0, -s.conn.Sync.LookbackDays)
		f.LogicalDateGTE = &since
	}
	p := newPool(ctx, s.w.cfg.Fetches)
	// mirror stores one run and, when it is new, changed or unfinished, its task instances.
	mirror := func(ctx context.Context, uuid string, dr airflow.DAGRun) error {
		r, changed, err := s.upsertRun(ctx, uuid, dr)
		if err != nil {
			return err
		}
		if changed || rereadAll || !r.Status.Terminal() {
			if err := s.w.syncTaskRuns(ctx, client, s.conn, target{dagID: dr.DAGID, runID: dr.RunID, run: r}, s.incremental, s.add); err != nil {
				return err
			}
		}
		s.flush(ctx, false)
		return nil
	}
	seen := map[string]bool{}
	err := client.EachDAGRunPage(p.ctx, airflow.AllDAGs, f, func(page []airflow.DAGRun) error {
		for _, dr := range page {
			uuid, ok := uuids[dr.DAGID]
			if !ok {
				continue
			}
			key := connector.RunCommandID(s.conn.ID, dr.DAGID, dr.RunID)
			if seen[key] {
				continue
			}
			seen[key] = true
			if err := p.submit(func(ctx context.Context) error { return mirror(ctx, uuid, dr) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if perr := p.wait(); perr != nil {
			return perr
		}
		return fmt.Errorf("list dag runs: %w", err)
	}
	if s.incremental {
		if err := s.repoll(p, client, uuids, seen, mirror); err != nil {
			_ = p.wait()
			return err
		}
	}
	return p.wait()
}

// repoll re-reads by id the connector's unfinished runs that the listing did not return.
func (s *syncer) repoll(p *pool, client *airflow.Client, uuids map[string]string, seen map[string]bool,
	mirror func(context.Context, string, airflow.DAGRun) error) error {
	unfinished, err := s.w.unfinishedRuns(p.ctx, s.conn)
	if err != nil {
		return err
	}
	dagOf := make(map[string]string, len(uuids))
	for dag, uuid := range uuids {
		dagOf[uuid] = dag
	}
	for i := range unfinished {
		r := unfinished[i]
		dagID := dagOf[r.PipelineUUID]
		if seen[r.CommandID] || dagID == "" {
			continue
		}
		err := p.submit(func(ctx context.Context) error {
			dr, err := client.GetDAGRun(ctx, dagID, r.ProviderRunID)
			if errors.Is(err, airflow.ErrNotFound) {
				return nil // deleted in Airflow with its DAG: the mirror keeps its last state
			} else if err != nil {
				return fmt.Errorf("get dag run %s of %s: %w", r.ProviderRunID, dagID, err)
			}
			return mirror(ctx, uuids[dagID], *dr)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// pool runs tasks on a fixed number of goroutines; the first error cancels the rest.
type pool struct {
	ctx     context.Context
	cancel  context.CancelFunc
	work    chan func(context.Context) error
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
}

func newPool(ctx context.Context, n int) *pool {
	p := &pool{work: make(chan func(context.Context) error)}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for range max(n, 1) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for task := range p.work {
				if p.ctx.Err() != nil {
					continue
				}
				if err := task(p.ctx); err != nil {
					p.errOnce.Do(func() { p.err = err; p.cancel() })
				}
			}
		}()
	}
	return p
}

// submit hands a task to the next free goroutine; it fails once a task failed.
func (p *pool) submit(task func(context.Context) error) error {
	select {
	case p.work <- task:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// wait lets the submitted tasks finish and returns the first error.
func (p *pool) wait() error {
	close(p.work)
	p.wg.Wait()
	p.cancel()
	return p.err
}

// upsertRun stores one DAG run and reports whether it was created or changed. On an
// incremental sync a status change is published as the same event a native run's is.
func (s *syncer) upsertRun(ctx context.Context, pipelineUUID string, dr airflow.DAGRun) (*run.PipelineRun, bool, error) {
	r := connector.RunFromDAGRun(s.conn.Space, s.conn.ID, pipelineUUID, dr)
	var before run.Status
	if s.incremental {
		if cur, err := s.w.store.GetRunByCommand(ctx, r.CommandID); err == nil {
			before = cur.Status
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
	}
	o, err := s.w.store.UpsertProviderRun(ctx, r)
	if err != nil {
		return nil, false, err
	}
	s.add(func(j *connector.SyncJob) { j.Runs.Add(o) })
	if o == connector.Unchanged {
		return r, false, nil
	}
	if s.incremental && before != r.Status {
		stored, err := s.w.store.GetRun(ctx, r.ID)
		if err != nil {
			return nil, false, err
		}
		s.w.emitRun(ctx, stored)
		r = stored
	}
	return r, true, nil
}

// syncTaskRuns stores the task instances of one run as its block runs; with events set, it
// publishes the status changes.
func (w *Worker) syncTaskRuns(ctx context.Context, client *airflow.Client, conn *connector.Connector, t target, events bool, add func(func(*connector.SyncJob))) error {
	tis, err := client.ListTaskInstances(ctx, t.dagID, t.runID)
	if err != nil {
		return fmt.Errorf("list task instances of %s/%s: %w", t.dagID, t.runID, err)
	}
	brs := make([]run.BlockRun, len(tis))
	for i, ti := range tis {
		brs[i] = connector.BlockRunFromTI(conn.Space, t.run.PipelineUUID, t.run.ID, ti)
	}
	var before map[string]run.Status
	if events {
		old, err := w.store.BlockRunsOf(ctx, t.run.ID)
		if err != nil {
			return err
		}
		before = make(map[string]run.Status, len(old))
		for _, br := range old {
			before[br.BlockUUID] = br.Status
		}
	}
	counts, err := w.store.UpsertProviderBlockRuns(ctx, t.run.ID, brs)
	if err != nil {
		return err
	}
	if add != nil {
		add(func(j *connector.SyncJob) {
			j.TaskRuns.Seen += counts.Seen
			j.TaskRuns.Created += counts.Created
			j.TaskRuns.Updated += counts.Updated
		})
	}
	if !events || counts.Created+counts.Updated == 0 {
		return nil
	}
	now, err := w.store.BlockRunsOf(ctx, t.run.ID)
	if err != nil {
		return err
	}
	for i := range now {
		br := &now[i]
		if old, ok := before[br.BlockUUID]; !ok || old != br.Status {
			w.emitBlockRun(ctx, t.run, br)
		}
	}
	return nil
}

// add applies a change to the job's counts.
func (s *syncer) add(fn func(*connector.SyncJob)) {
	s.mu.Lock()
	fn(s.job)
	s.mu.Unlock()
}

// flush writes the job's counts when progressEvery has passed since the last write, or at
// once with force, so that a client polling the job sees it advance.
func (s *syncer) flush(ctx context.Context, force bool) {
	s.mu.Lock()
	now := time.Now()
	if !force && now.Sub(s.lastFlush) < progressEvery {
		s.mu.Unlock()
		return
	}
	s.lastFlush = now
	dags, runs, tasks := s.job.DAGs, s.job.Runs, s.job.TaskRuns
	s.mu.Unlock()
	_, err := s.w.store.UpdateSyncJob(ctx, s.job.Space, s.job.ID, func(j *connector.SyncJob) error {
		j.DAGs, j.Runs, j.TaskRuns = dags, runs, tasks
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Str("sync_job_id", s.job.ID).Msg("sync progress not recorded")
	}
}

// unfinishedRuns lists the connector's mirrored runs that are queued or running.
func (w *Worker) unfinishedRuns(ctx context.Context, conn *connector.Connector) ([]run.PipelineRun, error) {
	var out []run.PipelineRun
	for _, st := range []run.Status{run.StatusInitial, run.StatusRunning} {
		for off := 0; ; off += listPage {
			rs, _, err := w.store.ListRuns(ctx, store.RunFilter{Space: conn.Space, Status: st}, store.Page{Limit: listPage, Offset: off})
			if err != nil {
				return nil, fmt.Errorf("unfinished runs: %w", err)
			}
			for i := range rs {
				if rs[i].ConnectorID == conn.ID {
					out = append(out, rs[i])
				}
			}
			if len(rs) < listPage {
				break
			}
		}
	}
	return out, nil
}
