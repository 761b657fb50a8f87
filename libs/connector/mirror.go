package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// Outcome says what an upsert did.
type Outcome string

// Upsert outcomes.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// The id sequences mirrored runs and block runs take their ids from: the executor's, so
// that native and mirrored records share one id space.
const (
	SeqPipelineRuns = "pipeline_runs"
	SeqBlockRuns    = "block_runs"
)

// ExecutorAirflow is the executor_type of mirrored runs.
const ExecutorAirflow = "airflow"

// PipelineUUID is the uuid of the pipeline mirroring DAG dagID of a connector: a slug of the
// dag_id (Airflow allows '.', the uuid pattern does not) and a hash of both ids, so it is
// stable across syncs, unique per connector and DAG, and valid for pipeline's uuid pattern.
func PipelineUUID(connectorID, dagID string) string {
	sum := sha256.Sum256([]byte(connectorID + "\x00" + dagID))
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, dagID)
	if len(slug) > 180 {
		slug = slug[:180]
	}
	return "af_" + slug + "_" + hex.EncodeToString(sum[:6])
}

// RunCommandID is the command id of a mirrored run: its unique key in the store. dag_id
// cannot hold '/', so the parts cannot run into each other.
func RunCommandID(connectorID, dagID, runID string) string {
	return "airflow/" + connectorID + "/" + dagID + "/" + runID
}

// BlockUUID names a task instance's block run within its run: the task id, with the map
// index for a mapped task ("fan_out[3]").
func BlockUUID(taskID string, mapIndex int) string {
	if mapIndex < 0 {
		return taskID
	}
	return fmt.Sprintf("%s[%d]", taskID, mapIndex)
}

// RunStatus maps an Airflow run state onto a run status.
func RunStatus(state string) run.Status {
	switch state {
	case airflow.RunRunning:
		return run.StatusRunning
	case airflow.RunSuccess:
		return run.StatusCompleted
	case airflow.RunFailed:
		return run.StatusFailed
	}
	return run.StatusInitial // queued, or a state a later Airflow adds
}

// TaskStatus maps an Airflow task instance state onto a block-run status. Airflow's own
// state is kept in the block run's metrics (airflow_state) where the mapping loses detail.
func TaskStatus(state string) run.Status {
	switch state {
	case airflow.TaskSuccess:
		return run.StatusCompleted
	case airflow.TaskFailed:
		return run.StatusFailed
	case airflow.TaskUpstreamFailed:
		return run.StatusUpstreamFailed
	case airflow.TaskSkipped, airflow.TaskRemoved:
		return run.StatusCancelled
	case airflow.TaskRunning, airflow.TaskDeferred, airflow.TaskRestarting, airflow.TaskUpForReschedule:
		return run.StatusRunning
	case airflow.TaskQueued, airflow.TaskScheduled, airflow.TaskUpForRetry:
		return run.StatusQueued
	}
	return run.StatusInitial
}

// ms truncates to what every store keeps, so a value compares equal after a round trip.
func ms(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Millisecond)
	return &v
}

