// Package natsbus is Runyard's JetStream bus: it owns every stream, subject and durable
// consumer name (wire contracts, declared here as constants and never derived from Go
// identifiers), creates the streams and consumers idempotently, publishes commands, work and
// events, and adapts handler results to JetStream's ack protocol.
package natsbus

import (
	"strconv"
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
	SubjectCommentCmds   = "runyard.cmd.comment.>"
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
	// DurableNotifierEvents is shared by every notifier process, so each event is fanned out
	// to webhooks once.
	DurableNotifierEvents = "notifier-events"
)

// CommandSubject is the subject a command of type typ is published on.
func CommandSubject(typ string) string { return subjectCommandPrefix + typ }

// ReplySubject is the core-NATS subject a command's reply is published on.
func ReplySubject(commandID string) string { return subjectReplyPrefix + commandID }

// Event subjects. Every event subject is runyard.evt.<space>.<kind>.<a>.<b>.<c>, seven tokens,
// so one wildcard pattern filters each position; the kinds below say what a, b and c hold.
const (
	EventKindRun      = "run"       // <pipeline_uuid>.<run_id>.<status | sla_missed>
	EventKindBlockRun = "block_run" // <pipeline_uuid>.<run_id>.<status>
	EventKindComment  = "comment"   // <pipeline_uuid>.<run_id>.<created | updated | deleted>
	EventKindSync     = "sync"      // <connector_id>.<job_id>.<started | completed | failed>
	EventKindPipeline = "pipeline"  // <pipeline_uuid>.<"-">.updated
)

// RunEventSubject is runyard.evt.<space>.run.<pipeline_uuid>.<run_id>.<status>.
func RunEventSubject(space, pipelineUUID string, runID int64, status run.Status) string {
	return eventSubject(space, EventKindRun, pipelineUUID, strconv.FormatInt(runID, 10), string(status))
}

// RunSLAMissedSubject is runyard.evt.<space>.run.<pipeline_uuid>.<run_id>.sla_missed, where
// the run's status token would be: subscribers of a run's events see its SLA miss too.
func RunSLAMissedSubject(space, pipelineUUID string, runID int64) string {
	return RunEventSubject(space, pipelineUUID, runID, "sla_missed")
}

// BlockRunEventSubject is runyard.evt.<space>.block_run.<pipeline_uuid>.<run_id>.<status>.
func BlockRunEventSubject(space, pipelineUUID string, runID int64, status run.Status) string {
	return eventSubject(space, EventKindBlockRun, pipelineUUID, strconv.FormatInt(runID, 10), string(status))
}

// CommentEventSubject is runyard.evt.<space>.comment.<pipeline_uuid>.<run_id>.<action>, action
// being created, updated or deleted. A comment on a block (task) run names the block's run.
func CommentEventSubject(space, pipelineUUID string, runID int64, action string) string {
	return eventSubject(space, EventKindComment, pipelineUUID, strconv.FormatInt(runID, 10), action)
}

// SyncEventSubject is runyard.evt.<space>.sync.<connector_id>.<job_id>.<status>, status being
// started, completed or failed.
func SyncEventSubject(space, connectorID, jobID, status string) string {
	return eventSubject(space, EventKindSync, connectorID, jobID, status)
}

// PipelineUpdatedSubject is runyard.evt.<space>.pipeline.<pipeline_uuid>.-.updated. The "-"
// holds the run id's place, so pipeline_id filters work alike on every pipeline-scoped kind.
func PipelineUpdatedSubject(space, pipelineUUID string) string {
	return eventSubject(space, EventKindPipeline, pipelineUUID, "-", "updated")
}

// SpaceEventsFilter is the subject filter of every event of space.
func SpaceEventsFilter(space string) string {
	return subjectEventPrefix + EventToken(space) + ".>"
}

// EventSubject is an event subject split into its tokens, still encoded (compare them with
// EventToken of a value).
type EventSubject struct {
	Space, Kind string
	// A, B and C are the kind's three tokens: for run, block_run and comment events the
	// pipeline uuid, the run id and the status or action.
	A, B, C string
}

// ParseEventSubject splits an event subject; ok is false for anything else.
func ParseEventSubject(subject string) (EventSubject, bool) {
	rest, found := strings.CutPrefix(subject, subjectEventPrefix)
	if !found {
		return EventSubject{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 5 {
		return EventSubject{}, false
	}
	return EventSubject{Space: parts[0], Kind: parts[1], A: parts[2], B: parts[3], C: parts[4]}, true
}

// Pipeline is the encoded pipeline uuid of a pipeline-scoped event, empty for other kinds.
func (s EventSubject) Pipeline() string {
	switch s.Kind {
	case EventKindRun, EventKindBlockRun, EventKindComment, EventKindPipeline:
		return s.A
	}
	return ""
}

// RunID is the run id token of a run-scoped event, empty for other kinds.
func (s EventSubject) RunID() string {
	switch s.Kind {
	case EventKindRun, EventKindBlockRun, EventKindComment:
		return s.B
	}
	return ""
}

func eventSubject(space, kind, a, b, c string) string {
	var sb strings.Builder
	sb.Grow(len(subjectEventPrefix) + len(space) + len(kind) + len(a) + len(b) + len(c) + 5)
	sb.WriteString(subjectEventPrefix)
	for i, t := range [...]string{space, kind, a, b, c} {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(EventToken(t))
	}
	return sb.String()
}

// EventToken encodes a value as one subject token: each byte that NATS gives a meaning to
// ('.', '*', '>'), the escape byte '%', and every space, control or non-ASCII byte becomes %XX
// (upper-case hex), so the encoding is reversible and distinct values never share a token.
// The empty value becomes "%", which no non-empty value encodes to. Space slugs, pipeline
// uuids and ids are validated to need no escaping; Airflow DAG ids may hold '.'.
func EventToken(s string) string {
	if s == "" {
		return "%"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if escapeByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if escapeByte(c) {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func escapeByte(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}
