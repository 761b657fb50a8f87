package airflowtest

import (
	"fmt"
	"slices"
	"time"
)

type taskDef struct {
	id       string
	operator string
	mapped   int // map indices; 0 = not mapped
}

type dag struct {
	id          string
	description string
	owners      []string
	tags        []string
	// interval is the schedule; cron is its text ("" with interval 0: no schedule).
	interval   time.Duration
	cron       string
	paused     bool
	stale      bool // the file is gone: v1 is_active false, v2 is_stale true
	importErrs bool
	lastParsed time.Time
	created    time.Time
	tasks      []taskDef
	runs       []*dagRun // by pk
	versionID  string
}

type dagRun struct {
	pk          int
	runID       string
	logical     *time.Time
	runAfter    time.Time
	queuedAt    time.Time
	start, end  *time.Time
	state       string
	runType     string
	triggeredBy string
	conf        map[string]any
	note        *string
	updatedAt   time.Time
	tis         []*taskInstance
}

type taskInstance struct {
	taskID     string
	operator   string
	mapIndex   int
	try        int
	maxTries   int
	state      *string
	start, end *time.Time
	queued     *time.Time
	hostname   string
	pid        *int
	uuid       string
	updatedAt  time.Time
}

var (
	tagPool   = []string{"etl", "finance", "ml", "reporting", "critical"}
	ownerPool = [][]string{{"airflow"}, {"data-eng"}, {"data-eng", "alice"}, {"analytics"}}
	operators = []string{"PythonOperator", "BashOperator", "SQLExecuteQueryOperator", "EmptyOperator"}
)

func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// generate builds the initial data: DAGs with schedules, owners, tags, a mapped task, and
// finished and unfinished runs back from the data's clock.
func (s *Server) generate() {
	now := s.now()
	for i := range s.cfg.DAGs {
		id := fmt.Sprintf("dag_%04d", i)
		if i%10 == 7 {
			id = fmt.Sprintf("team_%d.pipeline_%04d", i%3, i)
		}
		d := s.newDAG(id, i, now)
		s.addDAG(d)
		for k := s.cfg.RunsPerDAG; k >= 1; k-- {
			var at time.Time
			runType := "scheduled"
			if d.interval > 0 {
				at = now.Add(-time.Duration(k) * d.interval).Truncate(d.interval)
			} else {
				at = now.Add(-time.Duration(k) * 3 * time.Hour).Truncate(time.Second)
				runType = "manual"
			}
			state := "success"
			switch {
			case k == 1 && i%3 == 0:
				state = "running"
			case k == 1 && i%3 == 1 && !d.paused:
				state = "queued"
			case k == 1 && d.paused:
				state = "queued"
			case (i+k)%6 == 0:
				state = "failed"
			}
			s.addRun(d, runType, &at, state, at.Add(time.Minute))
		}
	}
}

func (s *Server) newDAG(id string, i int, now time.Time) *dag {
	d := &dag{
		id: id, description: fmt.Sprintf("Generated DAG %s", id), owners: ownerPool[i%len(ownerPool)],
		created: now.Add(-90 * 24 * time.Hour), lastParsed: now.Add(-time.Duration(i%30) * time.Second), versionID: s.uuid(),
	}
	if i%len(tagPool) != 4 {
		d.tags = []string{tagPool[i%len(tagPool)]}
		if i%2 == 0 {
			d.tags = append(d.tags, tagPool[(i+2)%len(tagPool)])
		}
		slices.Sort(d.tags)
		d.tags = slices.Compact(d.tags)
	}
	switch i % 4 {
	case 0:
		d.interval, d.cron = time.Hour, "0 * * * *"
	case 1:
		d.interval, d.cron = 24*time.Hour, "0 0 * * *"
	case 2:
		d.interval = 6 * time.Hour // a timedelta schedule
	}
	d.paused = i%9 == 8
	for t := range s.cfg.TasksPerDAG {
		td := taskDef{id: fmt.Sprintf("task_%d", t), operator: operators[(i+t)%len(operators)]}
		if t == 1 && s.cfg.MappedTasks > 0 {
			td.id, td.mapped = "fan_out", s.cfg.MappedTasks
		}
		d.tasks = append(d.tasks, td)
	}
	return d
}

func (s *Server) addDAG(d *dag) {
	s.dags[d.id] = d
	s.order = append(s.order, d.id)
}

func (s *Server) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x70 // version 7, as Airflow 3's ids
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// isoformat is Python's datetime.isoformat of a UTC time, which Airflow uses in run ids.
func isoformat(t time.Time) string {
	if t.Nanosecond()/1000 != 0 {
		return t.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00"
	}
	return t.UTC().Format("2006-01-02T15:04:05") + "+00:00"
}

