package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/airflow"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Connectors to external orchestrators (Airflow), under
// /api/v1.0/spaces/:slug/orchestration/connectors. Members of the space read them; space
// admins manage, test and sync them. Credentials are write-only: a connector is shown with
// its auth kind, username and whether a password or token is stored, never the secret, and
// nothing here logs a request body.

// ConnectorStore is what the gateway needs from storage for connectors and their syncs.
type ConnectorStore interface {
	CreateConnector(ctx context.Context, c *connector.Connector) error
	GetConnector(ctx context.Context, space, id string) (*connector.Connector, error)
	ListConnectors(ctx context.Context, f connector.ConnectorFilter, pg store.Page) ([]connector.Connector, int64, error)
	UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error)
	DeleteConnector(ctx context.Context, space, id string) error
	CreateSyncJob(ctx context.Context, j *connector.SyncJob) error
	GetSyncJob(ctx context.Context, space, id string) (*connector.SyncJob, error)
	ListSyncJobs(ctx context.Context, f connector.SyncJobFilter, pg store.Page) ([]connector.SyncJob, int64, error)
}

// connectorTestTimeout bounds a connection test.
const connectorTestTimeout = 15 * time.Second

// qConnector is a connector as the API shows it.
type qConnector struct {
	ID              string         `json:"id"`
	Space           string         `json:"space"`
	Name            string         `json:"name"`
	Type            string         `json:"type"`
	BaseURL         string         `json:"base_url"`
	APIVersion      string         `json:"api_version"`
	DetectedVersion *string        `json:"detected_version"`
	AirflowVersion  *string        `json:"airflow_version"`
	Auth            qConnectorAuth `json:"auth"`
	Sync            qConnectorSync `json:"sync"`
	LastSync        *qLastSync     `json:"last_sync"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

type qConnectorAuth struct {
	Kind        string  `json:"kind"`
	Username    *string `json:"username"`
	HasPassword bool    `json:"has_password"`
	HasToken    bool    `json:"has_token"`
}

type qConnectorSync struct {
	IntervalSeconds int        `json:"interval_seconds"`
	LookbackDays    int        `json:"lookback_days"`
	DAGIDPattern    *string    `json:"dag_id_pattern"`
	Watermark       *time.Time `json:"watermark"`
}

type qLastSync struct {
	Status string    `json:"status"`
	JobID  string    `json:"job_id"`
	At     time.Time `json:"at"`
	Error  *string   `json:"error"`
}

func presentConnector(c *connector.Connector) qConnector {
	out := qConnector{
		ID: c.ID, Space: c.Space, Name: c.Name, Type: c.Type, BaseURL: c.BaseURL, APIVersion: c.APIVersion,
		DetectedVersion: optional(c.DetectedVersion), AirflowVersion: optional(c.AirflowVersion),
		Auth: qConnectorAuth{
			Kind: c.Auth.Kind, Username: optional(c.Auth.Username),
			HasPassword: c.Auth.SecretSet() && c.Auth.Kind != connector.AuthToken,
			HasToken:    c.Auth.SecretSet() && c.Auth.Kind == connector.AuthToken,
		},
		Sync: qConnectorSync{
			IntervalSeconds: c.Sync.IntervalSeconds, LookbackDays: c.Sync.LookbackDays,
			DAGIDPattern: optional(c.Sync.DAGIDPattern), Watermark: c.Sync.Watermark,
		},
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if ls := c.LastSync; ls != nil {
		out.LastSync = &qLastSync{Status: ls.Status, JobID: ls.JobID, At: ls.At, Error: optional(ls.Error)}
	}
	return out
}

// connectorBody is a connector as a client writes it. Pointers tell absent (keep, on a
// PATCH) from given.
type connectorBody struct {
	Name       *string            `json:"name"`
	Type       *string            `json:"type"`
	BaseURL    *string            `json:"base_url"`
	APIVersion *string            `json:"api_version"`
	Auth       *connectorAuthBody `json:"auth"`
	Sync       *connectorSyncBody `json:"sync"`
}

type connectorAuthBody struct {
	Kind     *string `json:"kind"`
	Username *string `json:"username"`
	Password *string `json:"password"`
	Token    *string `json:"token"`
}

type connectorSyncBody struct {
	IntervalSeconds *int    `json:"interval_seconds"`
	LookbackDays    *int    `json:"lookback_days"`
	DAGIDPattern    *string `json:"dag_id_pattern"`
}

// connectorFields are the top-level keys a connector body may hold; read-only ones a client
// sends back (id, last_sync, ...) are ignored, unknown ones refused, so a typo is not
// silently dropped.
var connectorFields = map[string]bool{
	"name": true, "type": true, "base_url": true, "api_version": true, "auth": true, "sync": true,
	"id": true, "space": true, "detected_version": true, "airflow_version": true, "last_sync": true,
	"created_at": true, "updated_at": true,
}

func readConnectorBody(c *fiber.Ctx) (connectorBody, error) {
	var b connectorBody
	var top map[string]json.RawMessage
	if err := decodeBody(c, &top); err != nil {
		return b, err
	}
	var errs validation.Errors
	for k := range top {
		if !connectorFields[k] {
			errs.Add(k, "is not a connector field")
		}
	}
	if len(errs) > 0 {
		return b, errs
	}
	if err := decodeBody(c, &b); err != nil {
		return b, err
	}
	return b, nil
}

// apply writes the body onto conn. A new secret replaces the stored one; a change of auth
// kind between token and password drops the stored secret, so the other kind's secret is
// never sent by mistake.
func (b *connectorBody) apply(conn *connector.Connector) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&conn.Name, b.Name)
	set(&conn.Type, b.Type)
	set(&conn.BaseURL, b.BaseURL)
	set(&conn.APIVersion, b.APIVersion)
	if a := b.Auth; a != nil {
		if a.Kind != nil && *a.Kind != conn.Auth.Kind {
			if (*a.Kind == connector.AuthToken) != (conn.Auth.Kind == connector.AuthToken) {
				conn.Auth.SecretSealed = ""
			}
			conn.Auth.Kind = *a.Kind
			if *a.Kind == connector.AuthToken {
				conn.Auth.Username = ""
			}
		}
		set(&conn.Auth.Username, a.Username)
		set(&conn.Auth.Password, a.Password)
		set(&conn.Auth.Token, a.Token)
	}
	if s := b.Sync; s != nil {
		if s.IntervalSeconds != nil {
			conn.Sync.IntervalSeconds = *s.IntervalSeconds
		}
		if s.LookbackDays != nil {
			conn.Sync.LookbackDays = *s.LookbackDays
		}
		set(&conn.Sync.DAGIDPattern, s.DAGIDPattern)
	}
}

// connectorCipher returns the cipher that seals credentials, or the 503 that says why
// connectors cannot be written.
func (g *Gateway) connectorCipher() (*connector.Cipher, error) {
	if g.cfg.ConnectorCipher == nil {
		return nil, &apiError{Status: http.StatusServiceUnavailable,
			Message: "connector credentials cannot be stored or used: no RUNYARD_SECRET_KEY is configured on this gateway"}
	}
	return g.cfg.ConnectorCipher, nil
}

// validateConnector checks conn; its field errors name the body's fields.
func (g *Gateway) validateConnector(conn *connector.Connector) error {
	conn.Normalize()
	return conn.Validate(g.cfg.ConnectorAllowPrivate)
}

// createConnector answers POST .../orchestration/connectors, for a space admin: 201.
func (g *Gateway) createConnector(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	b, err := readConnectorBody(c)
	if err != nil {
		return err
	}
	ciph, err := g.connectorCipher()
	if err != nil {
		return err
	}
	now := store.Now()
	conn := &connector.Connector{ID: connector.NewID(), Space: slug, CreatedAt: now, UpdatedAt: now, Version: 1}
	b.apply(conn)
	if err := g.validateConnector(conn); err != nil {
		return err
	}
	if err := ciph.SealAuth(conn); err != nil {
		return err
	}
	if err := g.store.CreateConnector(c.UserContext(), conn); errors.Is(err, store.ErrDuplicate) {
		return qConflict("space %s already has a connector named %q", slug, conn.Name)
	} else if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(presentConnector(conn))
}

// listConnectors answers GET .../orchestration/connectors, for any member.
func (g *Gateway) listConnectors(c *fiber.Ctx) error {
	return listSpaceRecords(g, c, access.RoleViewer, func(ctx context.Context, space string, pg store.Page) ([]connector.Connector, int64, error) {
		return g.store.ListConnectors(ctx, connector.ConnectorFilter{Space: space}, pg)
	}, presentConnector)
}

// loadConnector returns the connector of the path in space.
func (g *Gateway) loadConnector(c *fiber.Ctx, space string) (*connector.Connector, error) {
	id := c.Params("connector_id")
	conn, err := g.store.GetConnector(c.UserContext(), space, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, qNotFound("connector %s not found", id)
	}
	return conn, err
}

// getConnector answers GET .../orchestration/connectors/:connector_id, for any member.
func (g *Gateway) getConnector(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	conn, err := g.loadConnector(c, slug)
	if err != nil {
		return err
	}
	return c.JSON(presentConnector(conn))
}

// updateConnector answers PATCH .../orchestration/connectors/:connector_id, for a space
// admin: the given fields change, a new secret replaces the stored one.
func (g *Gateway) updateConnector(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	b, err := readConnectorBody(c)
	if err != nil {
		return err
	}
	ciph, err := g.connectorCipher()
	if err != nil {
		return err
	}
	if _, err := g.loadConnector(c, slug); err != nil {
		return err
	}
	id := c.Params("connector_id")
	conn, err := g.store.UpdateConnector(c.UserContext(), slug, id, func(conn *connector.Connector) error {
		before := *conn
		b.apply(conn)
		if err := g.validateConnector(conn); err != nil {
			return err
		}
		if conn.BaseURL != before.BaseURL || conn.APIVersion != before.APIVersion {
			// Another server, or another API: detect again on the next sync.
			conn.DetectedVersion, conn.AirflowVersion = "", ""
		}
		return ciph.SealAuth(conn)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return qNotFound("connector %s not found", id)
	case errors.Is(err, store.ErrDuplicate):
		return qConflict("space %s already has a connector with that name", slug)
	case err != nil:
		return err
	}
	return c.JSON(presentConnector(conn))
}

// deleteConnector answers DELETE .../orchestration/connectors/:connector_id, for a space
// admin: 204. The pipelines and runs it mirrored stay.
func (g *Gateway) deleteConnector(c *fiber.Ctx) error {
	return deleteSpaceRecord(g, c, access.RoleAdmin, "connector_id", "connector", g.store.DeleteConnector)
}

// connectorTestResult is the answer of a connection test.
type connectorTestResult struct {
	OK             bool    `json:"ok"`
	APIVersion     *string `json:"api_version"`
	AirflowVersion *string `json:"airflow_version"`
	LatencyMS      int64   `json:"latency_ms"`
	Error          *string `json:"error"`
}

// testProbeDAG is a dag id no one uses: reading it proves the credentials are accepted
// (Airflow answers 404 to an authorized caller, 401 or 403 otherwise) at the cost of one
// small request.
const testProbeDAG = "runyard_connection_test"

// testConnector answers POST .../orchestration/connectors/:connector_id/test, for a space
// admin: 200 with what the test found (ok, the API version detected, latency), whether or
// not Airflow could be reached.
func (g *Gateway) testConnector(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	ciph, err := g.connectorCipher()
	if err != nil {
		return err
	}
	conn, err := g.loadConnector(c, slug)
	if err != nil {
		return err
	}
	probe := *conn
	probe.DetectedVersion = "" // detect again: the test is about the server as it is now
	client, err := connector.NewClient(&probe, ciph, connector.ClientOptions{AllowPrivate: g.cfg.ConnectorAllowPrivate, Logger: g.log})
	if err != nil {
		msg := err.Error()
		return c.JSON(connectorTestResult{Error: &msg})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), connectorTestTimeout)
	defer cancel()
	start := time.Now()
	res := connectorTestResult{}
	v, info, err := func() (airflow.APIVersion, airflow.VersionInfo, error) {
		v, err := client.APIVersion(ctx)
		if err != nil {
			return "", airflow.VersionInfo{}, err
		}
		info, err := client.Version(ctx)
		if err != nil {
			return v, airflow.VersionInfo{}, err
		}
		if _, err := client.GetDAG(ctx, testProbeDAG); err != nil && !errors.Is(err, airflow.ErrNotFound) {
			return v, info, err
		}
		return v, info, nil
	}()
	res.LatencyMS = time.Since(start).Milliseconds()
	res.APIVersion, res.AirflowVersion = optional(string(v)), optional(info.Version)
	if err != nil {
		msg := err.Error()
		res.Error = &msg
	} else {
		res.OK = true
	}
	return c.JSON(res)
}

// syncConnector answers POST .../orchestration/connectors/:connector_id/sync, for a space
// admin (the one who may edit the connector): 202 with the sync job, queued. A sync asked
// for while another one waits joins it.
func (g *Gateway) syncConnector(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleAdmin)
	if err != nil {
		return err
	}
	if _, err := g.connectorCipher(); err != nil {
		return err
	}
	conn, err := g.loadConnector(c, slug)
	if err != nil {
		return err
	}
	principal, _ := c.Locals(principalKey).(string)
	j, _, err := command.StartSync(c.UserContext(), g.store, g.bus, conn, principal)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(j)
}

// listConnectorSyncs answers GET .../connectors/:connector_id/syncs: the connector's sync
// jobs, newest first.
func (g *Gateway) listConnectorSyncs(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	conn, err := g.loadConnector(c, slug)
	if err != nil {
		return err
	}
	js, total, err := g.store.ListSyncJobs(c.UserContext(), connector.SyncJobFilter{Space: slug, ConnectorID: conn.ID}, p.Store())
	if err != nil {
		return err
	}
	return writeList(c, p, js, total)
}

// getConnectorSync answers GET .../connectors/:connector_id/syncs/:job_id.
func (g *Gateway) getConnectorSync(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	conn, err := g.loadConnector(c, slug)
	if err != nil {
		return err
	}
	id := c.Params("job_id")
	j, err := g.store.GetSyncJob(c.UserContext(), slug, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ConnectorID != conn.ID) {
		return qNotFound("sync job %s of connector %s not found", id, conn.ID)
	} else if err != nil {
		return err
	}
	return c.JSON(j)
}

// airflowTriggerBody holds the trigger fields only Airflow pipelines take.
type airflowTriggerBody struct {
	LogicalDate *string `json:"logical_date"`
	DAGRunID    *string `json:"dag_run_id"`
}

// dagRunIDPattern is Airflow's default [scheduler] allowed_run_id_pattern.
var dagRunIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.~:+-]{1,250}$`)

