package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/backfill"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Backfills (Mage's): the gateway writes their definitions, as it does schedules; starting
// and cancelling one are commands, since they create and cancel runs, which only executors do.

// BackfillStore is what the gateway needs from storage for backfills.
type BackfillStore interface {
	CreateBackfill(ctx context.Context, b *backfill.Backfill) error
	GetBackfill(ctx context.Context, id int64) (*backfill.Backfill, error)
	ListBackfills(ctx context.Context, f store.BackfillFilter, pg store.Page) ([]backfill.Backfill, int64, error)
	UpdateBackfill(ctx context.Context, id int64, fn func(*backfill.Backfill) error) (*backfill.Backfill, error)
	DeleteBackfill(ctx context.Context, id int64) error
	BackfillRunCounts(ctx context.Context, id int64) (map[run.Status]int64, error)
}

// SeqBackfills is the id sequence of backfills.
const SeqBackfills = "backfills"

type backfillBody struct {
	Backfill *backfillFields `json:"backfill"`
}

// backfillFields are the writable fields of a backfill. The nullable ones are raw, so that
// absent (keep) and null (clear) differ; read-only fields Mage clients send back (id,
// pipeline_uuid, started_at, …) are ignored.
type backfillFields struct {
	Name          *string         `json:"name"`
	StartDatetime json.RawMessage `json:"start_datetime"`
	EndDatetime   json.RawMessage `json:"end_datetime"`
	IntervalType  json.RawMessage `json:"interval_type"`
	IntervalUnits json.RawMessage `json:"interval_units"`
	Variables     map[string]any  `json:"variables"`
	Settings      map[string]any  `json:"settings"`
	Status        json.RawMessage `json:"status"`
}

func isNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }

// status returns the status the body asks for, and whether it names one (null does not).
func (f *backfillFields) status() (backfill.Status, bool, error) {
	if len(f.Status) == 0 || isNull(f.Status) {
		return backfill.StatusNone, false, nil
	}
	var s string
	if err := json.Unmarshal(f.Status, &s); err != nil {
		return "", false, validation.New("backfill.status", "must be a string or null")
	}
	return backfill.Status(s), true, nil
}

// apply writes the body's fields to b and validates the result; forStart also requires what a
// start needs. Every bad field is reported.
func (f *backfillFields) apply(b *backfill.Backfill, forStart bool) error {
	var errs validation.Errors
	if f.Name != nil {
		b.Name = *f.Name
	}
	datetime := func(field string, raw json.RawMessage, dst **mageDatetime) {
		*dst = nil
		switch {
		case len(raw) == 0:
			return
		case isNull(raw):
			*dst = &mageDatetime{}
			return
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			errs.Add("backfill."+field, "must be a datetime string (2026-01-01 00:00:00 or RFC 3339) or null")
			return
		}
		t, ok := parseTime(s)
		if !ok {
			errs.Add("backfill."+field, "%q is not a datetime: use 2026-01-01 00:00:00 or RFC 3339", s)
			return
		}
		*dst = &mageDatetime{set: true, t: t}
	}
	var start, end *mageDatetime
	datetime("start_datetime", f.StartDatetime, &start)
	datetime("end_datetime", f.EndDatetime, &end)
	start.assign(&b.StartDatetime)
	end.assign(&b.EndDatetime)
	switch {
	case len(f.IntervalType) == 0:
	case isNull(f.IntervalType):
		b.IntervalType = ""
	default:
		if err := json.Unmarshal(f.IntervalType, &b.IntervalType); err != nil {
			errs.Add("backfill.interval_type", "must be one of %s, or null", strings.Join(backfill.IntervalTypes, ", "))
		}
	}
	switch {
	case len(f.IntervalUnits) == 0:
	case isNull(f.IntervalUnits):
		b.IntervalUnits = nil
	default:
		n, err := wholeNumber(f.IntervalUnits)
		if err != nil {
			errs.Add("backfill.interval_units", "must be a whole number, 1 or more, or null")
		} else {
			b.IntervalUnits = &n
		}
	}
	if f.Variables != nil {
		b.Variables = f.Variables
	}
	if f.Settings != nil {
		b.Settings = f.Settings
	}
	if len(errs) > 0 {
		return errs // the rules below would only repeat these fields
	}
	b.Normalize()
	return b.Validate("backfill", forStart)
}