// addRun creates a run in state and task instances to match; at stamps it.
func (s *Server) addRun(d *dag, runType string, logical *time.Time, state string, at time.Time) *dagRun {
	s.nextRunPK++
	runAfter := at
	if logical != nil {
		runAfter = *logical
	}
	r := &dagRun{pk: s.nextRunPK, logical: logical, runAfter: runAfter, queuedAt: at, state: "queued", runType: runType, conf: map[string]any{}, updatedAt: at}
	// Run ids are unique per DAG: a second run at the same instant gets the next microsecond.
	idAt := runAfter
	for r.runID = runType + "__" + isoformat(idAt); s.findRun(d.id, r.runID) != nil; r.runID = runType + "__" + isoformat(idAt) {
		idAt = idAt.Add(time.Microsecond)
	}
	switch runType {
	case "scheduled":
		r.triggeredBy = "timetable"
	case "manual":
		r.triggeredBy = "rest_api"
	default:
		r.triggeredBy = "operator"
	}
	for _, td := range d.tasks {
		idx := []int{-1}
		if td.mapped > 0 {
			idx = idx[:0]
			for m := range td.mapped {
				idx = append(idx, m)
			}
		}
		for _, m := range idx {
			r.tis = append(r.tis, &taskInstance{taskID: td.id, operator: td.operator, mapIndex: m, maxTries: 2, uuid: s.uuid(), updatedAt: at})
		}
	}
	d.runs = append(d.runs, r)
	s.setRunState(r, state, at)
	return r
}

func strp(s string) *string { return &s }

func timep(t time.Time) *time.Time { return &t }

// setRunState moves r to state and its task instances with it, stamping both with at.
// Some task instances of finished runs took a retry (try_number 2); a failed run has one
// task that used all its tries and upstream_failed tasks after it.
func (s *Server) setRunState(r *dagRun, state string, at time.Time) {
	r.state = state
	r.updatedAt = at
	switch state {
	case "queued":
		r.start, r.end = nil, nil
	case "running":
		if r.start == nil {
			r.start = timep(at)
		}
		r.end = nil
	default:
		if r.start == nil {
			r.start = timep(at.Add(-time.Minute))
		}
		r.end = timep(at)
	}
	failedAt := -1
	if state == "failed" {
		failedAt = len(r.tis) / 2
	}
	for i, ti := range r.tis {
		old := ti.state
		oldTry := ti.try
		switch state {
		case "queued":
			ti.state, ti.try, ti.start, ti.end, ti.queued = nil, 0, nil, nil, nil
		case "running":
			switch {
			case i == 0:
				s.finishTI(ti, "success", 1, r.start, at)
			case i == 1:
				ti.state, ti.try = strp("running"), max(ti.try, 1)
				ti.queued, ti.start, ti.end = timep(*r.start), timep(*r.start), nil
				ti.hostname = "worker-1"
			default:
				ti.state, ti.try, ti.start, ti.end = nil, 0, nil, nil
			}
		case "success":
			try := 1
			if (r.pk+i)%5 == 0 {
				try = 2 // succeeded on its retry
			}
			s.finishTI(ti, "success", max(try, ti.try), r.start, at)
		case "failed":
			switch {
			case i < failedAt:
				s.finishTI(ti, "success", max(1, ti.try), r.start, at)
			case i == failedAt:
				s.finishTI(ti, "failed", ti.maxTries+1, r.start, at)
			default:
				ti.state, ti.try, ti.start, ti.end = strp("upstream_failed"), 0, nil, timep(at)
			}
		}
		if !samePtr(old, ti.state) || oldTry != ti.try {
			ti.updatedAt = at
			if oldTry != ti.try && oldTry != 0 {
				// Airflow 3 gives every new try a new task instance id.
				ti.uuid = s.uuid()
			}
		}
	}
}

func (s *Server) finishTI(ti *taskInstance, state string, try int, runStart *time.Time, at time.Time) {
	start := at.Add(-30 * time.Second)
	if runStart != nil && runStart.After(start) {
		start = *runStart
	}
	ti.state, ti.try = strp(state), try
	ti.queued, ti.start, ti.end = timep(start), timep(start), timep(at)
	ti.hostname = "worker-1"
	pid := 4000 + len(ti.taskID)
	ti.pid = &pid
}

func samePtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ---- mutation between syncs ----

// Advance is the outcome of Step.
type Advance struct {
	NewRuns     int
	ChangedRuns int
}

