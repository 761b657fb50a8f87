// Package airflow is Runyard's client for Apache Airflow's REST API: the stable API v1 of
// Airflow 2 (/api/v1) and the API v2 of Airflow 3 (/api/v2). It detects which one a server
// speaks, authenticates (basic, a username and password exchanged for a JWT, or a static
// bearer token), throttles itself, retries what is safe to retry, and maps both versions'
// records onto one set of Go types (DAG, DAGRun, TaskInstance).
//
// A Client is safe for concurrent use. It never logs or returns credentials.
package airflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// APIVersion is the REST API a server speaks.
type APIVersion string

// API versions. Auto asks the client to detect the version on first use.
const (
	V1   APIVersion = "v1" // Airflow 2.x, /api/v1
	V2   APIVersion = "v2" // Airflow 3.x, /api/v2
	Auto APIVersion = "auto"
)

// AuthKind is how the client authenticates.
type AuthKind string

// Authentication kinds.
const (
	// AuthBasic sends HTTP Basic credentials on every request (Airflow 2 with a basic_auth
	// backend, or a proxy that wants them).
	AuthBasic AuthKind = "basic"
	// AuthPassword exchanges the username and password for a JWT at POST /auth/token on
	// Airflow 3 and sends it as a bearer token; on Airflow 2, which has no token endpoint, it
	// sends them as Basic credentials.
	AuthPassword AuthKind = "password"
	// AuthToken sends a static bearer token (a managed offering's token, a long-lived JWT).
	AuthToken AuthKind = "token"
	// AuthNone sends no credentials.
	AuthNone AuthKind = ""
)

// Auth holds credentials. Its String and Format methods never print the secrets.
type Auth struct {
	Kind     AuthKind
	Username string
	Password string
	Token    string
}

// String describes the credentials without their secrets.
func (a Auth) String() string {
	if a.Kind == AuthToken {
		return "airflow.Auth{token ****}"
	}
	return fmt.Sprintf("airflow.Auth{%s %q ****}", a.Kind, a.Username)
}

// GoString keeps %#v from printing the secrets.
func (a Auth) GoString() string { return a.String() }

// Defaults of Config.
const (
	DefaultRateLimit     = 10
	DefaultMaxRetries    = 4
	DefaultMinBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff    = 15 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultTimeout       = 30 * time.Second
	// DefaultPageSize is what the client asks for per page: Airflow's default
	// [api] maximum_page_limit, above which servers silently clamp.
	DefaultPageSize = 100
)

// Config configures a Client.
type Config struct {
	// BaseURL is the server's root, without /api/v1 or /api/v2; it may hold a sub-path when
	// Airflow sits behind a proxy.
	BaseURL string
	// Version is V1, V2, or Auto (or empty) to detect it.
	Version APIVersion
	Auth    Auth
	// RateLimit is the most requests per second this client sends (token requests and
	// retries included); Burst how many it may send at once. Defaults 10 and 1.
	RateLimit float64
	Burst     int
	// MaxRetries bounds the retries of one call after a 429, a 5xx or a connection error.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between retries.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After may make the client wait; a
	// longer one fails the call instead.
	MaxRetryAfter time.Duration
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration
	// PageSize is the limit sent on list requests (default 100). The client pages on the
	// count it received, so a server that clamps lower is still read to the end.
	PageSize int
	// DialControl, when set, vets every address the client connects to (after DNS
	// resolution), so that a redirect or a DNS change cannot reach a forbidden network.
	DialControl func(network, address string, c syscall.RawConn) error
	// Transport replaces the HTTP transport (tests); DialControl is then not applied.
	Transport http.RoundTripper
	// TokenRenewBefore is how long before a JWT's expiry the client fetches a new one.
	TokenRenewBefore time.Duration
	Logger           zerolog.Logger
	// Now is the clock a JWT's expiry is judged by [time.Now].
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Version == "" {
		c.Version = Auto
	}
	if c.RateLimit <= 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.Burst <= 0 {
		c.Burst = 1
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	} else if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.TokenRenewBefore <= 0 {
		c.TokenRenewBefore = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// NoRetries is the MaxRetries value that disables retries (0 means the default).
const NoRetries = -1

// Client talks to one Airflow server.
type Client struct {
	cfg     Config
	base    *url.URL
	http    *http.Client
	limiter *rate.Limiter
	log     zerolog.Logger

	verMu   sync.Mutex
	version APIVersion
	info    VersionInfo

	tokMu     sync.Mutex
	token     string
	tokenExp  time.Time
	tokenLife time.Duration

	requests atomic.Int64
	retries  atomic.Int64
}

// New returns a client for cfg. It makes no request: the version is detected on first use.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("airflow: base URL must be an http or https URL with a host")
	}
	if u.User != nil {
		return nil, errors.New("airflow: base URL must not hold credentials: use the connector's auth")
	}
	u.RawQuery, u.Fragment = "", ""
	switch cfg.Version {
	case V1, V2, Auto:
	default:
		return nil, fmt.Errorf("airflow: unknown API version %q (want v1, v2 or auto)", cfg.Version)
	}
	switch cfg.Auth.Kind {
	case AuthNone:
	case AuthBasic, AuthPassword:
		if cfg.Auth.Username == "" {
			return nil, fmt.Errorf("airflow: %s auth needs a username", cfg.Auth.Kind)
		}
	case AuthToken:
		if cfg.Auth.Token == "" {
			return nil, errors.New("airflow: token auth needs a token")
		}
	default:
		return nil, fmt.Errorf("airflow: unknown auth kind %q", cfg.Auth.Kind)
	}
	tr := cfg.Transport
	if tr == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: cfg.DialControl}
		tr = &http.Transport{
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          16,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
			// A proxy from the environment would be dialled instead of the vetted host.
			Proxy: nil,
		}
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect turns a POST into a GET (a trigger that comes back as a listing) and
		// could lead anywhere: redirects are reported, never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &Client{cfg: cfg, base: u, http: hc, limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.Burst), log: cfg.Logger}
	if cfg.Version != Auto {
		c.version = cfg.Version
	}
	return c, nil
}

