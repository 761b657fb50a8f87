package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

const maxIdempotencyKey = 255

func (g *Gateway) triggerByToken(c *fiber.Ctx) error {
	return g.trigger(c, c.Params("token"))
}

func (g *Gateway) triggerByBearer(c *fiber.Ctx) error {
	token, ok := bearer(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return errUnauthorized("invalid_token", "the trigger token is required as Authorization: Bearer <token>")
	}
	return g.trigger(c, token)
}

// trigger answers Mage's API trigger: the schedule's token authorizes it, the body becomes the
// run's variables (pipeline_run.variables) and event variables (every other top-level key).
func (g *Gateway) trigger(c *fiber.Ctx, token string) error {
	sc, err := g.findSchedule(c)
	if err != nil {
		return err
	}
	switch {
	case sc.ScheduleType != schedule.TypeAPI:
		return errBadRequest("pipeline schedule %d is a %s schedule: only api schedules can be triggered through this endpoint", sc.ID, sc.ScheduleType)
	case sc.Token == "":
		return errBadRequest("pipeline schedule %d has no token: rotate its token first", sc.ID)
	case !sc.TokenMatches(token):
		return errUnauthorized("invalid_token", "invalid token for pipeline schedule %d", sc.ID)
	case sc.Status != schedule.StatusActive:
		return errConflict("pipeline schedule %d is inactive: set its status to active to trigger it", sc.ID)
	}
	payload, err := triggerPayload(c.Body())
	if err != nil {
		return err
	}
	payload.PipelineUUID, payload.ScheduleID, payload.RunType = sc.PipelineUUID, sc.ID, run.TypeAPI

	id := command.NewID()
	key := c.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return validation.New("Idempotency-Key", "must be at most %d characters", maxIdempotencyKey)
	}
	if key != "" {
		id = command.IdempotentID(sc.Space, fmt.Sprintf("pipeline_schedule/%d", sc.ID), key)
	}
	env, err := command.New(id, command.TypeTriggerRun, sc.Space, "schedule-token", payload)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var lookup func(context.Context, string) (*command.Reply, error)
	if key != "" {
		lookup = g.commandOutcome
	}
	reply, err := g.send(ctx, env, lookup)
	if err != nil {
		return err
	}
	if reply == nil {
		return g.accepted(c, env)
	}
	return g.triggerAnswer(c, reply, sc)
}

func (g *Gateway) triggerAnswer(c *fiber.Ctx, reply *command.Reply, sc *schedule.Schedule) error {
	if reply.Status != command.ReplySucceeded {
		return replyError(reply)
	}
	var res answeredResult
	if err := json.Unmarshal(reply.Result, &res); err != nil {
		return fmt.Errorf("gateway: decode trigger result of %s: %w", reply.CommandID, err)
	}
	return c.JSON(fiber.Map{"pipeline_run": presentRun(&res.Run.PipelineRun, res.BlockRuns, sc)})
}

// answeredResult is a command.RunResult decoded for the trigger's answer. The run's DAG
// snapshot, settings and runtime variables are the largest part of the result and the
// answer shows none of them, so they are skipped rather than built (decoding them was 4% of
// the server's CPU under 64 triggering clients).
type answeredResult struct {
	Run struct {
		run.PipelineRun
		Blocks           skipped `json:"blocks"`
		Settings         skipped `json:"settings"`
		RuntimeVariables skipped `json:"runtime_variables"`
	} `json:"pipeline_run"`
	BlockRuns []run.BlockRun `json:"block_runs"`
}

// skipped decodes any JSON value into nothing.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

func replyError(r *command.Reply) error {
	code := r.Code
	if code < 400 || code > 599 {
		code = http.StatusInternalServerError
	}
	typ := "api_resource_error"
	if code == http.StatusNotFound {
		typ = "record_not_found"
	}
	return &apiError{Status: code, Type: typ, Message: r.Message}
}

// triggerPayload applies Mage's body rules.
func triggerPayload(body []byte) (command.TriggerRun, error) {
	var p command.TriggerRun
	if len(strings.TrimSpace(string(body))) == 0 {
		return p, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return p, errBadRequest("request body must be a JSON object: %v", err)
	}
	if _, ok := top["pipeline_run"]; ok {
		// Decoded from the whole body, so that a type error names its full path
		// ("pipeline_run", "pipeline_run.variables").
		var wrap struct {
			PipelineRun struct {
				Variables     map[string]any `json:"variables"`
				ExecutionDate *string        `json:"execution_date"`
			} `json:"pipeline_run"`
		}
		if err := json.Unmarshal(body, &wrap); err != nil {
			return p, jsonError(err)
		}
		pr := wrap.PipelineRun
		p.Variables = pr.Variables
		if pr.ExecutionDate != nil && *pr.ExecutionDate != "" {
			t, ok := parseTime(*pr.ExecutionDate)
			if !ok {
				return p, validation.New("pipeline_run.execution_date", "%q is not a datetime: use 2026-01-01 00:00:00 or RFC 3339", *pr.ExecutionDate)
			}
			p.ExecutionDate = &t
		}
		delete(top, "pipeline_run")
	}
	if len(top) > 0 {
		p.EventVariables = make(map[string]any, len(top))
		for k, raw := range top {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return p, validation.New(k, "is not valid JSON: %v", err)
			}
			p.EventVariables[k] = v
		}
	}
	return p, nil
}

