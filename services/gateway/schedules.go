package gateway

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

type scheduleBody struct {
	Schedule *scheduleFields `json:"pipeline_schedule"`
}

// scheduleFields are the writable fields of a schedule; pointers tell absent from empty.
type scheduleFields struct {
	Name             *string          `json:"name"`
	Description      *string          `json:"description"`
	ScheduleType     *string          `json:"schedule_type"`
	ScheduleInterval *string          `json:"schedule_interval"`
	StartTime        *json.RawMessage `json:"start_time"`
	Status           *string          `json:"status"`
	Timezone         *string          `json:"timezone"`
	Variables        map[string]any   `json:"variables"`
	SLA              *int64           `json:"sla"`
	Settings         map[string]any   `json:"settings"`
	RotateToken      bool             `json:"rotate_token"`
}

func (f *scheduleFields) apply(s *schedule.Schedule, now time.Time) error {
	wasActive := s.Status == schedule.StatusActive
	if f.Name != nil {
		s.Name = *f.Name
	}
	if f.Description != nil {
		s.Description = *f.Description
	}
	if f.ScheduleType != nil {
		s.ScheduleType = *f.ScheduleType
	}
	if f.ScheduleInterval != nil {
		s.ScheduleInterval = *f.ScheduleInterval
	}
	if f.StartTime != nil {
		var raw *string
		if err := json.Unmarshal(*f.StartTime, &raw); err != nil {
			return validation.New("pipeline_schedule.start_time", "must be a datetime string or null")
		}
		s.StartTime = nil
		if raw != nil && *raw != "" {
			t, ok := parseTime(*raw)
			if !ok {
				return validation.New("pipeline_schedule.start_time", "%q is not a datetime: use 2026-01-01 00:00:00 or RFC 3339", *raw)
			}
			s.StartTime = &t
		}
	}
	if f.Status != nil {
		s.Status = *f.Status
	}
	if f.Timezone != nil {
		s.Timezone = *f.Timezone
	}
	if f.Variables != nil {
		s.Variables = f.Variables
	}
	if f.SLA != nil {
		s.SLA = *f.SLA
	}
	if f.Settings != nil {
		s.Settings = f.Settings
	}
	s.Normalize()
	if err := s.Validate("pipeline_schedule"); err != nil {
		return err
	}
	if s.Status == schedule.StatusActive && !wasActive {
		s.LastEnabledAt = &now
	}
	if (f.RotateToken || s.Token == "") && s.ScheduleType == schedule.TypeAPI {
		s.Token = schedule.NewToken()
	}
	return nil
}

func decodeSchedule(c *fiber.Ctx) (*scheduleFields, error) {
	var body scheduleBody
	if err := decodeBody(c, &body); err != nil {
		return nil, prefixField(err, "pipeline_schedule")
	}
	if body.Schedule == nil {
		return nil, validation.New("pipeline_schedule", "is required: send {\"pipeline_schedule\": {...}}")
	}
	return body.Schedule, nil
}

func (g *Gateway) createSchedule(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	if err := nativeOnly(p, "schedule"); err != nil {
		return err
	}
	f, err := decodeSchedule(c)
	if err != nil {
		return err
	}
	now := store.Now()
	s := &schedule.Schedule{Space: p.Space, PipelineUUID: p.UUID, CreatedAt: now, UpdatedAt: now}
	if err := f.apply(s, now); err != nil {
		return err
	}
	ctx := c.UserContext()
	if s.ID, err = g.schedIDs.One(ctx); err != nil {
		return err
	}
	if err := g.store.CreateSchedule(ctx, s); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_schedule": presentSchedule(s)})
}

func (g *Gateway) listPipelineSchedules(c *fiber.Ctx) error {
	p, err := g.loadPipeline(c)
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	scs, total, err := g.store.ListSchedules(c.UserContext(), store.ScheduleFilter{Space: p.Space, PipelineUUID: p.UUID}, pg)
	if err != nil {
		return err
	}
	out := make([]mageSchedule, len(scs))
	for i := range scs {
		out[i] = presentSchedule(&scs[i])
	}
	return c.JSON(fiber.Map{"pipeline_schedules": out, "metadata": metadata(pg, len(scs), total)})
}

// loadSchedule resolves a schedule by its global id for the caller. Ids are global, so the
// schedule's own space is the one the request acts in, and the caller's role there decides.
func (g *Gateway) loadSchedule(c *fiber.Ctx) (*schedule.Schedule, error) {
	s, err := g.findSchedule(c)
	if err != nil {
		return nil, err
	}
	if err := g.authorize(c, s.Space, errNotFound("pipeline schedule %d not found", s.ID)); err != nil {
		return nil, err
	}
	return s, nil
}

// findSchedule resolves a schedule by its global id without authorizing the caller: for the
// trigger routes, which the schedule's token authorizes.
func (g *Gateway) findSchedule(c *fiber.Ctx) (*schedule.Schedule, error) {
	id, err := intParam(c, "id", "pipeline schedule")
	if err != nil {
		return nil, err
	}
	s, err := g.store.GetSchedule(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("pipeline schedule %d not found", id)
	}
	return s, err
}

func (g *Gateway) getSchedule(c *fiber.Ctx) error {
	s, err := g.loadSchedule(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_schedule": presentSchedule(s)})
}

func (g *Gateway) updateSchedule(c *fiber.Ctx) error {
	s, err := g.loadSchedule(c)
	if err != nil {
		return err
	}
	f, err := decodeSchedule(c)
	if err != nil {
		return err
	}
	s, err = g.store.UpdateSchedule(c.UserContext(), s.ID, func(s *schedule.Schedule) error {
		return f.apply(s, store.Now())
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("pipeline schedule %s not found", c.Params("id"))
	} else if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_schedule": presentSchedule(s)})
}

// deleteSchedule removes a schedule; like Mage, its runs are neither cancelled nor deleted.
func (g *Gateway) deleteSchedule(c *fiber.Ctx) error {
	s, err := g.loadSchedule(c)
	if err != nil {
		return err
	}
	if err := g.store.DeleteSchedule(c.UserContext(), s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return c.JSON(fiber.Map{"pipeline_schedule": presentSchedule(s)})
}
