package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// logFile is Mage's log file object: one file's content with where it came from.
type logFile struct {
	Name          string   `json:"name"`
	Path          string   `json:"path"`
	Content       string   `json:"content"`
	Size          int      `json:"size"`
	Truncated     bool     `json:"truncated"`
	BlockUUID     *string  `json:"block_uuid"`
	BlockRunID    *int64   `json:"block_run_id"`
	PipelineRunID int64    `json:"pipeline_run_id"`
	ModifiedAt    mageTime `json:"modified_at"`
}

// truncationNote is what the block runners append to output they cut.
const truncationNote = "[runyard: output truncated after"

func blockLogFile(br *run.BlockRun) logFile {
	modified := br.UpdatedAt
	return logFile{
		Name: br.BlockUUID + ".log", Path: fmt.Sprintf("pipeline_runs/%d/%s.log", br.PipelineRunID, br.BlockUUID),
		Content: br.Log, Size: len(br.Log), Truncated: strings.Contains(br.Log, truncationNote),
		BlockUUID: &br.BlockUUID, BlockRunID: &br.ID, PipelineRunID: br.PipelineRunID, ModifiedAt: mt(modified),
	}
}

// blockRunLogs answers GET /api/block_runs/:id/logs: the block run's kept output (a command
// block's stdout and stderr, an http block's status line, headers and start of the body).
func (g *Gateway) blockRunLogs(c *fiber.Ctx) error {
	id, err := intParam(c, "id", "block run")
	if err != nil {
		return err
	}
	br, err := g.store.GetBlockRun(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("block run %d not found", id)
	} else if err != nil {
		return err
	}
	if err := g.authorize(c, br.Space, errNotFound("block run %d not found", id)); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"logs": []logFile{blockLogFile(br)}})
}

// pipelineLogs answers GET /api/pipelines/:uuid/logs?pipeline_run_id=…: the run's own log (its
// status history) and its block runs' logs, in Mage's shape.
func (g *Gateway) pipelineLogs(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	runID, err := intQuery(c, "pipeline_run_id")
	if err != nil {
		return err
	}
	if runID == 0 {
		if runID, err = intQuery(c, "pipeline_run_id[]"); err != nil {
			return err
		}
	}
	ctx := c.UserContext()
	var runs []run.PipelineRun
	if runID != 0 {
		r, err := g.store.GetRun(ctx, runID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (r.Space != p.Space || r.PipelineUUID != p.UUID)) {
			return errNotFound("pipeline run %d of pipeline %q not found", runID, p.UUID)
		} else if err != nil {
			return err
		}
		runs = []run.PipelineRun{*r}
	} else {
		pg, err := page(c)
		if err != nil {
			return err
		}
		pg.Limit = min(pg.Limit, 20)
		if runs, _, err = g.store.ListRuns(ctx, store.RunFilter{Space: p.Space, PipelineUUID: p.UUID}, pg); err != nil {
			return err
		}
	}
	runLogs, blockLogs, err := g.collectLogs(ctx, runs)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"logs": []fiber.Map{{
		"pipeline_run_logs": runLogs, "block_run_logs": blockLogs,
		"total_pipeline_run_log_count": len(runLogs), "total_block_run_log_count": len(blockLogs),
	}}})
}

func (g *Gateway) collectLogs(ctx context.Context, runs []run.PipelineRun) ([]logFile, []logFile, error) {
	runLogs, blockLogs := []logFile{}, []logFile{}
	for i := range runs {
		r := &runs[i]
		brs, err := g.store.BlockRunsOf(ctx, r.ID)
		if err != nil {
			return nil, nil, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s pipeline run %d of %s created (%s)\n", r.CreatedAt.Format(mageTimeLayout), r.ID, r.PipelineUUID, r.RunType)
		for _, br := range brs {
			if br.StartedAt != nil {
				fmt.Fprintf(&b, "%s block %s started\n", br.StartedAt.Format(mageTimeLayout), br.BlockUUID)
			}
			if br.CompletedAt != nil {
				fmt.Fprintf(&b, "%s block %s %s\n", br.CompletedAt.Format(mageTimeLayout), br.BlockUUID, br.Status)
			}
			full, err := g.store.GetBlockRun(ctx, br.ID)
			if err != nil {
				return nil, nil, err
			}
			blockLogs = append(blockLogs, blockLogFile(full))
		}
		if r.CompletedAt != nil {
			fmt.Fprintf(&b, "%s pipeline run %d %s\n", r.CompletedAt.Format(mageTimeLayout), r.ID, r.Status)
		}
		runLogs = append(runLogs, logFile{
			Name: "pipeline.log", Path: fmt.Sprintf("pipeline_runs/%d/pipeline.log", r.ID), Content: b.String(), Size: b.Len(),
			PipelineRunID: r.ID, ModifiedAt: mt(r.UpdatedAt),
		})
	}
	return runLogs, blockLogs, nil
}
