// Package event defines the versioned run-status events Runyard publishes for subscribers.
// Events are past-tense facts; each carries the full resource and a sequence number (the
// resource's version) so a consumer can drop an update older than one it already applied.
package event

import (
	"time"

	"github.com/runyard/runyard/libs/run"
)

// Event types. They are wire names: never derive them from Go identifiers.
const (
	TypePipelineRunStatusChanged = "pipeline_run.status_changed"
	TypeBlockRunStatusChanged    = "block_run.status_changed"
	// TypePipelineRunSLAMissed: the run was still unfinished when its schedule's SLA (seconds
	// after the execution date) passed. The run goes on; passed_sla is now true.
	TypePipelineRunSLAMissed = "pipeline_run.sla_missed"
)

// Version is the payload schema version. Changes are additive; a breaking change bumps it.
const Version = 1

// Event is the JSON payload published on the event stream.
type Event struct {
	Type       string    `json:"type"`
	Version    int       `json:"version"`
	ID         string    `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Space      string    `json:"space"`
	// Sequence orders events about the same resource: a higher sequence is a newer state.
	Sequence    int64            `json:"sequence"`
	PipelineRun *run.PipelineRun `json:"pipeline_run,omitempty"`
	BlockRun    *run.BlockRun    `json:"block_run,omitempty"`
}