// mageDatetime is a parsed nullable datetime field: set false is null.
type mageDatetime struct {
	set bool
	t   time.Time
}

// assign writes the field to dst: a nil d (field absent) leaves dst as it is.
func (d *mageDatetime) assign(dst **time.Time) {
	if d == nil {
		return
	}
	if !d.set {
		*dst = nil
		return
	}
	t := d.t
	*dst = &t
}

// wholeNumber reads a JSON number, or a string of digits as Mage's forms send, that is a whole
// number fitting an int.
func wholeNumber(raw json.RawMessage) (int, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= math.MaxInt32 {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("not a whole number: %s", raw)
}

func decodeBackfill(c *fiber.Ctx) (*backfillFields, error) {
	var body backfillBody
	if err := decodeBody(c, &body); err != nil {
		return nil, prefixField(err, "backfill")
	}
	if body.Backfill == nil {
		return nil, validation.New("backfill", "is required: send {\"backfill\": {...}}")
	}
	return body.Backfill, nil
}

// loadBackfill resolves a backfill by its global id; it acts in its own space, where the
// caller needs the role the request does.
func (g *Gateway) loadBackfill(c *fiber.Ctx) (*backfill.Backfill, error) {
	id, err := intParam(c, "id", "backfill")
	if err != nil {
		return nil, err
	}
	b, err := g.store.GetBackfill(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("backfill %d not found", id)
	} else if err != nil {
		return nil, err
	}
	if err := g.authorize(c, b.Space, errNotFound("backfill %d not found", id)); err != nil {
		return nil, err
	}
	return b, nil
}

// createBackfill answers POST /api/pipelines/:uuid/backfills. The backfill is created not
// started (status null), as in Mage; PUT {"status": "initial"} starts it.
func (g *Gateway) createBackfill(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	if err := nativeOnly(p, "backfill"); err != nil {
		return err
	}
	f, err := decodeBackfill(c)
	if err != nil {
		return err
	}
	if _, set, err := f.status(); err != nil {
		return err
	} else if set {
		return validation.New("backfill.status", "is null until the backfill starts: create it, then send PUT /api/backfills/:id {\"backfill\": {\"status\": \"initial\"}}")
	}
	now := store.Now()
	b := &backfill.Backfill{Space: p.Space, PipelineUUID: p.UUID, CreatedAt: now, UpdatedAt: now}
	if err := f.apply(b, false); err != nil {
		return err
	}
	ctx := c.UserContext()
	if b.ID, err = g.store.NextIDs(ctx, SeqBackfills, 1); err != nil {
		return err
	}
	if err := g.store.CreateBackfill(ctx, b); err != nil {
		return err
	}
	return g.backfillAnswer(c, b)
}

// listBackfills answers GET /api/backfills?pipeline_uuid=: the space's backfills, newest first.
func (g *Gateway) listBackfills(c *fiber.Ctx) error {
	space, err := g.space(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	bs, total, err := g.store.ListBackfills(c.UserContext(), store.BackfillFilter{Space: space, PipelineUUID: c.Query("pipeline_uuid")}, pg)
	if err != nil {
		return err
	}
	out := make([]mageBackfill, len(bs))
	for i := range bs {
		out[i] = presentBackfill(&bs[i], nil)
	}
	return c.JSON(fiber.Map{"backfills": out, "metadata": metadata(pg, len(bs), total)})
}

func (g *Gateway) getBackfill(c *fiber.Ctx) error {
	b, err := g.loadBackfill(c)
	if err != nil {
		return err
	}
	return g.backfillAnswer(c, b)
}

// updateBackfill answers PUT /api/backfills/:id: status initial starts the backfill, status
// cancelled cancels it, anything else edits a backfill that has not started.
func (g *Gateway) updateBackfill(c *fiber.Ctx) error {
	b, err := g.loadBackfill(c)
	if err != nil {
		return err
	}
	f, err := decodeBackfill(c)
	if err != nil {
		return err
	}
	status, set, err := f.status()
	if err != nil {
		return err
	}
	switch {
	case set && status == backfill.StatusInitial:
		return g.startBackfill(c, b, f)
	case set && status == backfill.StatusCancelled:
		return g.cancelBackfill(c, b)
	case set && status != b.Status:
		// The current status sent back with an edit is not a change; any other is refused.
		return validation.New("backfill.status", "can be set to initial (start) or cancelled (cancel), not %q", status)
	}
	updated, err := g.store.UpdateBackfill(c.UserContext(), b.ID, func(b *backfill.Backfill) error {
		if b.Status.Started() {
			return errConflict("backfill %d is %s: only a backfill that has not started can be edited", b.ID, b.Status)
		}
		return f.apply(b, false)
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("backfill %d not found", b.ID)
	} else if err != nil {
		return err
	}
	return g.backfillAnswer(c, updated)
}

// startBackfill sets the backfill initial, with the body's other fields, and asks an executor
// to start it. A backfill left initial (its executor has not answered yet) is asked again:
// the command's id is the backfill's, so the bus or the executor drops the repetition.
func (g *Gateway) startBackfill(c *fiber.Ctx, b *backfill.Backfill, f *backfillFields) error {
	updated, err := g.store.UpdateBackfill(c.UserContext(), b.ID, func(b *backfill.Backfill) error {
		switch b.Status {
		case backfill.StatusNone:
		case backfill.StatusInitial:
			return run.ErrNoChange
		default:
			return errConflict("backfill %d is already %s: a backfill starts once", b.ID, b.Status)
		}
		if err := f.apply(b, true); err != nil {
			return err
		}
		b.Status = backfill.StatusInitial
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("backfill %d not found", b.ID)
	case err != nil && !errors.Is(err, run.ErrNoChange):
		return err
	}
	id := command.IdempotentID(updated.Space, fmt.Sprintf("backfill/%d", updated.ID), "start")
	return g.backfillCommand(c, updated, id, command.TypeStartBackfill, command.StartBackfill{BackfillID: updated.ID})
}

// errStarted tells cancelBackfill's closure that the backfill needs the executor.
var errStarted = errors.New("backfill started")

// cancelBackfill cancels a backfill. One that never started has no runs: the gateway cancels
// it itself. A started one is cancelled by an executor, which cancels its unfinished runs.
// One that already ended is answered unchanged, like a finished run.
func (g *Gateway) cancelBackfill(c *fiber.Ctx, b *backfill.Backfill) error {
	now := store.Now()
	updated, err := g.store.UpdateBackfill(c.UserContext(), b.ID, func(b *backfill.Backfill) error {
		if b.Status.Started() {
			return errStarted
		}
		b.Status, b.CompletedAt = backfill.StatusCancelled, &now
		return nil
	})
	switch {
	case err == nil:
		return g.backfillAnswer(c, updated)
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("backfill %d not found", b.ID)
	case !errors.Is(err, errStarted):
		return err
	case updated.Status.Terminal():
		return g.backfillAnswer(c, updated)
	}
	id := command.IdempotentID(updated.Space, fmt.Sprintf("backfill/%d", updated.ID), "cancel")
	return g.backfillCommand(c, updated, id, command.TypeCancelBackfill, command.CancelBackfill{BackfillID: updated.ID})
}

// backfillCommand sends a backfill command and answers with the backfill as the command left
// it: 202 with the command to poll when no executor answered in time.
func (g *Gateway) backfillCommand(c *fiber.Ctx, b *backfill.Backfill, id, typ string, payload any) error {
	principal, _ := c.Locals(principalKey).(string)
	env, err := command.New(id, typ, b.Space, principal, payload)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	reply, err := g.send(ctx, env, g.backfillCommandOutcome)
	if err != nil {
		return err
	}
	if reply == nil {
		return g.accepted(c, env)
	}
	if reply.Status != command.ReplySucceeded {
		return replyError(reply)
	}
	// Read back rather than decoded from the reply: a reply found in the store carries no
	// result, and the store is at least as recent.
	cur, err := g.store.GetBackfill(ctx, b.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("backfill %d not found", b.ID)
	} else if err != nil {
		return err
	}
	return g.backfillAnswer(c, cur)
}

// backfillCommandOutcome finds the recorded outcome of a backfill command; nil when it was not
// handled yet.
func (g *Gateway) backfillCommandOutcome(ctx context.Context, id string) (*command.Reply, error) {
	o, err := g.store.GetOutcome(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &command.Reply{CommandID: id, Status: o.Status, Code: o.Code, Message: o.Message}, nil
}

// deleteBackfill removes a backfill that is not in progress, and its hidden schedule; its runs
// stay readable with their backfill id.
func (g *Gateway) deleteBackfill(c *fiber.Ctx) error {
	b, err := g.loadBackfill(c)
	if err != nil {
		return err
	}
	if b.Status == backfill.StatusInitial || b.Status == backfill.StatusRunning {
		return errConflict("backfill %d is %s: cancel it before deleting it", b.ID, b.Status)
	}
	ctx := c.UserContext()
	if err := g.store.DeleteBackfill(ctx, b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if b.PipelineScheduleID != nil {
		if err := g.store.DeleteSchedule(ctx, *b.PipelineScheduleID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return c.JSON(fiber.Map{"backfill": presentBackfill(b, nil)})
}

// backfillAnswer answers with one backfill and the counts of its runs by status.
func (g *Gateway) backfillAnswer(c *fiber.Ctx, b *backfill.Backfill) error {
	counts, err := g.store.BackfillRunCounts(c.UserContext(), b.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"backfill": presentBackfill(b, counts)})
}

// mageBackfill is Mage's backfill object.
type mageBackfill struct {
	ID                 int64          `json:"id"`
	Name               string         `json:"name"`
	PipelineUUID       string         `json:"pipeline_uuid"`
	PipelineScheduleID *int64         `json:"pipeline_schedule_id"`
	BlockUUID          *string        `json:"block_uuid"`
	StartDatetime      mageTime       `json:"start_datetime"`
	EndDatetime        mageTime       `json:"end_datetime"`
	IntervalType       *string        `json:"interval_type"`
	IntervalUnits      *int           `json:"interval_units"`
	Variables          map[string]any `json:"variables"`
	Settings           map[string]any `json:"settings"`
	Status             *string        `json:"status"`
	StartedAt          mageTime       `json:"started_at"`
	CompletedAt        mageTime       `json:"completed_at"`
	CreatedAt          mageTime       `json:"created_at"`
	UpdatedAt          mageTime       `json:"updated_at"`
	// TotalRunCount is the number of runs the backfill makes, known from its dates before it
	// starts (0 while they are incomplete).
	TotalRunCount int64 `json:"total_run_count"`
	// RunStatusCounts counts the backfill's runs by status, in single-backfill answers only:
	// a list would cost a count per backfill.
	RunStatusCounts any `json:"run_status_counts,omitempty"`
}

// presentBackfill renders b; counts is nil in lists.
func presentBackfill(b *backfill.Backfill, counts map[run.Status]int64) mageBackfill {
	out := mageBackfill{
		ID: b.ID, Name: b.Name, PipelineUUID: b.PipelineUUID, PipelineScheduleID: b.PipelineScheduleID,
		StartDatetime: mtp(b.StartDatetime), EndDatetime: mtp(b.EndDatetime), IntervalUnits: b.IntervalUnits,
		Variables: b.Variables, Settings: b.Settings, StartedAt: mtp(b.StartedAt), CompletedAt: mtp(b.CompletedAt),
		CreatedAt: mt(b.CreatedAt), UpdatedAt: mt(b.UpdatedAt), TotalRunCount: b.TotalRunCount,
	}
	if counts != nil {
		out.RunStatusCounts = counts // an empty map is {}, not left out
	}
	if b.IntervalType != "" {
		out.IntervalType = &b.IntervalType
	}
	if b.Status != backfill.StatusNone {
		s := string(b.Status)
		out.Status = &s
	}
	if out.TotalRunCount == 0 {
		if ivs, err := b.Intervals(); err == nil {
			out.TotalRunCount = int64(len(ivs))
		}
	}
	return out
}
