// Package connector defines connectors to external orchestrators (Airflow) and their sync
// jobs: the records, their validation, the encryption of their credentials, the network
// rules their clients dial under, and the mapping of Airflow's DAGs, runs and task instances
// onto Runyard's pipelines, runs and block runs, with the upserts a sync writes them with.
package connector

import (
	"crypto/rand"
	"encoding/base32"
	"regexp"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/validation"
)

// Connector types.
const TypeAirflow = "airflow"

// API versions of an Airflow connector.
const (
	APIVersionV1   = "v1"
	APIVersionV2   = "v2"
	APIVersionAuto = "auto"
)

// Auth kinds.
const (
	AuthBasic    = "basic"
	AuthPassword = "password"
	AuthToken    = "token"
)

// Sync job statuses: queued → running → completed | failed.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
)

// Limits and defaults of sync settings.
const (
	DefaultIntervalSeconds = 300
	MinIntervalSeconds     = 30
	MaxIntervalSeconds     = 7 * 24 * 3600
	DefaultLookbackDays    = 7
	MaxLookbackDays        = 365
	MaxNameLength          = 200
	MaxBaseURLLength       = 2048
	MaxPatternLength       = 500
)

// Connector is a configured link to an external orchestrator in a space.
type Connector struct {
	ID    string `json:"id" bson:"_id"`
	Space string `json:"space" bson:"space"`
	Name  string `json:"name" bson:"name"`
	Type  string `json:"type" bson:"type"`
	// BaseURL is the server's root, without /api/v1 or /api/v2.
	BaseURL string `json:"base_url" bson:"base_url"`
	// APIVersion is v1, v2 or auto; DetectedVersion is what auto found (and the server's
	// Airflow version), recorded by a sync.
	APIVersion      string       `json:"api_version" bson:"api_version"`
	DetectedVersion string       `json:"detected_version,omitempty" bson:"detected_version,omitempty"`
	AirflowVersion  string       `json:"airflow_version,omitempty" bson:"airflow_version,omitempty"`
	Auth            Auth         `json:"auth" bson:"auth"`
	Sync            SyncSettings `json:"sync" bson:"sync"`
	LastSync        *LastSync    `json:"last_sync,omitempty" bson:"last_sync,omitempty"`
	CreatedAt       time.Time    `json:"created_at" bson:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at" bson:"updated_at"`
	Version         int64        `json:"version" bson:"version"`
}

// Auth is a connector's credentials as stored: the secret only sealed (see Cipher). The
// plaintext Password and Token exist only on a connector being created or updated, and
// Seal clears them.
type Auth struct {
	Kind     string `json:"kind" bson:"kind"`
	Username string `json:"username,omitempty" bson:"username,omitempty"`
	// Password or Token in clear, never stored nor serialised.
	Password string `json:"-" bson:"-"`
	Token    string `json:"-" bson:"-"`
	// SecretSealed is the password (basic, password) or the token, sealed with the
	// deployment's secret key; SecretSet says one is stored.
	SecretSealed string `json:"secret_sealed,omitempty" bson:"secret_sealed,omitempty"`
}

// SecretSet reports whether a secret is stored.
func (a Auth) SecretSet() bool { return a.SecretSealed != "" }

// SyncSettings say how often and how far back a connector syncs, and which DAGs.
type SyncSettings struct {
	IntervalSeconds int `json:"interval_seconds" bson:"interval_seconds"`
	// LookbackDays bounds the first sync's runs to those of the last days.
	LookbackDays int `json:"lookback_days" bson:"lookback_days"`
	// DAGIDPattern, a regular expression, keeps only the DAGs whose id it matches.
	DAGIDPattern string `json:"dag_id_pattern,omitempty" bson:"dag_id_pattern,omitempty"`
	// Watermark is the start of the last complete sync, minus nothing: the next sync asks
	// for runs updated since it (less an overlap).
	Watermark *time.Time `json:"watermark,omitempty" bson:"watermark,omitempty"`
}

// LastSync summarises the connector's latest sync job.
type LastSync struct {
	Status string    `json:"status" bson:"status"`
	JobID  string    `json:"job_id" bson:"job_id"`
	At     time.Time `json:"at" bson:"at"`
	Error  string    `json:"error,omitempty" bson:"error,omitempty"`
}

// SyncJob is one sync of a connector, with its progress.
type SyncJob struct {
	ID          string     `json:"id" bson:"_id"`
	ConnectorID string     `json:"connector_id" bson:"connector_id"`
	Space       string     `json:"space" bson:"space"`
	Status      string     `json:"status" bson:"status"`
	DAGs        Counts     `json:"dags" bson:"dags"`
	Runs        Counts     `json:"runs" bson:"runs"`
	TaskRuns    Counts     `json:"task_runs" bson:"task_runs"`
	Error       string     `json:"error,omitempty" bson:"error,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty" bson:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty" bson:"finished_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at" bson:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at" bson:"updated_at"`
	Version     int64      `json:"version" bson:"version"`
}

