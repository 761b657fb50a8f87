// Package natsbus is Runyard's JetStream bus: it owns every stream, subject and durable
// consumer name (wire contracts, declared here as constants and never derived from Go
// identifiers), creates the streams and consumers idempotently, publishes commands, work and
// events, and adapts handler results to JetStream's ack protocol.
package natsbus

import (
	"fmt"
	"strings"

	"github.com/runyard/runyard/libs/run"
)

// Streams.
const (
	StreamCommands = "RUNYARD_CMD"
	StreamWork     = "RUNYARD_WORK"
	StreamEvents   = "RUNYARD_EVT"
)

// Subjects and subject prefixes.
const (
	SubjectCommands      = "runyard.cmd.>"
	SubjectWork          = "runyard.work.>"
	SubjectEvents        = "runyard.evt.>"
	SubjectRunCommands   = "runyard.cmd.pipeline_run.>"
	SubjectBackfillCmds  = "runyard.cmd.backfill.>"
	SubjectSyncCommands  = "runyard.cmd.sync.>"
	SubjectBlockWork     = "runyard.work.block"
	subjectCommandPrefix = "runyard.cmd."
	subjectReplyPrefix   = "runyard.reply."
	subjectEventPrefix   = "runyard.evt."
)

// Durable consumer names. Renaming one makes the server create a new consumer that starts
// over, so these never change.
const (
	DurableExecutorCommands   = "executor-commands"
	DurableExecutorWork       = "executor-work"
	DurableSyncWorkerCommands = "syncworker-commands"
)

// CommandSubject is the subject a command of type typ is published on.
func CommandSubject(typ string) string { return subjectCommandPrefix + typ }

// ReplySubject is the core-NATS subject a command's reply is published on.
func ReplySubject(commandID string) string { return subjectReplyPrefix + commandID }

// RunEventSubject is runyard.evt.<space>.run.<pipeline_uuid>.<run_id>.<status>.
func RunEventSubject(space, pipelineUUID string, runID int64, status run.Status) string {
	return fmt.Sprintf("%s%s.run.%s.%d.%s", subjectEventPrefix, token(space), token(pipelineUUID), runID, status)
}

// RunSLAMissedSubject is runyard.evt.<space>.run.<pipeline_uuid>.<run_id>.sla_missed, where
// the run's status token would be: subscribers of a run's events see its SLA miss too.
func RunSLAMissedSubject(space, pipelineUUID string, runID int64) string {
	return RunEventSubject(space, pipelineUUID, runID, "sla_missed")
}

// BlockRunEventSubject is runyard.evt.<space>.block_run.<pipeline_uuid>.<run_id>.<status>.
func BlockRunEventSubject(space, pipelineUUID string, runID int64, status run.Status) string {
	return fmt.Sprintf("%s%s.block_run.%s.%d.%s", subjectEventPrefix, token(space), token(pipelineUUID), runID, status)
}

// token keeps a value usable as one subject token. Space slugs and pipeline uuids are
// validated to need no change; this guards against a value that slipped through.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}
