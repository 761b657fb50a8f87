// Package event defines the versioned events Runyard publishes for subscribers: run and block
// run status changes, SLA misses, comments, syncs and pipeline updates. Events are past-tense
// facts; each carries the full resource, a stable id (so a republished event is recognised)
// and, for run-scoped events, a sequence number that orders the states of the run's resources.
package event

import (
	"fmt"
	"slices"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
)

// Event types. They are wire names: never derive them from Go identifiers.
const (
	TypePipelineRunStatusChanged = "pipeline_run.status_changed"
	TypeBlockRunStatusChanged    = "block_run.status_changed"
	// TypePipelineRunSLAMissed: the run was still unfinished when its schedule's SLA (seconds
	// after the execution date) passed. The run goes on; passed_sla is now true.
	TypePipelineRunSLAMissed = "pipeline_run.sla_missed"
	TypeCommentCreated       = "comment.created"
	TypeCommentUpdated       = "comment.updated"
	TypeCommentDeleted       = "comment.deleted"
	TypeSyncStarted          = "sync.started"
	TypeSyncCompleted        = "sync.completed"
	TypeSyncFailed           = "sync.failed"
	TypePipelineUpdated      = "pipeline.updated"
)

// Types lists every event type, for validating subscriber filters.
var Types = []string{
	TypePipelineRunStatusChanged, TypeBlockRunStatusChanged, TypePipelineRunSLAMissed,
	TypeCommentCreated, TypeCommentUpdated, TypeCommentDeleted,
	TypeSyncStarted, TypeSyncCompleted, TypeSyncFailed,
	TypePipelineUpdated,
}

// Known reports whether typ is an event type.
func Known(typ string) bool { return slices.Contains(Types, typ) }

// Version is the payload schema version. Changes are additive; a breaking change bumps it.
const Version = 1

// Event is the JSON payload published on the event stream.
type Event struct {
	Type       string    `json:"type"`
	Version    int       `json:"version"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Space      string    `json:"space"`
	// RunID is the run a run-scoped event (run, block run, SLA, comment) is about.
	RunID int64 `json:"run_id,omitempty"`
	// Sequence orders the states of one run's resources; see RunSequence.
	Sequence    int64            `json:"sequence"`
	PipelineRun *run.PipelineRun `json:"pipeline_run,omitempty"`
	BlockRun    *run.BlockRun    `json:"block_run,omitempty"`
	// Comment, Sync and Pipeline carry the resource of comment.*, sync.* and pipeline.updated
	// events, as their own packages define it.
	Comment  any `json:"comment,omitempty"`
	Sync     any `json:"sync,omitempty"`
	Pipeline any `json:"pipeline,omitempty"`
}

// RunSequence is the sequence of a run-scoped event: version × (blocks + 2) + position, where
// version is the version of the resource the event is about, blocks the number of blocks in
// the run's DAG (fixed when the run is created), and position 0 for the run itself, 1 + the
// block's index in the DAG for a block run, or blocks + 1 for a block run whose block is not
// in the DAG (a mirrored task run).
//
// Every write of a resource is a conditional update on its version, so concurrent executors
// can never publish two different states with the same version: each (resource, version)
// pair, and so each sequence, is unique within the run, and a resource's later state always
// has a higher sequence. A consumer keeps the last sequence it applied per resource (the run,
// or each block run) and drops an event whose sequence is not above it. Across resources, a
// higher sequence is not necessarily a later change: two blocks running at once change in no
// defined order.
func RunSequence(r *run.PipelineRun, version int64, blockUUID string) int64 {
	stride := int64(len(r.Blocks)) + 2
	pos := int64(0)
	if blockUUID != "" {
		pos = stride - 1
		for i := range r.Blocks {
			if r.Blocks[i].UUID == blockUUID {
				pos = int64(i) + 1
				break
			}
		}
	}
	return version*stride + pos
}

// PipelineRunStatusChanged is the event of r's current state. Its id is the run and its
// version: publishing the same state twice yields the same event.
func PipelineRunStatusChanged(r *run.PipelineRun) Event {
	return Event{
		Type: TypePipelineRunStatusChanged, Version: Version,
		ID: fmt.Sprintf("pipeline_run-%d-v%d", r.ID, r.Version), OccurredAt: occurred(r.UpdatedAt),
		Space: r.Space, RunID: r.ID, Sequence: RunSequence(r, r.Version, ""), PipelineRun: r,
	}
}

// BlockRunStatusChanged is the event of br's current state within run r.
func BlockRunStatusChanged(r *run.PipelineRun, br *run.BlockRun) Event {
	return Event{
		Type: TypeBlockRunStatusChanged, Version: Version,
		ID: fmt.Sprintf("block_run-%d-v%d", br.ID, br.Version), OccurredAt: occurred(br.UpdatedAt),
		Space: br.Space, RunID: r.ID, Sequence: RunSequence(r, br.Version, br.BlockUUID), BlockRun: br,
	}
}

// PipelineRunSLAMissed is the event of r having passed its SLA; r is the run as marked.
// A run misses its SLA once, so the id holds no version.
func PipelineRunSLAMissed(r *run.PipelineRun) Event {
	return Event{
		Type: TypePipelineRunSLAMissed, Version: Version,
		ID: fmt.Sprintf("pipeline_run-%d-sla_missed", r.ID), OccurredAt: occurred(r.UpdatedAt),
		Space: r.Space, RunID: r.ID, Sequence: RunSequence(r, r.Version, ""), PipelineRun: r,
	}
}

// PipelineUpdated is the event of p's current definition and metadata (created, changed,
// its team or criticality set, or its provider state synced). Its id is the pipeline and its
// version, and its sequence the version: a higher one is a newer state of the pipeline.
func PipelineUpdated(p *pipeline.Pipeline) Event {
	return Event{
		Type: TypePipelineUpdated, Version: Version,
		ID: fmt.Sprintf("pipeline-%s-%s-v%d", p.Space, p.UUID, p.Version), OccurredAt: occurred(p.UpdatedAt),
		Space: p.Space, Sequence: p.Version, Pipeline: p,
	}
}

func occurred(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}