// PipelineFromDAG is the pipeline mirroring d.
func PipelineFromDAG(space, connectorID string, d airflow.DAG) *pipeline.Pipeline {
	state := pipeline.StateActive
	switch {
	case !d.IsActive:
		state = pipeline.StateInactive
	case d.IsPaused:
		state = pipeline.StatePaused
	}
	schedule := d.Schedule
	if schedule == "" {
		schedule = d.TimetableDescription
	}
	return &pipeline.Pipeline{
		Space: space, UUID: PipelineUUID(connectorID, d.DAGID), Name: d.DisplayName, Description: d.Description,
		Variables: map[string]any{}, Blocks: []pipeline.Block{}, Provider: pipeline.ProviderAirflow,
		ConnectorID: connectorID, ProviderID: d.DAGID, Owners: nonNil(d.Owners), Tags: nonNil(d.Tags), State: state,
		ScheduleDescription: schedule, ProviderMetadata: d.Raw,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RunFromDAGRun is the run mirroring r, of the pipeline pipelineUUID.
func RunFromDAGRun(space, connectorID, pipelineUUID string, r airflow.DAGRun) *run.PipelineRun {
	metrics := map[string]any{"airflow_state": r.State}
	if r.TriggeredBy != "" {
		metrics["triggered_by"] = r.TriggeredBy
	}
	if r.LogicalDate == nil {
		metrics["logical_date"] = nil
	}
	out := &run.PipelineRun{
		Space: space, PipelineUUID: pipelineUUID, CommandID: RunCommandID(connectorID, r.DAGID, r.RunID),
		ExecutionDate: *ms(timeOr(r.AnchorDate())), Status: RunStatus(r.State), StartedAt: ms(r.StartDate),
		Variables: r.Conf, EventVariables: map[string]any{}, RuntimeVariables: map[string]any{}, Metrics: metrics,
		ExecutorType: ExecutorAirflow, RunType: r.RunType, Blocks: []pipeline.Block{},
		Provider: pipeline.ProviderAirflow, ConnectorID: connectorID, ProviderRunID: r.RunID, Note: r.Note,
	}
	if out.Variables == nil {
		out.Variables = map[string]any{}
	}
	if out.Status.Terminal() {
		out.CompletedAt = ms(r.EndDate)
	}
	return out
}

func timeOr(t time.Time) *time.Time { return &t }

// BlockRunFromTI is the block run mirroring ti within run runID.
func BlockRunFromTI(space, pipelineUUID string, runID int64, ti airflow.TaskInstance) run.BlockRun {
	idx := ti.MapIndex
	metrics := map[string]any{"airflow_state": ti.State, "max_tries": float64(ti.MaxTries)}
	if ti.Operator != "" {
		metrics["operator"] = ti.Operator
	}
	if ti.RenderedMapIndex != "" {
		metrics["rendered_map_index"] = ti.RenderedMapIndex
	}
	br := run.BlockRun{
		Space: space, PipelineRunID: runID, PipelineUUID: pipelineUUID, BlockUUID: BlockUUID(ti.TaskID, ti.MapIndex),
		Status: TaskStatus(ti.State), StartedAt: ms(ti.StartDate), Metrics: metrics,
		ProviderTaskID: ti.TaskID, MapIndex: &idx, TryNumber: ti.TryNumber,
	}
	if br.Status.Terminal() {
		br.CompletedAt = ms(ti.EndDate)
	}
	return br
}

// RecordStore is what the upserts need of a store; both stores provide it.
type RecordStore interface {
	NextIDs(ctx context.Context, name string, n int64) (int64, error)
	CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error
	GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error)
	UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error)
	CreateRun(ctx context.Context, r *run.PipelineRun) error
	GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error)
	UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error)
	CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error
	BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error)
	UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error)
}

// ErrForeignRecord is returned when an upsert's key names a record of another space or
// connector.
var ErrForeignRecord = errors.New("connector: the record belongs to another space or connector")

// canon is v's JSON with map keys sorted and store-specific types (BSON documents) turned
// into plain JSON, for comparing a record with its stored copy.
func canon(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable %v", err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return string(b)
	}
	b, _ = json.Marshal(emptyIsNull(x))
	return string(b)
}

// emptyIsNull treats empty maps and lists as absent: a store may drop them (omitempty).
func emptyIsNull(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		for k, e := range x {
			x[k] = emptyIsNull(e)
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i, e := range x {
			x[i] = emptyIsNull(e)
		}
	}
	return v
}

// providerPipeline is what a sync owns of a mirrored pipeline; governance fields (team,
// criticality) and Runyard's own fields are not part of it.
func providerPipeline(p *pipeline.Pipeline) string {
	return canon([]any{p.Name, p.Description, p.Provider, p.ConnectorID, p.ProviderID, p.Owners, p.Tags, p.State, p.ScheduleDescription, p.ProviderMetadata})
}