// Step moves the data on as a running Airflow would between two syncs: unfinished runs of
// unpaused DAGs progress (queued → running → success or failed), and each unpaused,
// scheduled DAG gets its next run, queued. Paused DAGs' runs stay as they are. Every change
// is stamped with the data's clock.
func (s *Server) Step() Advance {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.now()
	var a Advance
	for _, id := range s.order {
		d := s.dags[id]
		if d.paused || d.stale {
			continue
		}
		for _, r := range d.runs {
			switch r.state {
			case "queued":
				s.setRunState(r, "running", at)
				a.ChangedRuns++
			case "running":
				end := "success"
				if s.rng.IntN(8) == 0 {
					end = "failed"
				}
				s.setRunState(r, end, at)
				a.ChangedRuns++
			}
		}
		if d.interval > 0 {
			next := at.Truncate(d.interval)
			if last := d.lastLogical(); last != nil && !next.After(*last) {
				next = last.Add(d.interval)
			}
			s.addRun(d, "scheduled", &next, "queued", at)
			a.NewRuns++
		}
	}
	return a
}

func (d *dag) lastLogical() *time.Time {
	var last *time.Time
	for _, r := range d.runs {
		if r.logical != nil && (last == nil || r.logical.After(*last)) {
			last = r.logical
		}
	}
	return last
}

// AddRun adds a run of dagID in state with a logical date of the data's clock, as a
// scheduler or a user would, and returns its run id.
func (s *Server) AddRun(dagID, state string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dags[dagID]
	if !ok {
		return "", fmt.Errorf("airflowtest: no dag %s", dagID)
	}
	at := s.now()
	r := s.addRun(d, "manual", timep(at), state, at)
	return r.runID, nil
}

// SetRunState changes a run's state (and its task instances with it).
func (s *Server) SetRunState(dagID, runID, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.findRun(dagID, runID)
	if r == nil {
		return fmt.Errorf("airflowtest: no run %s of %s", runID, dagID)
	}
	s.setRunState(r, state, s.now())
	return nil
}

// PauseDAG pauses or unpauses a DAG.
func (s *Server) PauseDAG(dagID string, paused bool) error {
	return s.withDAG(dagID, func(d *dag) { d.paused = paused })
}

// RemoveDAGFile marks a DAG's file as gone: it stays listed (v1 is_active false, v2 is_stale
// true) but cannot be triggered.
func (s *Server) RemoveDAGFile(dagID string) error {
	return s.withDAG(dagID, func(d *dag) { d.stale = true })
}

// SetImportErrors marks a DAG as failing to import, which refuses triggers with 400.
func (s *Server) SetImportErrors(dagID string, broken bool) error {
	return s.withDAG(dagID, func(d *dag) { d.importErrs = broken })
}

// DeleteDAG removes a DAG and its runs, as DELETE /dags/{dag_id} does: it vanishes.
func (s *Server) DeleteDAG(dagID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.dags[dagID]; !ok {
		return fmt.Errorf("airflowtest: no dag %s", dagID)
	}
	delete(s.dags, dagID)
	s.order = slices.DeleteFunc(s.order, func(id string) bool { return id == dagID })
	return nil
}

func (s *Server) withDAG(dagID string, fn func(*dag)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dags[dagID]
	if !ok {
		return fmt.Errorf("airflowtest: no dag %s", dagID)
	}
	fn(d)
	d.lastParsed = s.now()
	return nil
}

func (s *Server) findRun(dagID, runID string) *dagRun {
	d, ok := s.dags[dagID]
	if !ok {
		return nil
	}
	for _, r := range d.runs {
		if r.runID == runID {
			return r
		}
	}
	return nil
}

// ---- inspection for tests ----

// RunInfo describes a run as the fake holds it.
type RunInfo struct {
	DAGID, RunID, State string
	TaskInstances       int
	UpdatedAt           time.Time
}

// DAGIDs lists the DAGs in creation order.
func (s *Server) DAGIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

// Runs lists every run of every DAG.
func (s *Server) Runs() []RunInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RunInfo
	for _, id := range s.order {
		for _, r := range s.dags[id].runs {
			out = append(out, RunInfo{DAGID: id, RunID: r.runID, State: r.state, TaskInstances: len(r.tis), UpdatedAt: r.updatedAt})
		}
	}
	return out
}

// Counts returns how many DAGs, runs and task instances the server holds.
func (s *Server) Counts() (dags, runs, tis int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dags {
		dags++
		runs += len(d.runs)
		for _, r := range d.runs {
			tis += len(r.tis)
		}
	}
	return dags, runs, tis
}
