package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Orchestration runs: a pipeline's runs, one run with its task runs (a native run's block
// runs), and the trigger of a pipeline.

// runTypes are the run types a run list filters on: Runyard's and Airflow's.
var runTypes = []string{run.TypeAPI, run.TypeScheduled, run.TypeManual, run.TypeBackfill, run.TypeAssetTriggered, run.TypeDatasetTriggered}

// maxNoteLen bounds a trigger's note.
const maxNoteLen = 4000

// qRun is a pipeline run as the orchestration API shows it.
type qRun struct {
	ID              int64          `json:"id"`
	PipelineID      string         `json:"pipeline_id"`
	Status          run.Status     `json:"status"`
	RunType         string         `json:"run_type"`
	StartedAt       *time.Time     `json:"started_at"`
	EndedAt         *time.Time     `json:"ended_at"`
	DurationSeconds *float64       `json:"duration_seconds"`
	ExecutionDate   time.Time      `json:"execution_date"`
	Conf            map[string]any `json:"conf"`
	Provider        string         `json:"provider"`
	ProviderRunID   *string        `json:"provider_run_id"`
	ConnectorID     *string        `json:"connector_id"`
	Note            *string        `json:"note"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	// TaskRuns is set on a single run, never in lists.
	TaskRuns []qTaskRun `json:"task_runs,omitempty"`
}

// qTaskRun is one task execution within a run: a native block run, or a mirrored task
// instance.
type qTaskRun struct {
	ID              int64      `json:"id"`
	RunID           int64      `json:"run_id"`
	TaskID          string     `json:"task_id"`
	Name            string     `json:"name"`
	Status          run.Status `json:"status"`
	StartedAt       *time.Time `json:"started_at"`
	EndedAt         *time.Time `json:"ended_at"`
	DurationSeconds *float64   `json:"duration_seconds"`
	// TryNumber is the attempts made, retries included: a native block run's once it ended
	// (0 before), a mirrored task's try number.
	TryNumber      int     `json:"try_number"`
	MapIndex       *int    `json:"map_index"`
	ProviderTaskID *string `json:"provider_task_id"`
	LogURL         string  `json:"log_url"`
}

func duration(from, to *time.Time) *float64 {
	if from == nil || to == nil {
		return nil
	}
	d := to.Sub(*from).Seconds()
	return &d
}

func presentOrchestrationRun(r *run.PipelineRun) qRun {
	provider := r.Provider
	if provider == "" {
		provider = pipeline.ProviderNative
	}
	conf := r.Variables
	if conf == nil {
		conf = map[string]any{}
	}
	return qRun{
		ID: r.ID, PipelineID: r.PipelineUUID, Status: r.Status, RunType: r.RunType,
		StartedAt: r.StartedAt, EndedAt: r.CompletedAt, DurationSeconds: duration(r.StartedAt, r.CompletedAt),
		ExecutionDate: r.ExecutionDate, Conf: conf, Provider: provider, ProviderRunID: optional(r.ProviderRunID),
		ConnectorID: optional(r.ConnectorID), Note: optional(r.Note), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// presentTaskRuns renders a run's block runs in the order of its DAG's blocks as they were
// when it was created.
func presentTaskRuns(r *run.PipelineRun, brs []run.BlockRun) []qTaskRun {
	names := make(map[string]string, len(r.Blocks))
	order := make(map[string]int, len(r.Blocks))
	for i, b := range r.Blocks {
		names[b.UUID], order[b.UUID] = b.Name, i
	}
	out := make([]qTaskRun, 0, len(brs))
	for i := range brs {
		br := &brs[i]
		taskID, name := br.BlockUUID, names[br.BlockUUID]
		if br.ProviderTaskID != "" {
			taskID = br.ProviderTaskID
		}
		if name == "" {
			name = taskID
		}
		try := br.TryNumber
		if try == 0 {
			try = attempts(br.Metrics["attempts"])
		}
		out = append(out, qTaskRun{
			ID: br.ID, RunID: br.PipelineRunID, TaskID: taskID, Name: name, Status: br.Status,
			StartedAt: br.StartedAt, EndedAt: br.CompletedAt, DurationSeconds: duration(br.StartedAt, br.CompletedAt),
			TryNumber: try, MapIndex: br.MapIndex, ProviderTaskID: optional(br.ProviderTaskID),
			LogURL: fmt.Sprintf("/api/block_runs/%d/logs", br.ID),
		})
	}
	slices.SortStableFunc(out, func(a, b qTaskRun) int {
		oa, aok := order[a.TaskID]
		ob, bok := order[b.TaskID]
		if aok && bok && oa != ob {
			return oa - ob
		}
		return int(a.ID - b.ID)
	})
	return out
}

// attempts reads a native block run's attempt count from its metrics, as whichever number
// type the store decoded it to.
func attempts(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int32:
		return int(n)
	case int64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// readRunFilter reads a run list's filters; every bad value is a 422 naming its parameter.
func readRunFilter(c *fiber.Ctx, space, pipelineUUID string) (store.RunFilter, error) {
	var errs validation.Errors
	f := store.RunFilter{Space: space, PipelineUUID: pipelineUUID}
	statuses := make([]string, len(runStatuses))
	for i, s := range runStatuses {
		statuses[i] = string(s)
	}
	f.Status = run.Status(oneOf(c, "status", statuses, &errs))
	f.RunType = oneOf(c, "run_type", runTypes, &errs)
	bound := func(name string) *time.Time {
		v := c.Query(name)
		if v == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs.Add(name, "must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z")
			return nil
		}
		t = t.UTC()
		return &t
	}
	f.StartedFrom, f.StartedTo = bound("started_from"), bound("started_to")
	if f.StartedFrom != nil && f.StartedTo != nil && f.StartedFrom.After(*f.StartedTo) {
		errs.Add("started_from", "must not be after started_to")
	}
	return f, inQuery(errs.Err())
}

// listOrchestrationRuns answers GET .../orchestration/pipelines/:pipeline_id/runs: newest
// execution date first, or, with started_from or started_to, newest start first.
func (g *Gateway) listOrchestrationRuns(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	f, ferr := readRunFilter(c, slug, c.Params("pipeline_id"))
	p, perr := readListPage(c)
	if err := joinQueryErrors(ferr, perr); err != nil {
		return err
	}
	if _, err := g.loadSpacePipeline(c, slug); err != nil {
		return err
	}
	runs, total, err := g.store.ListRuns(c.UserContext(), f, p.Store())
	if err != nil {
		return err
	}
	out := make([]qRun, len(runs))
	for i := range runs {
		out[i] = presentOrchestrationRun(&runs[i])
	}
	return writeList(c, p, out, total)
}

// getOrchestrationRun answers GET .../orchestration/runs/:run_id with the run's task runs. A
// run of another space is answered as a missing one.
func (g *Gateway) getOrchestrationRun(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	v := c.Params("run_id")
	notFound := qNotFound("run %s not found", v)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return notFound
	}
	ctx := c.UserContext()
	r, err := g.store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.Space != slug) {
		return notFound
	} else if err != nil {
		return err
	}
	brs, err := g.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return err
	}
	return c.JSON(runWithTasks(r, brs))
}

func runWithTasks(r *run.PipelineRun, brs []run.BlockRun) qRun {
	out := presentOrchestrationRun(r)
	out.TaskRuns = presentTaskRuns(r, brs)
	return out
}

// triggerBody is the optional body of a trigger: the run's variables (Airflow's conf) and a
// note on the run.
type triggerBody struct {
	Conf map[string]any `json:"conf"`
	Note *string        `json:"note"`
}

// triggerOrchestrationPipeline answers POST .../orchestration/pipelines/:pipeline_id/trigger,
// for an editor: 201 with the run, 202 with the command when the executor has not answered in
// time, 409 when the pipeline cannot be triggered.
func (g *Gateway) triggerOrchestrationPipeline(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	var body triggerBody
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		if err := decodeBody(c, &body); err != nil {
			return err
		}
	}
	if body.Note != nil && len(*body.Note) > maxNoteLen {
		return validation.New("note", "must be at most %d characters", maxNoteLen)
	}
	p, err := g.loadSpacePipeline(c, slug)
	if err != nil {
		return err
	}
	if p.State == pipeline.StateInactive {
		return qConflict("pipeline %s is inactive: it is gone from its provider and cannot be triggered", p.UUID)
	}
	return g.triggerProvider(c, p, body)
}

// triggerProvider triggers a run of p where p runs: the executor for native pipelines; the
// pipeline's connector for provider-backed ones, whose errors answer with the provider's
// status and message.
func (g *Gateway) triggerProvider(c *fiber.Ctx, p *pipeline.Pipeline, body triggerBody) error {
	switch p.Provider {
	case "", pipeline.ProviderNative:
		return g.triggerNative(c, p, body)
	case pipeline.ProviderAirflow:
		return g.triggerAirflow(c, p, body)
	default:
		return qConflict("pipeline %s has provider %s, which cannot be triggered", p.UUID, p.Provider)
	}
}

// triggerNative sends a pipeline-level manual trigger (no schedule) to the executors, as the
// Mage-compatible API sends a schedule's, honouring Idempotency-Key.
func (g *Gateway) triggerNative(c *fiber.Ctx, p *pipeline.Pipeline, body triggerBody) error {
	payload := command.TriggerRun{PipelineUUID: p.UUID, Variables: body.Conf, RunType: run.TypeManual}
	if body.Note != nil {
		payload.Note = *body.Note
	}
	id := command.NewID()
	key := c.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return errBadRequest("the Idempotency-Key header must be at most %d characters", maxIdempotencyKey)
	}
	lookup := g.commandOutcome
	if key != "" {
		id = command.IdempotentID(p.Space, "orchestration/pipeline/"+p.UUID+"/trigger", key)
	} else {
		lookup = nil
	}
	principal, _ := c.Locals(principalKey).(string)
	env, err := command.New(id, command.TypeTriggerRun, p.Space, principal, payload)
	if err != nil {
		return err
	}
	res, err := g.sendRunCommand(c, env, lookup)
	if res == nil || err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(runWithTasks(&res.Run, res.BlockRuns))
}
