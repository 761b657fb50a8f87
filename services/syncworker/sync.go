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

	s := &syncer{w: w, conn: conn, job: job, start: start, log: log, fetches: make(chan struct{}, w.cfg.Fetches)}
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
	// fetches bounds the Airflow reads of the sync in flight at once (Fetches).
	fetches chan struct{}
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
			s.pipelineChanged(ctx, o, p)
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
			s.pipelineChanged(ctx, o, &p)
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

// pipelineChanged announces a mirrored pipeline the sync created or changed.
func (s *syncer) pipelineChanged(ctx context.Context, o connector.Outcome, p *pipeline.Pipeline) {
	if o == connector.Created || o == connector.Updated {
		s.w.publish(ctx, natsbus.PipelineUpdatedSubject(p.Space, p.UUID), event.PipelineUpdated(p))
	}
}

// pagesInFlight is how many pages of runs a sync handles at once: while one page's writes
// wait for the store, the next pages' task instances are read.
const pagesInFlight = 4

// runsPerBatch is how many runs a repoll or a poll reads by id and stores together.
const runsPerBatch = 100

// pageRun is a DAG run to mirror and the pipeline mirroring its DAG.
type pageRun struct {
	uuid string
	dr   airflow.DAGRun
}

// runRef names a mirrored run to read again from Airflow.
type runRef struct {
	uuid, dagID, runID string
}

// syncRuns mirrors the runs Airflow reports changed (the lookback window on a first sync),
// then re-reads by id the stored runs still unfinished that the listing did not return,
// since offset paging over a changing set can skip a row. Each page of runs is stored in one
// batch with the task instances of its runs that are new, changed or unfinished; pages are
// handled pagesInFlight at once and their task-instance listings Fetches at once, so
// Airflow's answers and the store's writes overlap.
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
	p := newPool(ctx, pagesInFlight)
	seen := map[string]bool{}
	err := client.EachDAGRunPage(p.ctx, airflow.AllDAGs, f, func(page []airflow.DAGRun) error {
		runs := make([]pageRun, 0, len(page))
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
			runs = append(runs, pageRun{uuid: uuid, dr: dr})
		}
		if len(runs) == 0 {
			return nil
		}
		return p.submit(func(ctx context.Context) error { return s.mirrorRuns(ctx, client, runs, rereadAll) })
	})
	if err != nil {
		if perr := p.wait(); perr != nil {
			return perr
		}
		return fmt.Errorf("list dag runs: %w", err)
	}
	if s.incremental {
		if err := s.repoll(p, client, uuids, seen, rereadAll); err != nil {
			_ = p.wait()
			return err
		}
	}
	return p.wait()
}