// triggerAirflow triggers a run of an Airflow pipeline through a sync worker, which calls
// Airflow's POST dagRuns and stores the run: 201 with the run, 202 with the command when no
// worker answered in time. Airflow's refusals keep Airflow's status (404, 409, 400, 422)
// and message; an unreachable Airflow is a 502.
func (g *Gateway) triggerAirflow(c *fiber.Ctx, p *pipeline.Pipeline, body triggerBody) error {
	var extra airflowTriggerBody
	if len(strings.TrimSpace(string(c.Body()))) > 0 {
		if err := decodeBody(c, &extra); err != nil {
			return err
		}
	}
	payload := command.TriggerProviderRun{PipelineUUID: p.UUID, ConnectorID: p.ConnectorID, DAGID: p.ProviderID, Conf: body.Conf}
	if body.Note != nil {
		payload.Note = *body.Note
	}
	var errs validation.Errors
	if extra.LogicalDate != nil {
		t, err := time.Parse(time.RFC3339Nano, *extra.LogicalDate)
		if err != nil {
			errs.Add("logical_date", "must be an RFC 3339 date-time with a time zone, such as 2026-01-01T00:00:00Z")
		} else {
			utc := t.UTC()
			payload.LogicalDate = &utc
		}
	}
	if extra.DAGRunID != nil && !dagRunIDPattern.MatchString(*extra.DAGRunID) {
		errs.Add("dag_run_id", "must be 1 to 250 characters of letters, digits and _.~:+-")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	if _, err := g.connectorCipher(); err != nil {
		return err
	}
	if _, err := g.store.GetConnector(c.UserContext(), p.Space, p.ConnectorID); errors.Is(err, store.ErrNotFound) {
		return qConflict("pipeline %s was mirrored by connector %s, which no longer exists: it cannot be triggered", p.UUID, p.ConnectorID)
	} else if err != nil {
		return err
	}
	id := command.NewID()
	key := c.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return errBadRequest("the Idempotency-Key header must be at most %d characters", maxIdempotencyKey)
	}
	var lookup commandLookup
	if key != "" {
		id, lookup = command.IdempotentID(p.Space, "orchestration/pipeline/"+p.UUID+"/trigger", key), g.commandOutcome
	}
	payload.DAGRunID = command.ProviderRunID(id)
	if extra.DAGRunID != nil {
		payload.DAGRunID = *extra.DAGRunID
	}
	principal, _ := c.Locals(principalKey).(string)
	env, err := command.New(id, command.TypeTriggerProviderRun, p.Space, principal, payload)
	if err != nil {
		return err
	}
	res, err := g.sendRunCommand(c, env, lookup)
	if res == nil || err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(runWithTasks(&res.Run, res.BlockRuns))
}