// UpsertPipeline creates or updates the mirrored pipeline p (keyed by space and uuid, which
// PipelineUUID derives from the connector and dag_id). An update writes only the provider's
// fields, never the governance ones, and nothing at all when they are unchanged. On Created
// or Updated, p is left as stored.
func UpsertPipeline(ctx context.Context, st RecordStore, p *pipeline.Pipeline) (Outcome, error) {
	if p.Provider == "" || p.ConnectorID == "" || p.ProviderID == "" || p.UUID != PipelineUUID(p.ConnectorID, p.ProviderID) {
		return "", fmt.Errorf("connector: upsert pipeline %s: not a provider pipeline keyed by PipelineUUID", p.UUID)
	}
	for range 3 {
		updated, err := st.UpdatePipeline(ctx, p.Space, p.UUID, func(cur *pipeline.Pipeline) error {
			if cur.ConnectorID != p.ConnectorID {
				return ErrForeignRecord
			}
			if providerPipeline(cur) == providerPipeline(p) {
				return run.ErrNoChange
			}
			cur.Name, cur.Description, cur.Provider, cur.ProviderID = p.Name, p.Description, p.Provider, p.ProviderID
			cur.Owners, cur.Tags, cur.State, cur.ScheduleDescription, cur.ProviderMetadata = p.Owners, p.Tags, p.State, p.ScheduleDescription, p.ProviderMetadata
			return nil
		})
		switch {
		case err == nil:
			*p = *updated
			return Updated, nil
		case errors.Is(err, run.ErrNoChange):
			return Unchanged, nil
		case !errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("connector: upsert pipeline %s: %w", p.UUID, err)
		}
		now := store.Now()
		np := *p
		np.CreatedAt, np.UpdatedAt, np.Version = now, now, 1
		err = st.CreatePipeline(ctx, &np)
		if err == nil {
			*p = np
			return Created, nil
		}
		if !errors.Is(err, store.ErrDuplicate) {
			return "", fmt.Errorf("connector: upsert pipeline %s: %w", p.UUID, err)
		}
		// Created concurrently: update it on the next round.
	}
	return "", fmt.Errorf("connector: upsert pipeline %s: %w", p.UUID, store.ErrConflict)
}

func providerRun(r *run.PipelineRun) string {
	return canon([]any{r.Space, r.PipelineUUID, r.Status, ms(&r.ExecutionDate), ms(r.StartedAt), ms(r.CompletedAt), r.Variables, r.Metrics, r.RunType, r.ExecutorType, r.Note, r.Provider, r.ConnectorID, r.ProviderRunID})
}

// MergeRun writes the provider's fields of r onto the stored run c, leaving Runyard's own
// fields alone, or returns run.ErrNoChange when they are equal already.
func MergeRun(c, r *run.PipelineRun) error {
	if providerRun(c) == providerRun(r) {
		return run.ErrNoChange
	}
	c.PipelineUUID, c.Status, c.ExecutionDate, c.StartedAt, c.CompletedAt = r.PipelineUUID, r.Status, r.ExecutionDate, r.StartedAt, r.CompletedAt
	c.Variables, c.Metrics, c.RunType, c.ExecutorType, c.Note, c.ProviderRunID = r.Variables, r.Metrics, r.RunType, r.ExecutorType, r.Note, r.ProviderRunID
	return nil
}

// RunChanged reports whether upserting r onto the stored run c would write.
func RunChanged(c, r *run.PipelineRun) bool { return providerRun(c) != providerRun(r) }

// UpsertRun creates or updates the mirrored run r, keyed by its CommandID (RunCommandID of
// the connector, dag_id and dag_run_id), and sets r.ID to the stored run's id. A new run
// takes its id from SeqPipelineRuns; an unchanged one is not written. Run statistics count
// mirrored runs like native ones, since both go through the store's run writes.
func UpsertRun(ctx context.Context, st RecordStore, r *run.PipelineRun) (Outcome, error) {
	if r.Provider == "" || r.ConnectorID == "" || r.ProviderRunID == "" || r.CommandID == "" {
		return "", fmt.Errorf("connector: upsert run %s: not a provider run", r.CommandID)
	}
	for range 3 {
		cur, err := st.GetRunByCommand(ctx, r.CommandID)
		if err == nil {
			if cur.Space != r.Space || cur.ConnectorID != r.ConnectorID {
				return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, ErrForeignRecord)
			}
			r.ID = cur.ID
			_, err := st.UpdateRun(ctx, cur.ID, func(c *run.PipelineRun) error { return MergeRun(c, r) })
			switch {
			case err == nil:
				return Updated, nil
			case errors.Is(err, run.ErrNoChange):
				return Unchanged, nil
			}
			return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, err)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, err)
		}
		id, err := st.NextIDs(ctx, SeqPipelineRuns, 1)
		if err != nil {
			return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, err)
		}
		now := store.Now()
		nr := *r
		nr.ID, nr.CreatedAt, nr.UpdatedAt, nr.Version = id, now, now, 1
		err = st.CreateRun(ctx, &nr)
		if err == nil {
			*r = nr
			return Created, nil
		}
		if !errors.Is(err, store.ErrDuplicate) {
			return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, err)
		}
	}
	return "", fmt.Errorf("connector: upsert run %s: %w", r.CommandID, store.ErrConflict)
}

