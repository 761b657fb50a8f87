// Package config reads Runyard's configuration from environment variables: one typed struct,
// parsed and validated once at start-up, with every variable documented by a default and a
// description so that docs, deployment files and tests can be checked against it.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// Mode is the way a process runs: all services in one process, or one service alone.
type Mode string

// Modes accepted by the runyard binary.
const (
	ModeStandalone Mode = "standalone"
	ModeGateway    Mode = "gateway"
	ModeExecutor   Mode = "executor"
	ModeSyncWorker Mode = "syncworker"
	ModeNotifier   Mode = "notifier"
)

// Config is the whole configuration of a Runyard process.
type Config struct {
	HTTPAddr         string
	DataDir          string
	NATSURL          string
	NATSAddr         string
	NATSReplicas     int
	MongoURI         string
	MongoDatabase    string
	AdminAPIKey      string
	DefaultSpace     string
	LogLevel         string
	CommandWait      time.Duration
	ExecutorWorkers  int
	MaxBodyBytes     int
	ShutdownTimeout  time.Duration
	EventMaxAge      time.Duration
	EventMaxBytes    int64
	BlockLogMaxBytes int

	// EventHeartbeat and EventClientBuffer tune the gateway's SSE event streams.
	EventHeartbeat    time.Duration
	EventClientBuffer int

	// ConnectorAllowPrivate lets outbound calls (webhooks, Airflow connectors) reach loopback
	// and private networks.
	ConnectorAllowPrivate bool
	WebhookRetryHorizon   time.Duration
	NotifierWorkers       int

	// Sync worker tuning: connectors synced at once, task-instance listings read at once per
	// sync, requests per second to one Airflow, how often unfinished mirrored runs are
	// re-read, and the overlap of incremental run listings.
	SyncWorkers      int
	SyncFetches      int
	SyncRateLimit    float64
	SyncPollInterval time.Duration
	SyncOverlap      time.Duration

	// SecretKey is the 32-byte key that encrypts connector credentials at rest; nil when
	// RUNYARD_SECRET_KEY is unset (the standalone binary then keeps one in its data directory).
	SecretKey []byte

	raw map[string]string // the values read, for logging
}

// Var documents one environment variable.
type Var struct {
	Name        string
	Default     string
	Description string
	// Secret values are never shown.
	Secret bool
	// Credentials marks URLs whose user information is never shown.
	Credentials bool
	set         func(c *Config, v string) error
}

