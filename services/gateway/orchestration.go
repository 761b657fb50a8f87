package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// The Qarion-compatible orchestration API: pipelines (native and provider-backed alike) with
// their governance fields and run metrics, and their runs with task runs. Qarion leaves the
// object shapes unspecified; these are Runyard's, documented in docs/api.md. A pipeline's id
// in every path is its uuid.

// Bounds of the metrics window, in days.
const (
	defaultMetricsDays = 7
	maxMetricsDays     = 365
	// maxFilterLen bounds a free-text filter value.
	maxFilterLen = 255
)

// qPipeline is a pipeline as the orchestration API shows it.
type qPipeline struct {
	ID               string          `json:"id"`
	UUID             string          `json:"uuid"`
	Name             string          `json:"name"`
	Description      string          `json:"description"`
	Provider         string          `json:"provider"`
	ConnectorID      *string         `json:"connector_id"`
	ProviderID       *string         `json:"provider_id"`
	Owners           []string        `json:"owners"`
	TeamID           *string         `json:"team_id"`
	Criticality      *string         `json:"criticality"`
	Watched          bool            `json:"watched"`
	Status           string          `json:"status"`
	Schedule         *string         `json:"schedule"`
	Tags             []string        `json:"tags"`
	ProviderMetadata map[string]any  `json:"provider_metadata"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	Metrics          pipelineMetrics `json:"metrics"`
}

// pipelineMetrics summarizes a pipeline's runs whose execution date falls in the last Days
// UTC days, today included.
type pipelineMetrics struct {
	Days int `json:"days"`
	// Runs counts the window's runs by status, every pipeline-run status present.
	Runs  map[run.Status]int64 `json:"runs"`
	Total int64                `json:"total"`
	// SuccessRate is completed over finished (completed, failed, cancelled); null when none
	// finished.
	SuccessRate *float64 `json:"success_rate"`
	// MeanDurationSeconds is over the completed runs; null when none.
	MeanDurationSeconds *float64 `json:"mean_duration_seconds"`
	// LastRun is the pipeline's latest run by execution date, in or out of the window.
	LastRun *qLastRun `json:"last_run"`
}

type qLastRun struct {
	ID            int64      `json:"id"`
	Status        run.Status `json:"status"`
	ExecutionDate time.Time  `json:"execution_date"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func presentMetrics(days int, st store.PipelineStats) pipelineMetrics {
	m := pipelineMetrics{Days: days, Runs: make(map[run.Status]int64, len(runStatuses)), Total: st.Total()}
	for _, s := range runStatuses {
		m.Runs[s] = st.Runs[s]
	}
	if v, ok := st.SuccessRate(); ok {
		m.SuccessRate = &v
	}
	if v, ok := st.MeanDuration(); ok {
		m.MeanDurationSeconds = &v
	}
	if lr := st.LastRun; lr != nil {
		m.LastRun = &qLastRun{ID: lr.ID, Status: lr.Status, ExecutionDate: lr.ExecutionDate}
	}
	return m
}

func presentOrchestrationPipeline(p *pipeline.Pipeline, watched bool, m pipelineMetrics) qPipeline {
	provider, state := p.Provider, p.State
	if provider == "" {
		provider = pipeline.ProviderNative
	}
	if state == "" {
		state = pipeline.StateActive
	}
	owners, tags := nonNil(p.Owners), nonNil(p.Tags)
	return qPipeline{
		ID: p.UUID, UUID: p.UUID, Name: p.Name, Description: p.Description, Provider: provider,
		ConnectorID: optional(p.ConnectorID), ProviderID: optional(p.ProviderID), Owners: owners,
		TeamID: optional(p.TeamID), Criticality: optional(p.Criticality), Watched: watched, Status: state,
		Schedule: optional(p.ScheduleDescription), Tags: tags, ProviderMetadata: p.ProviderMetadata,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Metrics: m,
	}
}

// metricsSince is the first instant of a window of days UTC days ending today.
func metricsSince(days int) time.Time {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	return today.AddDate(0, 0, -(days - 1))
}

// readDays reads the days query parameter into errs.
func readDays(c *fiber.Ctx, errs *validation.Errors) int {
	v := c.Query("days")
	if v == "" {
		return defaultMetricsDays
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxMetricsDays {
		errs.Add("days", "must be a whole number from 1 to %d", maxMetricsDays)
		return defaultMetricsDays
	}
	return n
}

// parseBool reads a boolean query value as FastAPI does.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// oneOf reads an optional enumerated query parameter into errs.
func oneOf(c *fiber.Ctx, name string, allowed []string, errs *validation.Errors) string {
	v := c.Query(name)
	if v != "" && !slices.Contains(allowed, v) {
		errs.Add(name, "must be one of %s", strings.Join(allowed, ", "))
	}
	return v
}

// text reads an optional free-text query parameter into errs.
func text(c *fiber.Ctx, name string, errs *validation.Errors) string {
	v := c.Query(name)
	if len(v) > maxFilterLen {
		errs.Add(name, "must be at most %d characters", maxFilterLen)
	}
	return v
}

// readPipelineFilter reads the list's filters; every bad value is a 422 naming its parameter.
func readPipelineFilter(c *fiber.Ctx, space, userID string) (store.PipelineFilter, int, error) {
	var errs validation.Errors
	f := store.PipelineFilter{
		Space:       space,
		Provider:    oneOf(c, "provider", []string{pipeline.ProviderNative, pipeline.ProviderAirflow}, &errs),
		State:       oneOf(c, "status", []string{pipeline.StateActive, pipeline.StatePaused, pipeline.StateInactive}, &errs),
		Criticality: oneOf(c, "criticality", pipeline.Criticalities, &errs),
		Owner:       text(c, "owner", &errs),
		TeamID:      text(c, "team_id", &errs),
		ConnectorID: text(c, "connector_id", &errs),
		Query:       text(c, "q", &errs),
	}
	if v := c.Query("watched_only"); v != "" {
		if only, ok := parseBool(v); !ok {
			errs.Add("watched_only", "must be true or false")
		} else if only {
			f.WatchedBy = userID
		}
	}
	days := readDays(c, &errs)
	return f, days, inQuery(errs.Err())
}

// joinQueryErrors merges the query errors of several readers into one answer that lists every
// bad parameter.
func joinQueryErrors(errs ...error) error {
	var all validation.Errors
	for _, err := range errs {
		var ve validation.Errors
		switch {
		case err == nil:
		case errors.As(err, &ve):
			all = append(all, ve...)
		default:
			return err
		}
	}
	return inQuery(all.Err())
}

// listOrchestrationPipelines answers GET /api/v1.0/spaces/:slug/orchestration/pipelines: the
// pipelines the filters select, by uuid, each with its metrics over the days window. The
// store filters and pages; the metrics of the page come from the kept statistics in one read.
func (g *Gateway) listOrchestrationPipelines(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	f, days, ferr := readPipelineFilter(c, slug, callerOf(c).UserID)
	p, perr := readListPage(c)
	if err := joinQueryErrors(ferr, perr); err != nil {
		return err
	}
	ctx := c.UserContext()
	ps, total, err := g.store.ListPipelinesFiltered(ctx, f, p.Store())
	if err != nil {
		return err
	}
	out, err := g.presentPipelines(c, slug, ps, days, f.WatchedBy != "")
	if err != nil {
		return err
	}
	return writeList(c, p, out, total)
}

// presentPipelines renders pipelines of space with the caller's watched state and their
// metrics; allWatched says the list holds only watched pipelines.
func (g *Gateway) presentPipelines(c *fiber.Ctx, space string, ps []pipeline.Pipeline, days int, allWatched bool) ([]qPipeline, error) {
	ctx := c.UserContext()
	out := make([]qPipeline, len(ps))
	if len(ps) == 0 {
		return out, nil
	}
	uuids := make([]string, len(ps))
	for i := range ps {
		uuids[i] = ps[i].UUID
	}
	stats, err := g.store.PipelineStats(ctx, space, uuids, metricsSince(days))
	if err != nil {
		return nil, err
	}
	watched := map[string]bool{}
	if !allWatched {
		ws, err := g.store.ListWatchedPipelines(ctx, space, callerOf(c).UserID)
		if err != nil {
			return nil, err
		}
		for _, u := range ws {
			watched[u] = true
		}
	}
	for i := range ps {
		out[i] = presentOrchestrationPipeline(&ps[i], allWatched || watched[ps[i].UUID], presentMetrics(days, stats[ps[i].UUID]))
	}
	return out, nil
}

// loadSpacePipeline returns the pipeline of the path in space; a pipeline of another space is
// as missing as one that does not exist.
func (g *Gateway) loadSpacePipeline(c *fiber.Ctx, space string) (*pipeline.Pipeline, error) {
	id := c.Params("pipeline_id")
	p, err := g.store.GetPipeline(c.UserContext(), space, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, qNotFound("pipeline %s not found", id)
	}
	return p, err
}

// answerPipeline answers with one pipeline, its watched state and its metrics over the days
// of the query.
func (g *Gateway) answerPipeline(c *fiber.Ctx, space string, p *pipeline.Pipeline, days int) error {
	out, err := g.presentPipelines(c, space, []pipeline.Pipeline{*p}, days, false)
	if err != nil {
		return err
	}
	return c.JSON(out[0])
}

// getOrchestrationPipeline answers GET .../orchestration/pipelines/:pipeline_id.
func (g *Gateway) getOrchestrationPipeline(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	var errs validation.Errors
	days := readDays(c, &errs)
	if err := inQuery(errs.Err()); err != nil {
		return err
	}
	p, err := g.loadSpacePipeline(c, slug)
	if err != nil {
		return err
	}
	return g.answerPipeline(c, slug, p, days)
}

// nullableString reads a body field that is a string or null; absent is an error, since a
// PATCH of a single field says what it sets.
func nullableString(body map[string]json.RawMessage, field, what string) (string, error) {
	raw, ok := body[field]
	if !ok {
		return "", validation.New(field, "is required: %s, or null to clear it", what)
	}
	if string(raw) == "null" {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", validation.New(field, "must be a string or null")
	}
	if v == "" {
		return "", validation.New(field, "must not be empty: send null to clear it")
	}
	return v, nil
}

// patchPipeline applies set to the pipeline of the path, for an editor, and answers with the
// pipeline.
func (g *Gateway) patchPipeline(c *fiber.Ctx, set func(slug string, body map[string]json.RawMessage) (func(*pipeline.Pipeline), error)) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if _, err := g.loadSpacePipeline(c, slug); err != nil {
		return err
	}
	apply, err := set(slug, body)
	if err != nil {
		return err
	}
	id := c.Params("pipeline_id")
	p, err := g.store.UpdatePipeline(c.UserContext(), slug, id, func(p *pipeline.Pipeline) error { apply(p); return nil })
	if errors.Is(err, store.ErrNotFound) {
		return qNotFound("pipeline %s not found", id)
	} else if err != nil {
		return err
	}
	g.announcePipeline(c.UserContext(), p)
	return g.answerPipeline(c, slug, p, defaultMetricsDays)
}

// setPipelineTeam answers PATCH .../pipelines/:pipeline_id/team {"team_id": "<id>" | null}:
// the team must be one of the space's.
func (g *Gateway) setPipelineTeam(c *fiber.Ctx) error {
	return g.patchPipeline(c, func(slug string, body map[string]json.RawMessage) (func(*pipeline.Pipeline), error) {
		id, err := nullableString(body, "team_id", "the id of a team of the space")
		if err != nil {
			return nil, err
		}
		if id != "" {
			if _, err := g.store.GetTeam(c.UserContext(), slug, id); errors.Is(err, store.ErrNotFound) {
				return nil, validation.New("team_id", "space %s has no team %s", slug, id)
			} else if err != nil {
				return nil, err
			}
		}
		return func(p *pipeline.Pipeline) { p.TeamID = id }, nil
	})
}

// setPipelineCriticality answers PATCH .../pipelines/:pipeline_id/criticality
// {"criticality": "low" | "medium" | "high" | "critical" | null}.
func (g *Gateway) setPipelineCriticality(c *fiber.Ctx) error {
	return g.patchPipeline(c, func(_ string, body map[string]json.RawMessage) (func(*pipeline.Pipeline), error) {
		v, err := nullableString(body, "criticality", "one of "+strings.Join(pipeline.Criticalities, ", "))
		if err != nil {
			return nil, err
		}
		if v != "" && !slices.Contains(pipeline.Criticalities, v) {
			return nil, validation.New("criticality", "must be one of %s, or null", strings.Join(pipeline.Criticalities, ", "))
		}
		return func(p *pipeline.Pipeline) { p.Criticality = v }, nil
	})
}
