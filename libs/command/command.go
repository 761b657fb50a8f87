// Package command defines the commands the gateway sends to workers over JetStream and the
// replies workers send back. A command is imperative ("trigger this run"); its envelope id is
// both the JetStream message id (so a re-published command is dropped by the server) and a
// unique key in the store (so a redelivered command has no second effect).
package command

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/runyard/runyard/libs/run"
)

// Command types. They are wire names: never derive them from Go identifiers.
const (
	TypeTriggerRun = "pipeline_run.trigger"
	TypeCancelRun  = "pipeline_run.cancel"
	TypeRetryRun   = "pipeline_run.retry"
)

// Envelope is a command as it travels on the bus.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Space     string          `json:"space"`
	Principal string          `json:"principal"`
	IssuedAt  time.Time       `json:"issued_at"`
	ReplyTo   string          `json:"reply_to,omitempty"`
	Payload   json.RawMessage `json:"payload"`
}

// TriggerRun asks an executor to create and start a pipeline run.
type TriggerRun struct {
	PipelineUUID string `json:"pipeline_uuid"`
	// ScheduleID is the schedule the run belongs to; 0 triggers the pipeline itself (the
	// orchestration API's manual trigger), with the pipeline's settings and variables only.
	ScheduleID     int64          `json:"pipeline_schedule_id"`
	Variables      map[string]any `json:"variables"`
	EventVariables map[string]any `json:"event_variables"`
	ExecutionDate  *time.Time     `json:"execution_date,omitempty"`
	// RunType says what started the run: api, scheduled, manual or backfill.
	RunType string `json:"run_type"`
	// BackfillID is set on the runs of a backfill.
	BackfillID *int64 `json:"backfill_id,omitempty"`
	// Note is the caller's note on the run.
	Note string `json:"note,omitempty"`
}

// CancelRun asks an executor to cancel a run: its unfinished block runs are cancelled and
// their processes killed, wherever they run.
type CancelRun struct {
	PipelineRunID int64 `json:"pipeline_run_id"`
}

// RetryRun asks an executor to run again the blocks of a finished run that did not complete,
// or, with FromBlockUUID, that block and everything downstream of it.
type RetryRun struct {
	PipelineRunID int64  `json:"pipeline_run_id"`
	FromBlockUUID string `json:"from_block_uuid,omitempty"`
}

// Reply statuses.
const (
	ReplySucceeded = "succeeded"
	ReplyFailed    = "failed"
)

// Reply is a worker's answer to a command. Code is an HTTP status that tells the gateway how
// to answer its client: 2xx with Result, or an error with Message.
type Reply struct {
	CommandID string          `json:"command_id"`
	Status    string          `json:"status"`
	Code      int             `json:"code"`
	Message   string          `json:"message,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
}

// RunResult is the Result of a successful TriggerRun, CancelRun or RetryRun: the run and its
// block runs as they are after the command.
type RunResult struct {
	Run       run.PipelineRun `json:"pipeline_run"`
	BlockRuns []run.BlockRun  `json:"block_runs"`
}

// NewID returns a random command id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// IdempotentID derives a command id from a client's Idempotency-Key, scoped so that the same
// key used on two different targets names two different commands.
func IdempotentID(space, scope, key string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s", space, scope, key)))
	return hex.EncodeToString(h[:16])
}

// New builds an envelope carrying payload.
func New(id, typ, space, principal string, payload any) (Envelope, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("command: encode %s payload: %w", typ, err)
	}
	return Envelope{ID: id, Type: typ, Space: space, Principal: principal, IssuedAt: time.Now().UTC(), Payload: raw}, nil
}