// Vars lists every environment variable Runyard reads, in name order.
func Vars() []Var {
	vs := append([]Var(nil), vars...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	return vs
}

var vars = []Var{
	{Name: "RUNYARD_HTTP_ADDR", Default: ":6789", Description: "address the gateway's HTTP server listens on",
		set: func(c *Config, v string) error { c.HTTPAddr = v; return checkAddr(v) }},
	{Name: "RUNYARD_DATA_DIR", Default: "./runyard-data", Description: "directory of the standalone binary's embedded NATS and store data",
		set: func(c *Config, v string) error { c.DataDir = v; return nonEmpty(v) }},
	{Name: "RUNYARD_NATS_URL", Default: "", Description: "NATS server URL(s), comma-separated; unset in standalone mode means an embedded server", Credentials: true,
		set: func(c *Config, v string) error { c.NATSURL = v; return checkURLs(v, "nats", "tls", "ws", "wss") }},
	{Name: "RUNYARD_NATS_ADDR", Default: "127.0.0.1:4222", Description: "client address of the embedded NATS server (standalone mode without RUNYARD_NATS_URL)",
		set: func(c *Config, v string) error { c.NATSAddr = v; return checkAddr(v) }},
	{Name: "RUNYARD_NATS_REPLICAS", Default: "1", Description: "how many servers of a NATS cluster keep each Runyard stream (1 to 5)",
		set: func(c *Config, v string) (err error) { c.NATSReplicas, err = positiveInt(v, 1, 5); return err }},
	{Name: "RUNYARD_MONGO_URI", Default: "", Description: "MongoDB connection string; unset means the SQLite store in RUNYARD_DATA_DIR, which processes on one machine can share", Credentials: true,
		set: func(c *Config, v string) error { c.MongoURI = v; return checkMongoURI(v) }},
	{Name: "RUNYARD_MONGO_DATABASE", Default: "runyard", Description: "MongoDB database name",
		set: func(c *Config, v string) error { c.MongoDatabase = v; return nonEmpty(v) }},
	{Name: "RUNYARD_ADMIN_API_KEY", Default: "", Description: "when set, an admin API key with exactly this value exists after start-up; when unset and no key exists, one is generated and printed once", Secret: true,
		set: func(c *Config, v string) error {
			c.AdminAPIKey = v
			if v != "" && len(v) < 16 {
				return errors.New("must be at least 16 characters")
			}
			return nil
		}},
	{Name: "RUNYARD_DEFAULT_SPACE", Default: "default", Description: "space that the Mage-compatible API works in when a request names none",
		set: func(c *Config, v string) error { c.DefaultSpace = v; return nonEmpty(v) }},
	{Name: "RUNYARD_LOG_LEVEL", Default: "info", Description: "log level: trace, debug, info, warn, error",
		set: func(c *Config, v string) error {
			c.LogLevel = v
			_, err := zerolog.ParseLevel(v)
			return err
		}},
	{Name: "RUNYARD_COMMAND_WAIT", Default: "5s", Description: "how long the gateway waits for a command's outcome before answering 202 with a command to poll",
		set: func(c *Config, v string) (err error) { c.CommandWait, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_EXECUTOR_WORKERS", Default: "32", Description: "block runs one executor process executes at once",
		set: func(c *Config, v string) (err error) { c.ExecutorWorkers, err = positiveInt(v, 1, 4096); return err }},
	{Name: "RUNYARD_MAX_BODY_BYTES", Default: "1048576", Description: "largest request body the gateway accepts, in bytes",
		set: func(c *Config, v string) (err error) { c.MaxBodyBytes, err = positiveInt(v, 1024, 64<<20); return err }},
	{Name: "RUNYARD_SHUTDOWN_TIMEOUT", Default: "10s", Description: "how long in-flight work may take to finish after SIGTERM",
		set: func(c *Config, v string) (err error) { c.ShutdownTimeout, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_EVENT_MAX_AGE", Default: "168h", Description: "how long the event stream keeps events",
		set: func(c *Config, v string) (err error) { c.EventMaxAge, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_EVENT_MAX_BYTES", Default: "1073741824", Description: "how many bytes the event stream keeps",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1<<20 {
				return errors.New("must be a whole number of bytes, at least 1048576")
			}
			c.EventMaxBytes = n
			return nil
		}},
	{Name: "RUNYARD_EVENT_HEARTBEAT", Default: "15s", Description: "how often the gateway sends a heartbeat comment on an idle SSE event stream",
		set: func(c *Config, v string) (err error) { c.EventHeartbeat, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_EVENT_CLIENT_BUFFER", Default: "1024", Description: "events that may wait for one SSE client before the gateway cuts it off as too slow (it resumes from the overflow event's id)",
		set: func(c *Config, v string) (err error) {
			c.EventClientBuffer, err = positiveInt(v, 16, 1<<20)
			return err
		}},
	{Name: "RUNYARD_BLOCK_LOG_MAX_BYTES", Default: "1048576", Description: "how much of a block run's output is kept, in bytes",
		set: func(c *Config, v string) (err error) {
			c.BlockLogMaxBytes, err = positiveInt(v, 1024, 64<<20)
			return err
		}},
	{Name: "RUNYARD_SECRET_KEY", Default: "", Description: "base64 of 32 random bytes (openssl rand -base64 32): the AES-256-GCM key that encrypts connector credentials at rest; every gateway, sync worker and notifier needs the same one; unset in standalone mode means a key generated once in RUNYARD_DATA_DIR/secret.key (mode 0600)", Secret: true,
		set: func(c *Config, v string) (err error) { c.SecretKey, err = secretKey(v); return err }},
}

var notifierVars = []Var{
	{Name: "RUNYARD_CONNECTOR_ALLOW_PRIVATE", Default: "false", Description: "let outbound calls to user-supplied URLs (webhooks, Airflow connectors) reach loopback and private networks; link-local and cloud metadata addresses stay refused",
		set: func(c *Config, v string) (err error) { c.ConnectorAllowPrivate, err = parseBool(v); return err }},
	{Name: "RUNYARD_WEBHOOK_RETRY_HORIZON", Default: "24h", Description: "how long a webhook delivery is retried (backoff from 1s doubling to 5m) before it is marked failed",
		set: func(c *Config, v string) (err error) { c.WebhookRetryHorizon, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_NOTIFIER_WORKERS", Default: "16", Description: "webhook requests one notifier process sends at once",
		set: func(c *Config, v string) (err error) { c.NotifierWorkers, err = positiveInt(v, 1, 1024); return err }},
}

func init() { vars = append(vars, notifierVars...) }

var syncVars = []Var{
	{Name: "RUNYARD_SYNC_WORKERS", Default: "4", Description: "connectors one sync worker process syncs at once",
		set: func(c *Config, v string) (err error) { c.SyncWorkers, err = positiveInt(v, 1, 256); return err }},
	{Name: "RUNYARD_SYNC_FETCHES", Default: "4", Description: "Airflow requests one connector sync has in flight at once",
		set: func(c *Config, v string) (err error) { c.SyncFetches, err = positiveInt(v, 1, 64); return err }},
	{Name: "RUNYARD_SYNC_RATE_LIMIT", Default: "10", Description: "most requests per second a sync worker sends to one Airflow (retries and token requests included)",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0.1 || n > 100000 {
				return errors.New("must be a number of requests per second from 0.1 to 100000")
			}
			c.SyncRateLimit = n
			return nil
		}},
	{Name: "RUNYARD_SYNC_POLL_INTERVAL", Default: "5s", Description: "how often the unfinished runs mirrored from Airflow are re-read between syncs, so their status changes reach the event stream",
		set: func(c *Config, v string) (err error) { c.SyncPollInterval, err = positiveDuration(v); return err }},
	{Name: "RUNYARD_SYNC_OVERLAP", Default: "2m", Description: "how far before the previous sync's start an incremental sync asks Airflow for updated runs (clock skew and paging margin)",
		set: func(c *Config, v string) (err error) { c.SyncOverlap, err = positiveDuration(v); return err }},
}

func init() { vars = append(vars, syncVars...) }

// secretKey decodes a base64 (standard or URL alphabet, padded or not) 32-byte key. The
// error never quotes the value.
func secretKey(v string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("must be 32 bytes, base64-encoded (openssl rand -base64 32)")
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("must be true or false")
}

// Load reads the configuration through lookup (os.LookupEnv in production) and validates it
// for mode. Every problem is reported, each naming its variable.
func Load(mode Mode, lookup func(string) (string, bool)) (Config, error) {
	c := Config{raw: make(map[string]string, len(vars))}
	var problems []string
	for _, v := range vars {
		val, ok := lookup(v.Name)
		if !ok {
			val = v.Default
		}
		val = strings.TrimSpace(val)
		c.raw[v.Name] = val
		if val == "" && v.Default == "" {
			continue
		}
		if err := v.set(&c, val); err != nil {
			shown := fmt.Sprintf("=%q", val)
			if v.Secret || v.Credentials {
				// A malformed value cannot be redacted reliably, so none of it is shown.
				shown = ""
			}
			problems = append(problems, fmt.Sprintf("%s%s: %v", v.Name, shown, err))
		}
	}
	if mode != ModeStandalone {
		if c.NATSURL == "" {
			problems = append(problems, fmt.Sprintf("RUNYARD_NATS_URL: required when running %s alone", mode))
		}
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("config: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// Log writes the effective configuration to l with secrets masked.
func (c Config) Log(l zerolog.Logger) {
	e := l.Info()
	d := zerolog.Dict()
	for _, v := range Vars() {
		d.Str(v.Name, mask(v, c.raw[v.Name]))
	}
	e.Dict("config", d).Msg("configuration")
}

func mask(v Var, val string) string {
	switch {
	case val == "":
		return ""
	case v.Secret:
		return "****"
	case v.Credentials:
		return userinfo.ReplaceAllString(val, "${1}redacted@")
	}
	return val
}

// userinfo matches a URL's scheme and everything up to the last '@' after it, so that a
// password is removed even when it holds characters a URL parser would choke on.
var userinfo = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://)[^@]*@`)

// checkMongoURI validates with the driver's own parser (a MongoDB URI lists replica-set hosts
// separated by commas, which a URL parser refuses). The parser's message can quote the
// password, so only a generic one is returned.
func checkMongoURI(v string) error {
	if !strings.HasPrefix(v, "mongodb://") && !strings.HasPrefix(v, "mongodb+srv://") {
		return errors.New("must be a connection string starting with mongodb:// or mongodb+srv://")
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return errors.New("must not contain control characters")
	}
	if strings.HasPrefix(v, "mongodb+srv://") {
		// Parse would resolve the SRV record over DNS; the scheme and a host are all that can
		// be checked offline.
		if strings.TrimPrefix(v, "mongodb+srv://") == "" {
			return errors.New("must name a host")
		}
		return nil
	}
	if _, err := connstring.Parse(v); err != nil {
		return errors.New("is not a valid MongoDB connection string (check hosts, ports and that special characters in the password are percent-encoded)")
	}
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func checkAddr(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("must be host:port: %w", err)
	}
	return nil
}

func checkURLs(v string, schemes ...string) error {
	for _, part := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			// Not wrapped: url.Parse's error quotes the input, which may hold a password.
			return errors.New("not a URL")
		}
		ok := false
		for _, s := range schemes {
			ok = ok || u.Scheme == s
		}
		if !ok || u.Host == "" {
			return fmt.Errorf("must be a URL with scheme %s and a host", strings.Join(schemes, " or "))
		}
	}
	return nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration such as 5s or 2m")
	}
	return d, nil
}

func positiveInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}