func providerBlockRun(br *run.BlockRun) string {
	return canon([]any{br.Status, ms(br.StartedAt), ms(br.CompletedAt), br.Metrics, br.ProviderTaskID, br.MapIndex, br.TryNumber})
}

// MergeBlockRun writes the provider's fields of br onto the stored block run c, or returns
// run.ErrNoChange when they are equal already.
func MergeBlockRun(c, br *run.BlockRun) error {
	if providerBlockRun(c) == providerBlockRun(br) {
		return run.ErrNoChange
	}
	c.Status, c.StartedAt, c.CompletedAt, c.Metrics = br.Status, br.StartedAt, br.CompletedAt, br.Metrics
	c.ProviderTaskID, c.MapIndex, c.TryNumber = br.ProviderTaskID, br.MapIndex, br.TryNumber
	return nil
}

// UpsertBlockRuns creates or updates the mirrored block runs of run runID (the task
// instances of one Airflow run, keyed by BlockUUID) and counts the outcomes. Block runs the
// listing lacks are left alone. Unchanged ones are not written.
func UpsertBlockRuns(ctx context.Context, st RecordStore, runID int64, brs []run.BlockRun) (Counts, error) {
	var counts Counts
	existing, err := st.BlockRunsOf(ctx, runID)
	if err != nil {
		return counts, fmt.Errorf("connector: upsert block runs of run %d: %w", runID, err)
	}
	byUUID := make(map[string]*run.BlockRun, len(existing))
	for i := range existing {
		byUUID[existing[i].BlockUUID] = &existing[i]
	}
	var fresh []run.BlockRun
	for i := range brs {
		br := &brs[i]
		br.PipelineRunID = runID
		cur, ok := byUUID[br.BlockUUID]
		if !ok {
			fresh = append(fresh, *br)
			continue
		}
		br.ID = cur.ID
		if providerBlockRun(cur) == providerBlockRun(br) {
			counts.Add(Unchanged)
			continue
		}
		_, err := st.UpdateBlockRun(ctx, cur.ID, func(c *run.BlockRun) error { return MergeBlockRun(c, br) })
		switch {
		case err == nil:
			counts.Add(Updated)
		case errors.Is(err, run.ErrNoChange):
			counts.Add(Unchanged)
		default:
			return counts, fmt.Errorf("connector: upsert block run %s of run %d: %w", br.BlockUUID, runID, err)
		}
	}
	if len(fresh) == 0 {
		return counts, nil
	}
	last, err := st.NextIDs(ctx, SeqBlockRuns, int64(len(fresh)))
	if err != nil {
		return counts, fmt.Errorf("connector: upsert block runs of run %d: %w", runID, err)
	}
	now := store.Now()
	for i := range fresh {
		fresh[i].ID = last - int64(len(fresh)) + 1 + int64(i)
		fresh[i].CreatedAt, fresh[i].UpdatedAt, fresh[i].Version = now, now, 1
	}
	// A block run created meanwhile by another writer is skipped by the store (its (run,
	// block) pair is unique), which is what an upsert of an identical record wants.
	if err := st.CreateBlockRuns(ctx, fresh); err != nil {
		return counts, fmt.Errorf("connector: upsert block runs of run %d: %w", runID, err)
	}
	for i := range fresh {
		counts.Add(Created)
		for j := range brs {
			if brs[j].BlockUUID == fresh[i].BlockUUID {
				brs[j].ID = fresh[i].ID
			}
		}
	}
	return counts, nil
}

