// Package comment holds comments on pipeline runs and task runs (Qarion's run and task
// comments): investigation notes, hand-offs, incident context. A comment belongs to the space
// of the run or task run it is about; only executors write comments, as the effect of
// comment commands, so a comment's id is derived from the command that created it.
package comment

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runyard/runyard/libs/validation"
)

// TargetType says what a comment is about. The values are wire names.
type TargetType string

// Target types.
const (
	// TargetRun is a pipeline run.
	TargetRun TargetType = "run"
	// TargetTaskRun is a task run: a native block run, or an Airflow task instance mirrored
	// as one.
	TargetTaskRun TargetType = "task_run"
)

// Valid reports whether t is a known target type.
func (t TargetType) Valid() bool { return t == TargetRun || t == TargetTaskRun }

// MaxBodyLength bounds a comment's body, in characters after trimming.
const MaxBodyLength = 10000

// ErrNoChange is returned by an update closure that finds the comment already as the command
// would leave it (a redelivered or superseded command); nothing is written.
var ErrNoChange = errors.New("comment: no change")

// Comment is a comment on a run or a task run.
type Comment struct {
	ID         string     `json:"id" bson:"_id"`
	Space      string     `json:"space" bson:"space"`
	TargetType TargetType `json:"target_type" bson:"target_type"`
	TargetID   int64      `json:"target_id" bson:"target_id"`
	// PipelineUUID and PipelineRunID locate the target (for a task run, the run it belongs
	// to), so that events about the comment go on its run's subjects.
	PipelineUUID  string `json:"pipeline_uuid" bson:"pipeline_uuid"`
	PipelineRunID int64  `json:"pipeline_run_id" bson:"pipeline_run_id"`
	Body          string `json:"body" bson:"body"`
	// Author is the user id of the comment's author.
	Author string `json:"author" bson:"author"`
	// CommandID is the command that last wrote the comment: a redelivery of it is a no-op.
	CommandID string `json:"command_id" bson:"command_id"`
	// CreatedAt and UpdatedAt are the issue times of the commands that created and last
	// edited the comment: an edit issued before the last applied one is stale.
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
	Version   int64     `json:"version" bson:"version"`
}

// IDFor is the id of the comment created by command commandID: a create command handled
// twice names the same comment, so it never makes a second one.
func IDFor(commandID string) string { return "cmt_" + commandID }

// NormalizeBody trims a body as it is stored.
func NormalizeBody(s string) string { return strings.TrimSpace(s) }

// ValidateBody checks a normalized body; the error names field.
func ValidateBody(field, s string) error {
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return validation.New(field, "must not be empty")
	case n > MaxBodyLength:
		return validation.New(field, "must be at most %d characters, not %d", MaxBodyLength, n)
	}
	return nil
}

// Edit applies an edit to c as command commandID issued at `at` would: it sets the body and
// the edit time, or returns ErrNoChange when the command was already applied or a later
// edit was.
func (c *Comment) Edit(commandID string, at time.Time, body string) error {
	if c.CommandID == commandID || at.Before(c.UpdatedAt) {
		return ErrNoChange
	}
	c.Body, c.UpdatedAt, c.CommandID = body, at, commandID
	return nil
}