// Counts are what a sync saw of one kind of record and what it wrote.
type Counts struct {
	Seen    int64 `json:"seen" bson:"seen"`
	Created int64 `json:"created" bson:"created"`
	Updated int64 `json:"updated" bson:"updated"`
}

// Add records one upsert outcome.
func (c *Counts) Add(o Outcome) {
	c.Seen++
	switch o {
	case Created:
		c.Created++
	case Updated:
		c.Updated++
	}
}

// Terminal reports whether a job is finished.
func (j *SyncJob) Terminal() bool { return j.Status == JobCompleted || j.Status == JobFailed }

// ConnectorFilter selects connectors; an empty Space lists every space's (a sync worker's
// view).
type ConnectorFilter struct {
	Space string
	Type  string
}

// SyncJobFilter selects sync jobs. Zero fields do not filter.
type SyncJobFilter struct {
	Space       string
	ConnectorID string
	Status      string
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + idEncoding.EncodeToString(b[:])
}

// NewID returns a fresh connector id.
func NewID() string { return newID("con_") }

// NewSyncJobID returns a fresh sync job id.
func NewSyncJobID() string { return newID("sync_") }

// Normalize fills defaults: type airflow, api_version auto, the sync settings' defaults.
func (c *Connector) Normalize() {
	c.Name = strings.TrimSpace(c.Name)
	c.BaseURL = strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	if c.Type == "" {
		c.Type = TypeAirflow
	}
	if c.APIVersion == "" {
		c.APIVersion = APIVersionAuto
	}
	if c.Sync.IntervalSeconds == 0 {
		c.Sync.IntervalSeconds = DefaultIntervalSeconds
	}
	if c.Sync.LookbackDays == 0 {
		c.Sync.LookbackDays = DefaultLookbackDays
	}
}

// Validate checks a connector as a client wrote it (before Seal: a new secret is in
// Password or Token), naming each bad field. base_url is checked for form and for
// addresses no connector may reach; where a host name points is checked when it is dialled.
func (c *Connector) Validate(allowPrivate bool) error {
	var errs validation.Errors
	if c.Space == "" {
		errs.Add("space", "is required")
	}
	if c.Name == "" || len(c.Name) > MaxNameLength {
		errs.Add("name", "must be 1 to %d characters", MaxNameLength)
	}
	if c.Type != TypeAirflow {
		errs.Add("type", "must be %q", TypeAirflow)
	}
	if err := CheckBaseURL(c.BaseURL, allowPrivate); err != nil {
		errs.Add("base_url", "%s", err.Error())
	}
	switch c.APIVersion {
	case APIVersionV1, APIVersionV2, APIVersionAuto:
	default:
		errs.Add("api_version", "must be v1, v2 or auto")
	}
	a := c.Auth
	switch a.Kind {
	case AuthBasic, AuthPassword:
		if strings.TrimSpace(a.Username) == "" {
			errs.Add("auth.username", "is required for %s auth", a.Kind)
		}
		if a.Password == "" && !a.SecretSet() {
			errs.Add("auth.password", "is required for %s auth", a.Kind)
		}
		if a.Token != "" {
			errs.Add("auth.token", "is only for token auth")
		}
	case AuthToken:
		if a.Token == "" && !a.SecretSet() {
			errs.Add("auth.token", "is required for token auth")
		}
		if a.Password != "" || a.Username != "" {
			errs.Add("auth.password", "username and password are not used with token auth")
		}
	default:
		errs.Add("auth.kind", "must be basic, password or token")
	}
	if len(a.Password) > 4096 || len(a.Token) > 16384 {
		errs.Add("auth", "secret too long")
	}
	s := c.Sync
	if s.IntervalSeconds < MinIntervalSeconds || s.IntervalSeconds > MaxIntervalSeconds {
		errs.Add("sync.interval_seconds", "must be from %d to %d", MinIntervalSeconds, MaxIntervalSeconds)
	}
	if s.LookbackDays < 1 || s.LookbackDays > MaxLookbackDays {
		errs.Add("sync.lookback_days", "must be from 1 to %d", MaxLookbackDays)
	}
	if len(s.DAGIDPattern) > MaxPatternLength {
		errs.Add("sync.dag_id_pattern", "must be at most %d characters", MaxPatternLength)
	} else if _, err := regexp.Compile(s.DAGIDPattern); err != nil {
		errs.Add("sync.dag_id_pattern", "is not a valid regular expression: %v", err)
	}
	return errs.Err()
}

// MatchesDAG reports whether the connector syncs the DAG dagID.
func (c *Connector) MatchesDAG(dagID string) bool {
	if c.Sync.DAGIDPattern == "" {
		return true
	}
	re, err := regexp.Compile(c.Sync.DAGIDPattern)
	return err == nil && re.MatchString(dagID)
}