// RunUpsert is one run of a batch upsert (a store's UpsertProviderRuns) with the block runs
// mirroring its task instances. The upsert fills in the results: Run becomes the stored run
// (with its id), BlockRuns the stored block runs, each with its outcome.
type RunUpsert struct {
	// Run is the mirrored run, keyed by its CommandID as UpsertRun's is.
	Run *run.PipelineRun
	// BlockRuns mirror the run's task instances, keyed by BlockUUID as UpsertBlockRuns' are;
	// the upsert sets their PipelineRunID. Nil leaves the run's block runs alone; stored
	// block runs the list lacks are left alone too.
	BlockRuns []run.BlockRun

	Outcome Outcome
	// Prev is the run's stored status before the upsert, empty when it was created.
	Prev run.Status
	// BlockOutcomes and BlockPrev parallel BlockRuns: what the upsert did to each, and its
	// stored status before (empty when created). A block run listed twice is stored once.
	BlockOutcomes []Outcome
	BlockPrev     []run.Status
	BlockCounts   Counts
}

// RunWrite is a run a batch creates or updates; Item indexes the batch.
type RunWrite struct {
	Item int
	// Run is the record to store: for an update, the stored run with the provider's fields
	// merged in, its version and updated_at advanced.
	Run *run.PipelineRun
	// Was is the stored run an update replaces.
	Was *run.PipelineRun
}

// BlockRunWrite is a block run a batch creates or updates.
type BlockRunWrite struct {
	// Item indexes the batch, Index the item's result's BlockRuns.
	Item, Index int
	BlockRun    *run.BlockRun
	Was         *run.BlockRun
}

// RunBatch is what a batch upsert writes, planned by PlanRuns from the stored state. A store
// reserves ids for the new records (AssignIDs), writes them, and hands the results to the
// caller (Apply) once they are stored.
type RunBatch struct {
	// Results parallel the planned items.
	Results          []RunUpsert
	NewRuns          []RunWrite
	ChangedRuns      []RunWrite
	NewBlockRuns     []BlockRunWrite
	ChangedBlockRuns []BlockRunWrite
}

// PlanRuns compares a batch with the stored runs of its command ids and the stored block
// runs of those runs, and says what upserting it writes. The items are not modified, so a
// store may plan again after a failed write.
func PlanRuns(items []RunUpsert, stored []run.PipelineRun, storedBlocks []run.BlockRun, now time.Time) (*RunBatch, error) {
	byCommand := make(map[string]*run.PipelineRun, len(stored))
	for i := range stored {
		byCommand[stored[i].CommandID] = &stored[i]
	}
	blocksOf := map[int64]map[string]*run.BlockRun{}
	for i := range storedBlocks {
		br := &storedBlocks[i]
		m := blocksOf[br.PipelineRunID]
		if m == nil {
			m = map[string]*run.BlockRun{}
			blocksOf[br.PipelineRunID] = m
		}
		m[br.BlockUUID] = br
	}
	b := &RunBatch{Results: make([]RunUpsert, len(items))}
	inBatch := make(map[string]bool, len(items))
	for k := range items {
		r := items[k].Run
		if r == nil || r.Provider == "" || r.ConnectorID == "" || r.ProviderRunID == "" || r.CommandID == "" {
			return nil, fmt.Errorf("connector: upsert runs: item %d is not a provider run", k)
		}
		if inBatch[r.CommandID] {
			return nil, fmt.Errorf("connector: upsert runs: run %s is in the batch twice", r.CommandID)
		}
		inBatch[r.CommandID] = true
		res := &b.Results[k]
		var runID int64
		if cur := byCommand[r.CommandID]; cur != nil {
			if cur.Space != r.Space || cur.ConnectorID != r.ConnectorID {
				return nil, fmt.Errorf("connector: upsert run %s: %w", r.CommandID, ErrForeignRecord)
			}
			c := *cur
			res.Run, res.Prev, runID = &c, cur.Status, cur.ID
			if err := MergeRun(&c, r); err != nil {
				res.Outcome = Unchanged
			} else {
				c.Version, c.UpdatedAt = cur.Version+1, now
				res.Outcome = Updated
				b.ChangedRuns = append(b.ChangedRuns, RunWrite{Item: k, Run: &c, Was: cur})
			}
		} else {
			nr := *r
			nr.ID, nr.CreatedAt, nr.UpdatedAt, nr.Version = 0, now, now, 1
			res.Run, res.Outcome = &nr, Created
			b.NewRuns = append(b.NewRuns, RunWrite{Item: k, Run: &nr})
		}
		if items[k].BlockRuns != nil {
			b.planBlockRuns(k, runID, items[k].BlockRuns, blocksOf[runID], now)
		}
	}
	return b, nil
}

