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
// fields, never the governance ones, and nothing at all when they are unchanged.
func UpsertPipeline(ctx context.Context, st RecordStore, p *pipeline.Pipeline) (Outcome, error) {
	if p.Provider == "" || p.ConnectorID == "" || p.ProviderID == "" || p.UUID != PipelineUUID(p.ConnectorID, p.ProviderID) {
		return "", fmt.Errorf("connector: upsert pipeline %s: not a provider pipeline keyed by PipelineUUID", p.UUID)
	}
	for range 3 {
		_, err := st.UpdatePipeline(ctx, p.Space, p.UUID, func(cur *pipeline.Pipeline) error {
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
			_, err := st.UpdateRun(ctx, cur.ID, func(c *run.PipelineRun) error {
				if providerRun(c) == providerRun(r) {
					return run.ErrNoChange
				}
				c.PipelineUUID, c.Status, c.ExecutionDate, c.StartedAt, c.CompletedAt = r.PipelineUUID, r.Status, r.ExecutionDate, r.StartedAt, r.CompletedAt
				c.Variables, c.Metrics, c.RunType, c.ExecutorType, c.Note, c.ProviderRunID = r.Variables, r.Metrics, r.RunType, r.ExecutorType, r.Note, r.ProviderRunID
				return nil
			})
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
		_, err := st.UpdateBlockRun(ctx, cur.ID, func(c *run.BlockRun) error {
			if providerBlockRun(c) == providerBlockRun(br) {
				return run.ErrNoChange
			}
			c.Status, c.StartedAt, c.CompletedAt, c.Metrics = br.Status, br.StartedAt, br.CompletedAt, br.Metrics
			c.ProviderTaskID, c.MapIndex, c.TryNumber = br.ProviderTaskID, br.MapIndex, br.TryNumber
			return nil
		})
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
