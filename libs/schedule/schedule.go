// Package schedule defines pipeline schedules (Mage's "triggers"): how and when runs of a
// pipeline are created, and the rules that make a schedule valid.
package schedule

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/runyard/runyard/libs/validation"
)

// Schedule types.
const (
	TypeAPI   = "api"
	TypeTime  = "time"
	TypeEvent = "event"
)

// Statuses.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// Interval presets, besides cron expressions.
var Presets = []string{"@once", "@hourly", "@daily", "@weekly", "@monthly", "@always_on"}

// Schedule is a trigger of a pipeline.
type Schedule struct {
	ID               int64      `json:"id" bson:"_id"`
	Space            string     `json:"space" bson:"space"`
	PipelineUUID     string     `json:"pipeline_uuid" bson:"pipeline_uuid"`
	Name             string     `json:"name" bson:"name"`
	Description      string     `json:"description" bson:"description"`
	ScheduleType     string     `json:"schedule_type" bson:"schedule_type"`
	ScheduleInterval string     `json:"schedule_interval" bson:"schedule_interval"`
	StartTime        *time.Time `json:"start_time" bson:"start_time"`
	// Timezone is the IANA zone time schedules are computed in; empty means UTC.
	Timezone      string         `json:"timezone" bson:"timezone"`
	Status        string         `json:"status" bson:"status"`
	Variables     map[string]any `json:"variables" bson:"variables"`
	SLA           int64          `json:"sla" bson:"sla"`
	Settings      map[string]any `json:"settings" bson:"settings"`
	Token         string         `json:"token" bson:"token"`
	LastEnabledAt *time.Time     `json:"last_enabled_at" bson:"last_enabled_at"`
	CreatedAt     time.Time      `json:"created_at" bson:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at" bson:"updated_at"`
	Version       int64          `json:"version" bson:"version"`
}

// cronParser reads Mage's 5-field cron expressions, and 6-field ones whose first field is the
// second, for schedules finer than a minute.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// NewToken returns a fresh trigger token: 32 hex characters, like Mage's uuid4 hex.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// TokenMatches compares a presented token with the schedule's in constant time.
func (s *Schedule) TokenMatches(token string) bool {
	return s.Token != "" && subtle.ConstantTimeCompare([]byte(s.Token), []byte(token)) == 1
}

// Normalize fills defaults: type api, status inactive (Mage's default), empty maps.
func (s *Schedule) Normalize() {
	s.Name = strings.TrimSpace(s.Name)
	s.ScheduleInterval = strings.TrimSpace(s.ScheduleInterval)
	if s.ScheduleType == "" {
		s.ScheduleType = TypeAPI
	}
	if s.Status == "" {
		s.Status = StatusInactive
	}
	if s.Variables == nil {
		s.Variables = map[string]any{}
	}
	if s.Settings == nil {
		s.Settings = map[string]any{}
	}
}

// Validate reports every problem with the schedule; field paths start at prefix.
func (s *Schedule) Validate(prefix string) error {
	var errs validation.Errors
	if s.Name == "" {
		errs.Add(prefix+".name", "is required")
	} else if len(s.Name) > 255 {
		errs.Add(prefix+".name", "must be at most 255 characters")
	}
	if !slices.Contains([]string{TypeAPI, TypeTime, TypeEvent}, s.ScheduleType) {
		errs.Add(prefix+".schedule_type", "must be one of api, time, event")
	}
	if !slices.Contains([]string{StatusActive, StatusInactive}, s.Status) {
		errs.Add(prefix+".status", "must be active or inactive")
	}
	if s.ScheduleInterval != "" && !slices.Contains(Presets, s.ScheduleInterval) {
		if _, err := cronParser.Parse(s.ScheduleInterval); err != nil {
			errs.Add(prefix+".schedule_interval", "must be one of %s or a cron expression (5 fields, or 6 with seconds first): %v", strings.Join(Presets, ", "), err)
		}
	}
	if s.ScheduleType == TypeTime && s.ScheduleInterval == "" {
		errs.Add(prefix+".schedule_interval", "is required for a time schedule")
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			errs.Add(prefix+".timezone", "unknown IANA time zone %q", s.Timezone)
		}
	}
	if s.SLA < 0 {
		errs.Add(prefix+".sla", "must be a number of seconds, zero or more")
	}
	return errs.Err()
}