// Requests is how many HTTP requests the client has sent, retries and token requests
// included.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Retries is how many of those requests were retries.
func (c *Client) Retries() int64 { return c.retries.Load() }

// VersionInfo is what GET /version answers.
type VersionInfo struct {
	Version    string  `json:"version"`
	GitVersion *string `json:"git_version"`
}

// ErrVersionUndetected is returned when neither /api/v2/version nor /api/v1/version answer.
var ErrVersionUndetected = errors.New("airflow: API version not detected")

// APIVersion returns the server's API version, detecting it on first call when the client
// was configured with Auto.
func (c *Client) APIVersion(ctx context.Context) (APIVersion, error) {
	c.verMu.Lock()
	defer c.verMu.Unlock()
	if c.version != "" {
		return c.version, nil
	}
	v, info, err := c.detect(ctx)
	if err != nil {
		return "", err
	}
	c.version, c.info = v, info
	return v, nil
}

// Detect probes the server: GET {base}/api/v2/version first (Airflow 3 answers 200; Airflow
// 2 has no /api/v2), then GET {base}/api/v1/version. It does not change the client's
// configured version.
func (c *Client) Detect(ctx context.Context) (APIVersion, VersionInfo, error) {
	return c.detect(ctx)
}

func (c *Client) detect(ctx context.Context) (APIVersion, VersionInfo, error) {
	var statuses []string
	for _, v := range []APIVersion{V2, V1} {
		var info VersionInfo
		err := c.do(ctx, v, request{method: http.MethodGet, path: "/version", noAuth: true}, &info)
		if err == nil && info.Version != "" {
			c.log.Debug().Str("api_version", string(v)).Str("airflow_version", info.Version).Msg("airflow api version detected")
			return v, info, nil
		}
		var ae *APIError
		if err != nil && !errors.As(err, &ae) {
			// The server is unreachable: probing the other path would fail the same way.
			return "", VersionInfo{}, fmt.Errorf("%w: %w", ErrVersionUndetected, err)
		}
		if err == nil {
			statuses = append(statuses, fmt.Sprintf("/api/%s/version: no version in the answer", v))
		} else {
			statuses = append(statuses, fmt.Sprintf("/api/%s/version: %d", v, ae.StatusCode))
		}
	}
	return "", VersionInfo{}, fmt.Errorf("%w (%s)", ErrVersionUndetected, strings.Join(statuses, ", "))
}

// Version returns the server's version information.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return VersionInfo{}, err
	}
	var info VersionInfo
	if err := c.do(ctx, v, request{method: http.MethodGet, path: "/version", noAuth: true}, &info); err != nil {
		return VersionInfo{}, err
	}
	return info, nil
}

