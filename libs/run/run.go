// Package run defines pipeline runs and block runs, their statuses, and the pure rules that
// advance a run through its pipeline's block DAG.
package run

import (
	"errors"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
)

// Status is the status of a pipeline run or a block run.
type Status string

// Pipeline-run statuses: initial → running → completed | failed | cancelled.
// Block-run statuses add queued and upstream_failed.
const (
	StatusInitial        Status = "initial"
	StatusQueued         Status = "queued"
	StatusRunning        Status = "running"
	StatusCompleted      Status = "completed"
	StatusFailed         Status = "failed"
	StatusCancelled      Status = "cancelled"
	StatusUpstreamFailed Status = "upstream_failed"
)

// Terminal reports whether nothing more happens to a run or block run in status s.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusUpstreamFailed:
		return true
	}
	return false
}

// Run types: what started a run.
const (
	TypeAPI       = "api"
	TypeScheduled = "scheduled"
	TypeManual    = "manual"
	TypeBackfill  = "backfill"
)

// Airflow's run types, kept as Airflow names them on mirrored runs (manual, scheduled and
// backfill share the native names).
const (
	TypeAssetTriggered   = "asset_triggered"
	TypeDatasetTriggered = "dataset_triggered"
)

// ErrNoChange is returned by an update closure that finds nothing to change (the transition it
// wanted already happened, or is no longer allowed); the store then writes nothing.
var ErrNoChange = errors.New("run: no change")

// PipelineRun is one execution of a pipeline.
type PipelineRun struct {
	ID                 int64            `json:"id" bson:"_id"`
	Space              string           `json:"space" bson:"space"`
	PipelineUUID       string           `json:"pipeline_uuid" bson:"pipeline_uuid"`
	PipelineScheduleID int64            `json:"pipeline_schedule_id" bson:"pipeline_schedule_id"`
	CommandID          string           `json:"command_id" bson:"command_id"`
	ExecutionDate      time.Time        `json:"execution_date" bson:"execution_date"`
	Status             Status           `json:"status" bson:"status"`
	StartedAt          *time.Time       `json:"started_at" bson:"started_at"`
	CompletedAt        *time.Time       `json:"completed_at" bson:"completed_at"`
	Variables          map[string]any   `json:"variables" bson:"variables"`
	EventVariables     map[string]any   `json:"event_variables" bson:"event_variables"`
	Metrics            map[string]any   `json:"metrics" bson:"metrics"`
	PassedSLA          bool             `json:"passed_sla" bson:"passed_sla"`
	BackfillID         *int64           `json:"backfill_id" bson:"backfill_id"`
	ExecutorType       string           `json:"executor_type" bson:"executor_type"`
	RunType            string           `json:"run_type" bson:"run_type"`
	Blocks             []pipeline.Block `json:"blocks" bson:"blocks"` // the DAG as it was when the run was created
	Settings           Settings         `json:"settings" bson:"settings"`
	// RuntimeVariables are what blocks see: pipeline < schedule < run variables, then event
	// variables not yet defined, then the reserved keys.
	RuntimeVariables map[string]any `json:"runtime_variables" bson:"runtime_variables"`
	// LastStartedAt is when the run last started or was retried; its timeout counts from here.
	LastStartedAt *time.Time `json:"last_started_at" bson:"last_started_at"`
	// Provider is the pipeline's provider (empty for native runs); ConnectorID and
	// ProviderRunID (Airflow's dag_run_id) identify a mirrored run at its source.
	Provider      string `json:"provider,omitempty" bson:"provider,omitempty"`
	ConnectorID   string `json:"connector_id,omitempty" bson:"connector_id,omitempty"`
	ProviderRunID string `json:"provider_run_id,omitempty" bson:"provider_run_id,omitempty"`
	// Note is the provider's note on the run (Airflow's dag run note).
	Note      string    `json:"note,omitempty" bson:"note,omitempty"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
	Version   int64     `json:"version" bson:"version"`
}

// Settings are the execution settings a run was created with, from its pipeline and schedule.
type Settings struct {
	AllowBlocksToFail bool `json:"allow_blocks_to_fail" bson:"allow_blocks_to_fail"`
	// Timeout bounds the run from its (re)start, in seconds; 0 means none.
	Timeout float64 `json:"timeout,omitempty" bson:"timeout,omitempty"`
	// TimeoutStatus is the status a timed-out run ends with: failed (default) or cancelled.
	TimeoutStatus Status `json:"timeout_status,omitempty" bson:"timeout_status,omitempty"`
	// RetryConfig is the pipeline's default for blocks that set none.
	RetryConfig *pipeline.RetryConfig `json:"retry_config,omitempty" bson:"retry_config,omitempty"`
	// BlockRunLimit caps the run's queued and running block runs; 0 means none.
	BlockRunLimit int `json:"block_run_limit,omitempty" bson:"block_run_limit,omitempty"`
	// PipelineRunLimit caps the running runs of the run's schedule; 0 means none.
	PipelineRunLimit int `json:"pipeline_run_limit,omitempty" bson:"pipeline_run_limit,omitempty"`
	// PipelineRunLimitAllTriggers caps the running runs of the pipeline; 0 means none.
	PipelineRunLimitAllTriggers int `json:"pipeline_run_limit_all_triggers,omitempty" bson:"pipeline_run_limit_all_triggers,omitempty"`
	// SkipWhenLimited cancels a run that finds no free slot instead of letting it wait.
	SkipWhenLimited bool `json:"skip_when_limited,omitempty" bson:"skip_when_limited,omitempty"`
}

// RunLimited reports whether the run waits for a slot of its pipeline's run limits.
func (s Settings) RunLimited() bool {
	return s.PipelineRunLimit > 0 || s.PipelineRunLimitAllTriggers > 0
}

// BlockRun is one execution of one block within a pipeline run.
type BlockRun struct {
	ID                 int64          `json:"id" bson:"_id"`
	Space              string         `json:"space" bson:"space"`
	PipelineRunID      int64          `json:"pipeline_run_id" bson:"pipeline_run_id"`
	PipelineScheduleID int64          `json:"pipeline_schedule_id" bson:"pipeline_schedule_id"`
	PipelineUUID       string         `json:"pipeline_uuid" bson:"pipeline_uuid"`
	BlockUUID          string         `json:"block_uuid" bson:"block_uuid"`
	Status             Status         `json:"status" bson:"status"`
	StartedAt          *time.Time     `json:"started_at" bson:"started_at"`
	CompletedAt        *time.Time     `json:"completed_at" bson:"completed_at"`
	Metrics            map[string]any `json:"metrics" bson:"metrics"`
	Log                string         `json:"-" bson:"log,omitempty"`
	// ProviderTaskID (Airflow's task_id), MapIndex (-1 when not mapped) and TryNumber identify
	// a mirrored task instance; native block runs leave them empty.
	ProviderTaskID string    `json:"provider_task_id,omitempty" bson:"provider_task_id,omitempty"`
	MapIndex       *int      `json:"map_index,omitempty" bson:"map_index,omitempty"`
	TryNumber      int       `json:"try_number,omitempty" bson:"try_number,omitempty"`
	CreatedAt      time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt      time.Time `json:"updated_at" bson:"updated_at"`
	Version        int64     `json:"version" bson:"version"`
}
