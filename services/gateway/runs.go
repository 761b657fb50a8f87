package gateway

import (
	"context"
	"errors"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

var runStatuses = []run.Status{run.StatusInitial, run.StatusRunning, run.StatusCompleted, run.StatusFailed, run.StatusCancelled}

// presentRuns renders runs with their block runs inline, in two reads for the whole page.
func (g *Gateway) presentRuns(ctx context.Context, runs []run.PipelineRun) ([]magePipelineRun, error) {
	out := make([]magePipelineRun, len(runs))
	if len(runs) == 0 {
		return out, nil
	}
	ids := make([]int64, len(runs))
	schedIDs := make([]int64, 0, 1)
	for i, r := range runs {
		ids[i] = r.ID
		if !slices.Contains(schedIDs, r.PipelineScheduleID) {
			schedIDs = append(schedIDs, r.PipelineScheduleID)
		}
	}
	brs, err := g.store.BlockRunsOf(ctx, ids...)
	if err != nil {
		return nil, err
	}
	byRun := make(map[int64][]run.BlockRun, len(runs))
	for _, br := range brs {
		byRun[br.PipelineRunID] = append(byRun[br.PipelineRunID], br)
	}
	scs, err := g.store.GetSchedules(ctx, schedIDs)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		out[i] = presentRun(&runs[i], byRun[runs[i].ID], scs[runs[i].PipelineScheduleID])
	}
	return out, nil
}

func (g *Gateway) listRunsWith(c *fiber.Ctx, f store.RunFilter) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	runs, total, err := g.store.ListRuns(ctx, f, pg)
	if err != nil {
		return err
	}
	out, err := g.presentRuns(ctx, runs)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_runs": out, "metadata": metadata(pg, len(runs), total)})
}

func (g *Gateway) listScheduleRuns(c *fiber.Ctx) error {
	s, err := g.loadSchedule(c)
	if err != nil {
		return err
	}
	return g.listRunsWith(c, store.RunFilter{Space: s.Space, ScheduleID: s.ID})
}

func (g *Gateway) listRuns(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	f := store.RunFilter{Space: space, PipelineUUID: c.Query("pipeline_uuid"), Status: run.Status(c.Query("status"))}
	if f.Status != "" && !slices.Contains(runStatuses, f.Status) {
		return validation.New("status", "must be one of initial, running, completed, failed, cancelled")
	}
	if f.ScheduleID, err = intQuery(c, "pipeline_schedule_id"); err != nil {
		return err
	}
	if f.BackfillID, err = intQuery(c, "backfill_id"); err != nil {
		return err
	}
	return g.listRunsWith(c, f)
}

// loadRun resolves a run by its global id, for a caller with the role the request needs in the
// run's space.
func (g *Gateway) loadRun(c *fiber.Ctx) (*run.PipelineRun, error) {
	id, err := intParam(c, "id", "pipeline run")
	if err != nil {
		return nil, err
	}
	r, err := g.store.GetRun(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("pipeline run %d not found", id)
	} else if err != nil {
		return nil, err
	}
	if err := g.authorize(c, r.Space, errNotFound("pipeline run %d not found", id)); err != nil {
		return nil, err
	}
	return r, nil
}

func (g *Gateway) getRun(c *fiber.Ctx) error {
	r, err := g.loadRun(c)
	if err != nil {
		return err
	}
	out, err := g.presentRuns(c.UserContext(), []run.PipelineRun{*r})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_run": out[0]})
}

func (g *Gateway) listRunBlockRuns(c *fiber.Ctx) error {
	r, err := g.loadRun(c)
	if err != nil {
		return err
	}
	return g.listBlockRunsWith(c, store.BlockRunFilter{Space: r.Space, PipelineRunID: r.ID})
}

func (g *Gateway) listBlockRuns(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	f := store.BlockRunFilter{Space: space, PipelineUUID: c.Query("pipeline_uuid")}
	if f.PipelineRunID, err = intQuery(c, "pipeline_run_id"); err != nil {
		return err
	}
	return g.listBlockRunsWith(c, f)
}

func (g *Gateway) listBlockRunsWith(c *fiber.Ctx, f store.BlockRunFilter) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	brs, total, err := g.store.ListBlockRuns(ctx, f, pg)
	if err != nil {
		return err
	}
	var schedIDs []int64
	for _, br := range brs {
		if !slices.Contains(schedIDs, br.PipelineScheduleID) {
			schedIDs = append(schedIDs, br.PipelineScheduleID)
		}
	}
	scs := map[int64]*schedule.Schedule{}
	if len(schedIDs) > 0 {
		if scs, err = g.store.GetSchedules(ctx, schedIDs); err != nil {
			return err
		}
	}
	out := make([]mageBlockRun, len(brs))
	for i := range brs {
		out[i] = presentBlockRun(&brs[i], scs[brs[i].PipelineScheduleID])
	}
	return c.JSON(fiber.Map{"block_runs": out, "metadata": metadata(pg, len(brs), total)})
}