// request is one logical API call.
type request struct {
	method string
	path   string // below /api/vN, already escaped
	query  url.Values
	body   any
	noAuth bool
	// idempotent says a retry after a connection error or a 5xx cannot do the work twice.
	idempotent bool
	// retried, when set, is set to true if the request was sent more than once.
	retried *bool
}

// do sends req to the API of version v and decodes a 2xx answer into out. It retries a 429,
// a 5xx or a connection error (the latter two only for idempotent requests or GETs) with
// exponential backoff, honouring Retry-After, and renews a JWT once on a 401.
func (c *Client) do(ctx context.Context, v APIVersion, req request, out any) error {
	var body []byte
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return fmt.Errorf("airflow: encode %s %s: %w", req.method, req.path, err)
		}
		body = b
	}
	idempotent := req.idempotent || req.method == http.MethodGet
	reauthed := false
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, v, req, body)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("airflow: %s %s: %w", req.method, req.path, ctx.Err())
			}
			// The token fetch retried on its own already.
			var te tokenError
			if errors.As(err, &te) || !idempotent || attempt >= c.cfg.MaxRetries {
				return err
			}
			wait = c.backoff(attempt)
		case resp.StatusCode == http.StatusUnauthorized || (resp.StatusCode == http.StatusForbidden && c.usesJWT(v) && isInvalidJWT(resp)):
			apiErr := c.apiError(req, resp)
			if reauthed || !c.usesJWT(v) || req.noAuth {
				return apiErr
			}
			// The token expired early or the server lost its key: fetch a new one, once.
			reauthed = true
			c.dropToken()
			attempt--
			continue
		case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode >= 500 && idempotent) || resp.StatusCode == http.StatusServiceUnavailable:
			apiErr := c.apiError(req, resp)
			if attempt >= c.cfg.MaxRetries {
				return apiErr
			}
			wait = c.backoff(attempt)
			if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				if ra > c.cfg.MaxRetryAfter {
					return fmt.Errorf("%w (Retry-After %s exceeds the %s the client waits)", apiErr, ra, c.cfg.MaxRetryAfter)
				}
				wait = max(ra, wait/4)
			}
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			defer resp.Body.Close()
			if out == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				return nil
			}
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("airflow: %s %s: decode answer: %w", req.method, req.path, err)
			}
			return nil
		default:
			return c.apiError(req, resp)
		}
		c.retries.Add(1)
		if req.retried != nil {
			*req.retried = true
		}
		c.log.Debug().Str("method", req.method).Str("path", req.path).Int("attempt", attempt+1).Dur("wait", wait).Msg("airflow request retried")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("airflow: %s %s: %w", req.method, req.path, ctx.Err())
		case <-t.C:
		}
	}
}

// send makes one HTTP attempt. A non-nil response's body is the caller's to close; an error
// is a transport failure.
func (c *Client) send(ctx context.Context, v APIVersion, req request, body []byte) (*http.Response, error) {
	u := c.endpoint("/api/"+string(v)+req.path, req.query)
	var hdr http.Header
	if !req.noAuth {
		h, err := c.authHeader(ctx, v)
		if err != nil {
			return nil, tokenError{err}
		}
		hdr = h
	} else if c.cfg.Auth.Kind == AuthBasic || c.cfg.Auth.Kind == AuthToken {
		// A proxy in front of Airflow may want credentials even for /version.
		hdr, _ = c.authHeader(ctx, v)
	}
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("airflow: %s %s: %w", req.method, req.path, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("airflow: %s %s: %w", req.method, req.path, err)
	}
	for k, vs := range hdr {
		hr.Header[k] = vs
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "runyard-airflow-client")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	c.requests.Add(1)
	resp, err := c.http.Do(hr)
	if err != nil {
		// url.Error quotes the URL, which holds no credentials (they travel in headers).
		return nil, fmt.Errorf("airflow: %s %s: %w", req.method, req.path, err)
	}
	return resp, nil
}

func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err == nil {
		u.Path = p
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// backoff is the wait before retry attempt+1: exponential from MinBackoff, capped at
// MaxBackoff, with jitter so that many clients do not retry in step.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	var secs int64
	if _, err := fmt.Sscanf(h, "%d", &secs); err == nil && fmt.Sprint(secs) == h && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// tokenError marks a failure to get a JWT, which the token fetch has retried already.
type tokenError struct{ error }

func (e tokenError) Unwrap() error { return e.error }

// PathEscape escapes one path segment the way the client does: run ids hold ':' and '+'.
func PathEscape(s string) string { return url.PathEscape(s) }
