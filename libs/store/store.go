// Package store holds the vocabulary shared by Runyard's store implementations and their
// consumers: the errors a store returns and the query types it takes. The store interfaces
// themselves are declared by the packages that consume them.
package store

import (
	"errors"
	"time"

	"github.com/runyard/runyard/libs/run"
)

// Errors every store implementation returns, wrapped, so callers can test with errors.Is.
var (
	// ErrNotFound: no record matches.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a record with the same unique key exists.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrConflict: an optimistic update kept losing to concurrent writers.
	ErrConflict = errors.New("store: concurrent update conflict")
)

// Page selects a window of a list: at most Limit items after skipping Offset.
type Page struct {
	Limit  int
	Offset int
}

// RunFilter selects pipeline runs. Zero fields do not filter.
type RunFilter struct {
	Space        string
	ScheduleID   int64
	PipelineUUID string
	Status       run.Status
	// BackfillID selects the runs of one backfill.
	BackfillID int64
	// OldestFirst lists in execution-date order instead of the newest first.
	OldestFirst bool
	// RunType selects runs of one run type (run.TypeManual, ...).
	RunType string
	// StartedFrom and StartedTo bound the runs' start time (StartedAt), both inclusive; a run
	// that has not started matches neither. With either set, runs are listed by start time,
	// newest first (OldestFirst still reverses), so that an index serves the window.
	StartedFrom *time.Time
	StartedTo   *time.Time
}

// ByStart reports whether f bounds the start time, and so lists by it.
func (f RunFilter) ByStart() bool { return f.StartedFrom != nil || f.StartedTo != nil }

// BlockRunFilter selects block runs. Zero fields do not filter.
type BlockRunFilter struct {
	Space         string
	PipelineRunID int64
	PipelineUUID  string
}

// ScheduleFilter selects schedules. Zero fields do not filter: an empty Space lists the
// schedules of every space.
type ScheduleFilter struct {
	Space        string
	PipelineUUID string
	// Type is a schedule type (schedule.TypeTime, ...).
	Type string
	// Status is schedule.StatusActive or schedule.StatusInactive.
	Status string
}

// APIKey is a stored API key: only its hash, never its value. A key belongs to a user and
// acts with that user's rights.
type APIKey struct {
	Hash string `bson:"_id" json:"hash"`
	// ID is the key's public id (key_…), by which its owner lists and revokes it.
	ID string `bson:"id" json:"id"`
	// UserID is the user the key belongs to.
	UserID    string `bson:"user_id" json:"user_id"`
	Name      string `bson:"name" json:"name"`
	Principal string `bson:"principal" json:"principal"`
	// Admin marks the keys stored before keys had users, which were all admin keys; a key's
	// rights are now its user's.
	Admin     bool      `bson:"admin" json:"admin"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
	// LastUsedAt is when the key last authenticated a request, to the minute or so: gateways
	// record it when they read the key from the store, not on every request.
	LastUsedAt *time.Time `bson:"last_used_at,omitempty" json:"last_used_at,omitempty"`
}

// CommandOutcome is the stored result of a command that did not produce a resource of its
// own (a failure, or a command whose result is not a run). It lets a client poll a command
// the gateway answered 202 for, and makes a repeated Idempotency-Key return the first result.
type CommandOutcome struct {
	ID      string `bson:"_id" json:"id"`
	Type    string `bson:"type" json:"type"`
	Space   string `bson:"space" json:"space"`
	Status  string `bson:"status" json:"status"`
	Code    int    `bson:"code" json:"code"`
	Message string `bson:"message" json:"message"`
	// RunID is the run a successful command acted on.
	RunID     int64     `bson:"run_id,omitempty" json:"run_id,omitempty"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
}

// Now returns the current UTC time at the precision every store keeps (MongoDB dates hold
// milliseconds), so a value returned before and after a round trip through a store is equal.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// PipelineStats summarizes the runs of one pipeline whose execution date falls in a window.
// Stores keep the counts up to date as runs change, so reading them never scans runs.
type PipelineStats struct {
	PipelineUUID string
	// Runs counts the window's runs by their current status.
	Runs map[run.Status]int64
	// CompletedSeconds is the summed duration (started to completed) of the completed runs.
	CompletedSeconds float64
	// LastRun is the pipeline's most recent run, in or out of the window; nil when none.
	LastRun *LastRun
}

// LastRun identifies a pipeline's most recent run.
type LastRun struct {
	ID            int64
	Status        run.Status
	ExecutionDate time.Time
}

// Total is the number of runs in the window.
func (s PipelineStats) Total() int64 {
	var n int64
	for _, c := range s.Runs {
		n += c
	}
	return n
}

// SuccessRate is completed runs over finished runs (completed, failed, cancelled), and false
// when none finished.
func (s PipelineStats) SuccessRate() (float64, bool) {
	done := s.Runs[run.StatusCompleted] + s.Runs[run.StatusFailed] + s.Runs[run.StatusCancelled]
	if done == 0 {
		return 0, false
	}
	return float64(s.Runs[run.StatusCompleted]) / float64(done), true
}

// MeanDuration is the mean duration of completed runs in seconds, and false when none.
func (s PipelineStats) MeanDuration() (float64, bool) {
	n := s.Runs[run.StatusCompleted]
	if n == 0 {
		return 0, false
	}
	return s.CompletedSeconds / float64(n), true
}

// StatsDay is the day bucket of an execution date: days since the Unix epoch, UTC.
func StatsDay(t time.Time) int64 { return t.UnixMilli() / (24 * 60 * 60 * 1000) }
