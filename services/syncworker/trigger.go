package syncworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// handleTrigger creates a DAG run in Airflow, stores it at once and answers with it.
// Airflow's refusals answer with Airflow's status and message (404, 409, 400, 422); an
// unreachable Airflow, or one that refuses the connector's credentials, with 502.
//
// The command carries its dag_run_id, so a redelivered command cannot create a second run:
// the run stored by an earlier delivery is answered again, and a 409 after an earlier
// delivery died between Airflow's answer and the store is resolved by reading the run.
func (w *Worker) handleTrigger(ctx context.Context, env command.Envelope, p command.TriggerProviderRun, delivered uint64) error {
	log := zerolog.Ctx(ctx)
	conn, err := w.store.GetConnector(ctx, env.Space, p.ConnectorID)
	if errors.Is(err, store.ErrNotFound) {
		return w.fail(ctx, env, http.StatusConflict, fmt.Sprintf("connector %s of pipeline %s no longer exists", p.ConnectorID, p.PipelineUUID))
	} else if err != nil {
		return err
	}
	// The run id is this command's own (derived from its id), or the command comes again:
	// a run stored under it is this command's doing. A caller's run id that some earlier
	// command used goes to Airflow, whose 409 the caller gets.
	if ours := p.DAGRunID == command.ProviderRunID(env.ID) || delivered > 1; ours {
		if r, err := w.store.GetRunByCommand(ctx, connector.RunCommandID(conn.ID, p.DAGID, p.DAGRunID)); err == nil {
			return w.triggered(ctx, env, r)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	client, err := w.client(conn)
	if errors.Is(err, errNoSecretKey) {
		return w.fail(ctx, env, http.StatusServiceUnavailable, "connector credentials cannot be opened: no RUNYARD_SECRET_KEY is configured")
	} else if err != nil {
		return w.fail(ctx, env, http.StatusBadGateway, fmt.Sprintf("connector %s cannot reach Airflow: %v", conn.ID, err))
	}
	dr, err := client.TriggerDAGRun(ctx, p.DAGID, airflow.TriggerRequest{DAGRunID: p.DAGRunID, LogicalDate: p.LogicalDate, Conf: p.Conf, Note: p.Note})
	if errors.Is(err, airflow.ErrConflict) && (delivered > 1 || p.DAGRunID == command.ProviderRunID(env.ID)) {
		// Perhaps our own run, created by a delivery whose answer was lost.
		if got, gerr := client.GetDAGRun(ctx, p.DAGID, p.DAGRunID); gerr == nil {
			dr, err = got, nil
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: the command comes back
		}
		code, msg := triggerError(conn, err)
		log.Info().Err(err).Int("code", code).Str("connector_id", conn.ID).Msg("airflow trigger refused")
		return w.fail(ctx, env, code, msg)
	}
	r := connector.RunFromDAGRun(conn.Space, conn.ID, p.PipelineUUID, *dr)
	if _, err := w.store.UpsertProviderRun(ctx, r); err != nil {
		return err
	}
	stored, err := w.store.GetRun(ctx, r.ID)
	if err != nil {
		return err
	}
	w.emitRun(ctx, stored)
	return w.triggered(ctx, env, stored)
}

// triggered records the command's success and answers with the run.
func (w *Worker) triggered(ctx context.Context, env command.Envelope, r *run.PipelineRun) error {
	if err := w.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplySucceeded, Code: http.StatusCreated, RunID: r.ID, CreatedAt: store.Now(),
	}); err != nil && !errors.Is(err, store.ErrDuplicate) {
		return err
	}
	res, err := json.Marshal(command.RunResult{Run: *r, BlockRuns: []run.BlockRun{}})
	if err != nil {
		return err
	}
	if err := w.bus.Reply(command.Reply{CommandID: env.ID, Status: command.ReplySucceeded, Code: http.StatusCreated, Result: res}); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent")
	}
	return nil
}

// triggerError maps a failed trigger onto the status the caller gets: Airflow's own for its
// refusals of the request, 502 for everything that is the connector's or the server's
// problem rather than the caller's.
func triggerError(conn *connector.Connector, err error) (int, string) {
	var ae *airflow.APIError
	if !errors.As(err, &ae) {
		return http.StatusBadGateway, fmt.Sprintf("Airflow at %s could not be reached: %v", conn.BaseURL, err)
	}
	switch ae.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity:
		msg := ae.Message
		if msg == "" {
			msg = ae.Title
		}
		if msg == "" {
			msg = http.StatusText(ae.StatusCode)
		}
		return ae.StatusCode, "Airflow: " + msg
	case http.StatusUnauthorized, http.StatusForbidden:
		return http.StatusBadGateway, fmt.Sprintf("Airflow refused connector %s's credentials (%d): %s", conn.ID, ae.StatusCode, ae.Message)
	}
	return http.StatusBadGateway, fmt.Sprintf("Airflow answered %d: %s", ae.StatusCode, ae.Message)
}
