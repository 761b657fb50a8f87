package syncworker

import (
	"context"
	"errors"
	"strings"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/store"
)

// handlePoll re-reads a connector's unfinished mirrored runs and their task instances, and
// publishes their status changes. A poll is best effort: when the connector is being synced
// (the sync covers the same runs) or every sync slot is busy, it is skipped, and a failed
// poll is not retried, since the next one comes within PollInterval.
func (w *Worker) handlePoll(ctx context.Context, env command.Envelope, p command.PollConnector) error {
	conn, err := w.store.GetConnector(ctx, env.Space, p.ConnectorID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if conn.Sync.Watermark == nil {
		return nil // never synced: the first sync imports the runs
	}
	select {
	case w.syncSlots <- struct{}{}:
		defer func() { <-w.syncSlots }()
	default:
		return nil
	}
	_, err = w.withConnectorLease(ctx, conn.ID, func(ctx context.Context) error { return w.poll(ctx, conn) })
	if err != nil && ctx.Err() == nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("connector_id", conn.ID).Msg("poll of unfinished runs failed")
	}
	return nil
}

func (w *Worker) poll(ctx context.Context, conn *connector.Connector) error {
	runs, err := w.unfinishedRuns(ctx, conn)
	if err != nil || len(runs) == 0 {
		return err
	}
	client, err := w.client(conn)
	if err != nil {
		return err
	}
	s := &syncer{w: w, conn: conn, job: &connector.SyncJob{}, incremental: true, log: zerolog.Ctx(ctx), fetches: make(chan struct{}, w.cfg.Fetches)}
	refs := make([]runRef, 0, len(runs))
	for i := range runs {
		r := &runs[i]
		if dagID := dagOfCommand(conn.ID, r.CommandID); dagID != "" {
			refs = append(refs, runRef{uuid: r.PipelineUUID, dagID: dagID, runID: r.ProviderRunID})
		}
	}
	for start := 0; start < len(refs); start += runsPerBatch {
		got, err := s.getRuns(ctx, client, refs[start:min(start+runsPerBatch, len(refs))])
		if err != nil {
			return err
		}
		if err := s.mirrorRuns(ctx, client, got, true); err != nil {
			return err
		}
	}
	return nil
}

// dagOfCommand reads the dag_id out of a mirrored run's command id
// (airflow/<connector>/<dag_id>/<dag_run_id>); dag ids hold no '/'.
func dagOfCommand(connectorID, commandID string) string {
	prefix, _ := strings.CutSuffix(connector.RunCommandID(connectorID, "", ""), "//")
	rest, ok := strings.CutPrefix(commandID, prefix+"/")
	if !ok {
		return ""
	}
	dag, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return dag
}