// repoll re-reads by id the connector's unfinished runs that the listing did not return.
func (s *syncer) repoll(p *pool, client *airflow.Client, uuids map[string]string, seen map[string]bool, rereadAll bool) error {
	unfinished, err := s.w.unfinishedRuns(p.ctx, s.conn)
	if err != nil {
		return err
	}
	dagOf := make(map[string]string, len(uuids))
	for dag, uuid := range uuids {
		dagOf[uuid] = dag
	}
	var refs []runRef
	for i := range unfinished {
		r := &unfinished[i]
		dagID := dagOf[r.PipelineUUID]
		if seen[r.CommandID] || dagID == "" {
			continue
		}
		refs = append(refs, runRef{uuid: uuids[dagID], dagID: dagID, runID: r.ProviderRunID})
	}
	for start := 0; start < len(refs); start += runsPerBatch {
		chunk := refs[start:min(start+runsPerBatch, len(refs))]
		err := p.submit(func(ctx context.Context) error {
			runs, err := s.getRuns(ctx, client, chunk)
			if err != nil {
				return err
			}
			return s.mirrorRuns(ctx, client, runs, rereadAll)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// getRuns reads runs by id, Fetches at once; a run deleted in Airflow with its DAG is left
// out, and its mirror keeps its last state.
func (s *syncer) getRuns(ctx context.Context, client *airflow.Client, refs []runRef) ([]pageRun, error) {
	got := make([]*airflow.DAGRun, len(refs))
	err := s.fanOut(ctx, len(refs), func(ctx context.Context, i int) error {
		dr, err := client.GetDAGRun(ctx, refs[i].dagID, refs[i].runID)
		if errors.Is(err, airflow.ErrNotFound) {
			return nil
		} else if err != nil {
			return fmt.Errorf("get dag run %s of %s: %w", refs[i].runID, refs[i].dagID, err)
		}
		got[i] = dr
		return nil
	})
	if err != nil {
		return nil, err
	}
	runs := make([]pageRun, 0, len(refs))
	for i, dr := range got {
		if dr != nil {
			runs = append(runs, pageRun{uuid: refs[i].uuid, dr: *dr})
		}
	}
	return runs, nil
}

// fanOut runs fn for 0..n-1, at most Fetches at once across the sync (the fetches
// semaphore is shared by the pages in flight); the first error cancels the rest.
func (s *syncer) fanOut(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	for i := range n {
		acquired := false
		select {
		case s.fetches <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			if acquired {
				<-s.fetches
			}
			fail(ctx.Err())
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-s.fetches; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	return first
}

// mirrorRuns stores a batch of runs, with the task instances of those that are new, changed
// or unfinished (of all with rereadAll), in one store call. On an incremental sync the
// status changes are published as the same events a native run's are.
func (s *syncer) mirrorRuns(ctx context.Context, client *airflow.Client, runs []pageRun, rereadAll bool) error {
	recs := make([]*run.PipelineRun, len(runs))
	ids := make([]string, len(runs))
	for i := range runs {
		recs[i] = connector.RunFromDAGRun(s.conn.Space, s.conn.ID, runs[i].uuid, runs[i].dr)
		ids[i] = recs[i].CommandID
	}
	need := make([]bool, len(runs))
	var skipped int64 // stored already, unchanged and finished: nothing to read or write
	if rereadAll {
		for i := range need {
			need[i] = true
		}
	} else {
		stored, err := s.w.store.GetRunsByCommands(ctx, ids...)
		if err != nil {
			return err
		}
		byCommand := make(map[string]*run.PipelineRun, len(stored))
		for i := range stored {
			byCommand[stored[i].CommandID] = &stored[i]
		}
		for i, r := range recs {
			cur := byCommand[r.CommandID]
			need[i] = cur == nil || connector.RunChanged(cur, r) || !r.Status.Terminal()
			if !need[i] {
				skipped++
			}
		}
	}
	items := make([]connector.RunUpsert, 0, len(runs))
	at := make([]int, 0, len(runs)) // the run of each item
	for i, r := range recs {
		if need[i] {
			items = append(items, connector.RunUpsert{Run: r})
			at = append(at, i)
		}
	}
	err := s.fanOut(ctx, len(items), func(ctx context.Context, k int) error {
		dr := &runs[at[k]].dr
		tis, err := client.ListTaskInstances(ctx, dr.DAGID, dr.RunID)
		if err != nil {
			return fmt.Errorf("list task instances of %s/%s: %w", dr.DAGID, dr.RunID, err)
		}
		brs := make([]run.BlockRun, len(tis))
		for j, ti := range tis {
			brs[j] = connector.BlockRunFromTI(s.conn.Space, items[k].Run.PipelineUUID, 0, ti)
		}
		items[k].BlockRuns = brs
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.w.store.UpsertProviderRuns(ctx, items); err != nil {
		return err
	}
	s.add(func(j *connector.SyncJob) {
		j.Runs.Seen += skipped
		for k := range items {
			j.Runs.Add(items[k].Outcome)
			c := items[k].BlockCounts
			j.TaskRuns.Seen += c.Seen
			j.TaskRuns.Created += c.Created
			j.TaskRuns.Updated += c.Updated
		}
	})
	if s.incremental {
		for k := range items {
			it := &items[k]
			if it.Outcome != connector.Unchanged && it.Prev != it.Run.Status {
				s.w.emitRun(ctx, it.Run)
			}
			for j := range it.BlockRuns {
				br := &it.BlockRuns[j]
				if o := it.BlockOutcomes[j]; o == connector.Created || o == connector.Updated && it.BlockPrev[j] != br.Status {
					s.w.emitBlockRun(ctx, it.Run, br)
				}
			}
		}
	}
	s.flush(ctx, false)
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

// add applies a change to the job's counts.
func (s *syncer) add(fn func(*connector.SyncJob)) {
	s.mu.Lock()
	fn(s.job)
	s.mu.Unlock()
}

// flush writes the job's counts when progressEvery has passed since the last write, or at
// once with force, so that a client polling the job sees it advance.
func (s *syncer) flush(ctx context.Context, force bool) {
	if s.job.ID == "" {
		return // a poll: it has no job
	}
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
