package command

import (
	"context"
	"fmt"
	"time"

	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/store"
)

// Sync worker command types. They are wire names: never derive them from Go identifiers.
// Their subjects fall under runyard.cmd.sync.>, which only sync workers consume.
const (
	// TypeSyncConnector runs a sync job of a connector.
	TypeSyncConnector = "sync.connector"
	// TypePollConnector re-reads a connector's unfinished mirrored runs, between syncs, so
	// that their status changes reach the event stream within seconds. It records no job.
	TypePollConnector = "sync.poll"
	// TypeTriggerProviderRun triggers a run of a provider-backed pipeline at its provider.
	TypeTriggerProviderRun = "sync.trigger"
)

// SyncConnector asks a sync worker to run the sync job JobID (created queued by whoever
// sent the command) of a connector. Handling it again after the job finished does nothing.
type SyncConnector struct {
	ConnectorID string `json:"connector_id"`
	JobID       string `json:"job_id"`
}

// PollConnector asks a sync worker to refresh the unfinished mirrored runs of a connector.
type PollConnector struct {
	ConnectorID string `json:"connector_id"`
}

// TriggerProviderRun asks a sync worker to trigger a run of a provider-backed pipeline
// through its connector: Airflow's POST dagRuns. DAGRunID is always set (the caller's, or
// one derived from the command id), so that a redelivered command finds the run it created
// instead of making a second one.
type TriggerProviderRun struct {
	PipelineUUID string         `json:"pipeline_uuid"`
	ConnectorID  string         `json:"connector_id"`
	DAGID        string         `json:"dag_id"`
	DAGRunID     string         `json:"dag_run_id"`
	LogicalDate  *time.Time     `json:"logical_date,omitempty"`
	Conf         map[string]any `json:"conf,omitempty"`
	Note         string         `json:"note,omitempty"`
}

// SyncResult is the Result of a SyncConnector command's reply: the job as it was when the
// worker took it.
type SyncResult struct {
	Job connector.SyncJob `json:"sync_job"`
}

// ProviderRunID is the dag_run_id a trigger command sends when its caller gave none:
// Airflow's allowed pattern (^[A-Za-z0-9_.~:+-]+$) holds it, and no reserved prefix starts
// it.
func ProviderRunID(commandID string) string { return "runyard__" + commandID }

// SyncEnvelope is the command that runs job j. Its id derives from the job's, so that
// publishing it again (a scheduler repairing a lost publish) is dropped as a duplicate.
func SyncEnvelope(j *connector.SyncJob, principal string) (Envelope, error) {
	return New("sync-"+j.ID, TypeSyncConnector, j.Space, principal, SyncConnector{ConnectorID: j.ConnectorID, JobID: j.ID})
}

// JobStore is what StartSync needs from storage.
type JobStore interface {
	CreateSyncJob(ctx context.Context, j *connector.SyncJob) error
	ListSyncJobs(ctx context.Context, f connector.SyncJobFilter, pg store.Page) ([]connector.SyncJob, int64, error)
	UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error)
}

// CommandPublisher publishes commands.
type CommandPublisher interface {
	PublishCommand(ctx context.Context, env Envelope) (duplicate bool, err error)
}

// StartSync queues a sync job of c and publishes its command, unless a job of c is already
// queued: a second request while one waits joins it (coalesced is true), since the waiting
// job will read every change anyway. A request while a job runs queues one job behind it,
// because the running job may already have passed the changes the caller wants.
func StartSync(ctx context.Context, st JobStore, bus CommandPublisher, c *connector.Connector, principal string) (*connector.SyncJob, bool, error) {
	queued, _, err := st.ListSyncJobs(ctx, connector.SyncJobFilter{Space: c.Space, ConnectorID: c.ID, Status: connector.JobQueued}, store.Page{Limit: 1})
	if err != nil {
		return nil, false, fmt.Errorf("command: queued jobs of %s: %w", c.ID, err)
	}
	if len(queued) > 0 {
		return &queued[0], true, nil
	}
	now := store.Now()
	j := &connector.SyncJob{
		ID: connector.NewSyncJobID(), ConnectorID: c.ID, Space: c.Space, Status: connector.JobQueued,
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	if err := st.CreateSyncJob(ctx, j); err != nil {
		return nil, false, fmt.Errorf("command: create sync job of %s: %w", c.ID, err)
	}
	// The connector's last_sync is a summary: if it is not written, the scheduler's next
	// StartSync joins the queued job instead of queueing another.
	_, _ = st.UpdateConnector(ctx, c.Space, c.ID, func(cc *connector.Connector) error {
		cc.LastSync = &connector.LastSync{Status: j.Status, JobID: j.ID, At: now}
		return nil
	})
	env, err := SyncEnvelope(j, principal)
	if err != nil {
		return nil, false, err
	}
	if _, err := bus.PublishCommand(ctx, env); err != nil {
		// The job stays queued; the scheduler publishes its command again.
		return j, false, fmt.Errorf("command: publish sync of %s: %w", c.ID, err)
	}
	return j, false, nil
}
