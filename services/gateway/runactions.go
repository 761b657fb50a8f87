package gateway

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/validation"
)

// runUpdateBody is Mage's PUT /api/pipeline_runs/:id body.
type runUpdateBody struct {
	Run *struct {
		Status            *string `json:"status"`
		PipelineRunAction *string `json:"pipeline_run_action"`
		FromBlockUUID     string  `json:"from_block_uuid"`
	} `json:"pipeline_run"`
}

// updateRun cancels a run ({"status": "cancelled"}) or retries its blocks
// ({"pipeline_run_action": "retry_blocks"}). Mage silently ignores anything else; Runyard
// says what it accepts.
func (g *Gateway) updateRun(c *fiber.Ctx) error {
	r, err := g.loadRun(c)
	if err != nil {
		return err
	}
	var body runUpdateBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if body.Run == nil {
		return validation.New("pipeline_run", "is required: send {\"pipeline_run\": {\"status\": \"cancelled\"}} or {\"pipeline_run\": {\"pipeline_run_action\": \"retry_blocks\"}}")
	}
	var (
		typ     string
		payload any
	)
	switch {
	case body.Run.Status != nil && body.Run.PipelineRunAction != nil:
		return validation.New("pipeline_run", "send either status or pipeline_run_action, not both")
	case body.Run.Status != nil:
		if *body.Run.Status != string(run.StatusCancelled) {
			return validation.New("pipeline_run.status", "can only be set to cancelled, not %q", *body.Run.Status)
		}
		typ, payload = command.TypeCancelRun, command.CancelRun{PipelineRunID: r.ID}
	case body.Run.PipelineRunAction != nil:
		if *body.Run.PipelineRunAction != "retry_blocks" {
			return validation.New("pipeline_run.pipeline_run_action", "must be retry_blocks, not %q", *body.Run.PipelineRunAction)
		}
		typ, payload = command.TypeRetryRun, command.RetryRun{PipelineRunID: r.ID, FromBlockUUID: body.Run.FromBlockUUID}
	default:
		return validation.New("pipeline_run", "needs status (cancelled) or pipeline_run_action (retry_blocks)")
	}
	return g.runCommand(c, r.Space, fmt.Sprintf("pipeline_run/%d/%s", r.ID, typ), typ, payload)
}

// manualBody is Mage's POST /api/pipeline_schedules/:id/pipeline_runs body.
type manualBody struct {
	Run *struct {
		Variables      map[string]any `json:"variables"`
		EventVariables map[string]any `json:"event_variables"`
		ExecutionDate  *string        `json:"execution_date"`
	} `json:"pipeline_run"`
}

// createRun starts a run of a schedule on behalf of an authenticated user (Mage's "Run now"
// and "Retry run"), whatever the schedule's type and status.
func (g *Gateway) createRun(c *fiber.Ctx) error {
	sc, err := g.loadSchedule(c)
	if err != nil {
		return err
	}
	var body manualBody
	if len(c.Body()) > 0 {
		if err := decodeBody(c, &body); err != nil {
			return err
		}
	}
	p := command.TriggerRun{PipelineUUID: sc.PipelineUUID, ScheduleID: sc.ID, RunType: run.TypeManual}
	if body.Run != nil {
		p.Variables, p.EventVariables = body.Run.Variables, body.Run.EventVariables
		if body.Run.ExecutionDate != nil && *body.Run.ExecutionDate != "" {
			t, ok := parseTime(*body.Run.ExecutionDate)
			if !ok {
				return validation.New("pipeline_run.execution_date", "%q is not a datetime: use 2026-01-01 00:00:00 or RFC 3339", *body.Run.ExecutionDate)
			}
			p.ExecutionDate = &t
		}
	}
	return g.runCommand(c, sc.Space, fmt.Sprintf("pipeline_schedule/%d/manual", sc.ID), command.TypeTriggerRun, p)
}

// runCommand sends a command whose result is a run and answers with that run, honouring
// Idempotency-Key within scope.
func (g *Gateway) runCommand(c *fiber.Ctx, space, scope, typ string, payload any) error {
	id := command.NewID()
	key := c.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return validation.New("Idempotency-Key", "must be at most %d characters", maxIdempotencyKey)
	}
	if key != "" {
		id = command.IdempotentID(space, scope, key)
	}
	principal, _ := c.Locals(principalKey).(string)
	env, err := command.New(id, typ, space, principal, payload)
	if err != nil {
		return err
	}
	lookup := g.commandOutcome
	if key == "" {
		lookup = nil
	}
	res, err := g.sendRunCommand(c, env, lookup)
	if res == nil || err != nil {
		return err
	}
	scs, err := g.store.GetSchedules(c.UserContext(), []int64{res.Run.PipelineScheduleID})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_run": presentRun(&res.Run, res.BlockRuns, scs[res.Run.PipelineScheduleID])})
}