func (b *RunBatch) planBlockRuns(k int, runID int64, brs []run.BlockRun, existing map[string]*run.BlockRun, now time.Time) {
	res := &b.Results[k]
	// Capacities are final: the writes below point into these arrays.
	res.BlockRuns = make([]run.BlockRun, 0, len(brs))
	res.BlockOutcomes = make([]Outcome, 0, len(brs))
	res.BlockPrev = make([]run.Status, 0, len(brs))
	listed := make(map[string]bool, len(brs))
	for i := range brs {
		br := brs[i]
		if listed[br.BlockUUID] {
			continue // offset paging over a changing listing can return a row twice
		}
		listed[br.BlockUUID] = true
		br.PipelineRunID = runID
		var o Outcome
		var prev run.Status
		var was *run.BlockRun
		if cur := existing[br.BlockUUID]; cur != nil {
			c := *cur
			if err := MergeBlockRun(&c, &br); err != nil {
				o = Unchanged
			} else {
				c.Version, c.UpdatedAt = cur.Version+1, now
				o, was = Updated, cur
			}
			br, prev = c, cur.Status
		} else {
			br.ID, br.CreatedAt, br.UpdatedAt, br.Version = 0, now, now, 1
			o = Created
		}
		res.BlockRuns = append(res.BlockRuns, br)
		res.BlockOutcomes = append(res.BlockOutcomes, o)
		res.BlockPrev = append(res.BlockPrev, prev)
		at := len(res.BlockRuns) - 1
		switch o {
		case Created:
			b.NewBlockRuns = append(b.NewBlockRuns, BlockRunWrite{Item: k, Index: at, BlockRun: &res.BlockRuns[at]})
		case Updated:
			b.ChangedBlockRuns = append(b.ChangedBlockRuns, BlockRunWrite{Item: k, Index: at, BlockRun: &res.BlockRuns[at], Was: was})
		}
	}
}

// AssignIDs numbers the new runs and block runs from the ids reserved for them: lastRun is
// the last of len(NewRuns) ids of SeqPipelineRuns, lastBlock the last of len(NewBlockRuns)
// of SeqBlockRuns, as NextIDs returns them.
func (b *RunBatch) AssignIDs(lastRun, lastBlock int64) {
	for i, w := range b.NewRuns {
		w.Run.ID = lastRun - int64(len(b.NewRuns)) + 1 + int64(i)
	}
	for i, w := range b.NewBlockRuns {
		w.BlockRun.ID = lastBlock - int64(len(b.NewBlockRuns)) + 1 + int64(i)
	}
	for k := range b.Results {
		res := &b.Results[k]
		for i := range res.BlockRuns {
			res.BlockRuns[i].PipelineRunID = res.Run.ID
		}
	}
}

// Apply hands the results to the items, except to those skip names (nil skips none).
func (b *RunBatch) Apply(items []RunUpsert, skip map[int]bool) {
	for k := range b.Results {
		if skip[k] {
			continue
		}
		res := b.Results[k]
		*items[k].Run = *res.Run
		items[k].Outcome, items[k].Prev = res.Outcome, res.Prev
		items[k].BlockCounts = Counts{}
		for _, o := range res.BlockOutcomes {
			items[k].BlockCounts.Add(o)
		}
		if items[k].BlockRuns != nil {
			items[k].BlockRuns, items[k].BlockOutcomes, items[k].BlockPrev = res.BlockRuns, res.BlockOutcomes, res.BlockPrev
		}
	}
}

// CommandIDs lists the command ids of a batch, to read their stored runs with.
func CommandIDs(items []RunUpsert) []string {
	ids := make([]string, len(items))
	for k := range items {
		if items[k].Run != nil {
			ids[k] = items[k].Run.CommandID
		}
	}
	return ids
}

// BlockRunsToRead lists the stored runs among stored whose block runs a batch upserts.
func BlockRunsToRead(items []RunUpsert, stored []run.PipelineRun) []int64 {
	want := make(map[string]bool, len(items))
	for k := range items {
		if items[k].Run != nil && items[k].BlockRuns != nil {
			want[items[k].Run.CommandID] = true
		}
	}
	var ids []int64
	for i := range stored {
		if want[stored[i].CommandID] {
			ids = append(ids, stored[i].ID)
		}
	}
	return ids
}