// commandOutcome finds the result of a command that was already handled: the run it created
// or acted on, or its recorded failure. nil means not handled yet.
func (g *Gateway) commandOutcome(ctx context.Context, id string) (*command.Reply, error) {
	r, err := g.store.GetRunByCommand(ctx, id)
	if err == nil {
		return g.runReply(ctx, id, r)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	o, err := g.store.GetOutcome(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if o.Status == command.ReplySucceeded && o.RunID != 0 {
		if r, err := g.store.GetRun(ctx, o.RunID); err == nil {
			return g.runReply(ctx, id, r)
		}
	}
	return &command.Reply{CommandID: id, Status: o.Status, Code: o.Code, Message: o.Message}, nil
}

// runReply is the reply a command that produced run r would have sent.
func (g *Gateway) runReply(ctx context.Context, id string, r *run.PipelineRun) (*command.Reply, error) {
	brs, err := g.store.BlockRunsOf(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	res, err := json.Marshal(command.RunResult{Run: *r, BlockRuns: brs})
	if err != nil {
		return nil, err
	}
	return &command.Reply{CommandID: id, Status: command.ReplySucceeded, Code: http.StatusOK, Result: res}, nil
}

// send publishes a command and waits for its reply up to the configured bound. A nil reply
// with a nil error means the command is accepted but not answered yet.
//
// The reply subscription is made before anything else: NATS orders a connection's protocol
// messages, so no worker can answer before it exists. With lookup set (an idempotent command
// that may already be done), the store is checked after subscribing, so a result stored
// before the subscription is found there and one published after it arrives on it.
func (g *Gateway) send(ctx context.Context, env command.Envelope, lookup func(context.Context, string) (*command.Reply, error)) (*command.Reply, error) {
	replies, cancel, err := g.bus.WaitReply(env.ID)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if lookup != nil {
		if r, err := lookup(ctx, env.ID); err != nil || r != nil {
			return r, err
		}
	}
	duplicate, err := g.bus.PublishCommand(ctx, env)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(g.cfg.CommandWait)
	defer t.Stop()
	select {
	case r := <-replies:
		return &r, nil
	case <-t.C:
	case <-ctx.Done():
	}
	if duplicate && lookup != nil {
		return lookup(context.WithoutCancel(ctx), env.ID)
	}
	return nil, nil
}

// accepted answers 202 with the command to poll.
func (g *Gateway) accepted(c *fiber.Ctx, env command.Envelope) error {
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"command": fiber.Map{
		"id": env.ID, "type": env.Type, "status": "pending", "url": "/api/commands/" + env.ID,
	}})
}

// getCommand reports a command's state: succeeded with its result, failed with its error, or
// pending while no executor has answered it. A command of a space the caller cannot see is
// pending, as an unknown one is.
func (g *Gateway) getCommand(c *fiber.Ctx) error {
	id := c.Params("id")
	reply, err := g.commandOutcome(c.UserContext(), id)
	if err != nil {
		return err
	}
	if reply != nil {
		space, err := g.commandSpace(c.UserContext(), reply)
		if err != nil {
			return err
		}
		if err := g.authorize(c, space, errUnseen); errors.Is(err, errUnseen) {
			reply = nil
		} else if err != nil {
			return err
		}
	}
	out := fiber.Map{"id": id, "status": "pending"}
	if reply != nil {
		out["status"] = reply.Status
		if reply.Status == command.ReplySucceeded && len(reply.Result) == 0 {
			// A command that made no run (backfill.start, backfill.cancel): its effect is on
			// the resource it names.
			return c.JSON(fiber.Map{"command": out})
		}
		if reply.Status == command.ReplySucceeded {
			var res command.RunResult
			if err := json.Unmarshal(reply.Result, &res); err != nil {
				return err
			}
			pr, err := g.presentRuns(c.UserContext(), []run.PipelineRun{res.Run})
			if err != nil {
				return err
			}
			out["pipeline_run"] = pr[0]
		} else {
			out["error"] = fiber.Map{"code": reply.Code, "message": reply.Message}
		}
	}
	return c.JSON(fiber.Map{"command": out})
}

// errUnseen marks a command the caller may not see.
var errUnseen = errors.New("command of a space the caller cannot see")

// commandSpace returns the space a handled command acted in: its run's, or its recorded
// outcome's.
func (g *Gateway) commandSpace(ctx context.Context, reply *command.Reply) (string, error) {
	if len(reply.Result) > 0 {
		var res command.RunResult
		if err := json.Unmarshal(reply.Result, &res); err != nil {
			return "", fmt.Errorf("gateway: decode result of %s: %w", reply.CommandID, err)
		}
		return res.Run.Space, nil
	}
	o, err := g.store.GetOutcome(ctx, reply.CommandID)
	if err != nil {
		return "", fmt.Errorf("gateway: outcome of %s: %w", reply.CommandID, err)
	}
	return o.Space, nil
}
