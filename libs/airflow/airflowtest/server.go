// Package airflowtest is a fake Airflow server for tests and benchmarks: an httptest server
// that speaks Airflow 2's /api/v1 or Airflow 3's /api/v2 for the endpoints Runyard's client
// uses, with Airflow's authentication, page cap, error bodies and trigger rules, generated
// data that changes between syncs on the data's own clock, injectable faults, and a request
// log. Its answers validate against the OpenAPI specs vendored in testdata/.
package airflowtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Config configures a fake server. Zero fields take the defaults in brackets.
type Config struct {
	// APIVersion is "v1" (Airflow 2, the default) or "v2" (Airflow 3).
	APIVersion string
	// AirflowVersion is what /version reports [2.10.5 or 3.2.0].
	AirflowVersion string
	// DAGs, RunsPerDAG and TasksPerDAG size the generated data [10, 5, 4]. MappedTasks is
	// how many map indices the second task of each DAG expands to [3; -1 for none].
	DAGs, RunsPerDAG, TasksPerDAG, MappedTasks int
	// PageCap is the server's [api] maximum_page_limit [100].
	PageCap int
	// Username and Password are the one user's credentials [admin/admin]: Basic on v1,
	// exchanged at POST /auth/token for a JWT on v2.
	Username, Password string
	// Token is a static bearer token both versions accept besides the above [none].
	Token string
	// TokenTTL is the lifetime of JWTs the v2 token endpoint issues [24h].
	TokenTTL time.Duration
	// Seed makes the generated data and the random faults reproducible [1].
	Seed uint64
	// Now is the data's clock [time.Now]: run dates are generated back from it and every
	// change is stamped with it as the run's updated_at.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = "v1"
	}
	if c.AirflowVersion == "" {
		c.AirflowVersion = map[string]string{"v1": "2.10.5", "v2": "3.2.0"}[c.APIVersion]
	}
	if c.DAGs == 0 {
		c.DAGs = 10
	}
	if c.RunsPerDAG == 0 {
		c.RunsPerDAG = 5
	}
	if c.TasksPerDAG == 0 {
		c.TasksPerDAG = 4
	}
	if c.MappedTasks == 0 {
		c.MappedTasks = 3
	}
	if c.PageCap == 0 {
		c.PageCap = 100
	}
	if c.Username == "" {
		c.Username, c.Password = "admin", "admin"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Faults makes a share of requests fail the way a loaded server or its proxy does. Rates are
// fractions from 0 to 1, drawn in this order for each request.
type Faults struct {
	// Drop closes the connection without an answer.
	Drop float64
	// TooMany answers 429 with Retry-After: RetryAfter (whole seconds; 0 sends "0").
	TooMany    float64
	RetryAfter time.Duration
	// ServerError answers 500.
	ServerError float64
	// Slow delays the answer by Latency.
	Slow    float64
	Latency time.Duration
}

// Fault is one forced failure for FailNext.
type Fault int

// Forced faults.
const (
	FaultDrop Fault = iota + 1
	FaultTooMany
	FaultServerError
	FaultUnavailable
)

// Request is one logged request.
type Request struct {
	Method string
	// Route is the endpoint's template without the /api/vN prefix, e.g.
	// "GET /dags/{dag_id}/dagRuns".
	Route  string
	Path   string
	Query  string
	Status int // 0 for a dropped connection
	// Auth is the scheme of the Authorization header (Basic, Bearer) or empty.
	Auth string
}

// Server is a running fake Airflow. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	cfg Config

	mu        sync.Mutex
	rng       *mrand.Rand
	secret    []byte
	dags      map[string]*dag
	order     []string // dag ids in creation order
	nextRunPK int
	faults    Faults
	forced    []Fault
	log       []Request
	counts    map[string]int
	tokens    int
}

// NewServer starts a fake server; Close stops it.
func NewServer(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, rng: mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), dags: map[string]*dag{}, counts: map[string]int{}}
	s.secret = newSecret()
	s.generate()
	s.Server = httptest.NewServer(s.routes())
	return s
}

func newSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// APIVersion is the version the server speaks.
func (s *Server) APIVersion() string { return s.cfg.APIVersion }

// SetFaults replaces the random fault rates.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// FailNext makes the next requests fail with the given faults, one each, before any random
// fault is drawn.
func (s *Server) FailNext(fs ...Fault) {
	s.mu.Lock()
	s.forced = append(s.forced, fs...)
	s.mu.Unlock()
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// RequestCount is how many requests hit route ("GET /dags"); an empty route counts all.
func (s *Server) RequestCount(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if route == "" {
		return len(s.log)
	}
	return s.counts[route]
}

// ResetLog clears the request log and counters.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.log, s.counts = nil, map[string]int{}
	s.mu.Unlock()
}

// TokensIssued is how many JWTs the v2 token endpoint issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// RotateSigningKey makes every issued JWT invalid, as a restarted api-server with a new
// jwt_secret does: they are then refused with 403 "Invalid JWT token".
func (s *Server) RotateSigningKey() {
	s.mu.Lock()
	s.secret = newSecret()
	s.mu.Unlock()
}

// ---- request plumbing ----

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// routed wraps an endpoint: it logs the request under route, injects faults, and checks
// authentication unless public.
func (s *Server) routed(route string, public bool, h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		// The request is counted before it is answered: a large answer reaches the client
		// while the handler is still writing, and a client that has its answer must find
		// its request in the log.
		s.mu.Lock()
		at := len(s.log)
		s.log = append(s.log, Request{Method: r.Method, Route: route, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: scheme})
		s.counts[route]++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.log[at].Status = rec.status
			s.mu.Unlock()
		}()
		fault, delay := s.drawFault()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch fault {
		case FaultDrop:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case FaultTooMany:
			s.mu.Lock()
			ra := s.faults.RetryAfter
			s.mu.Unlock()
			rec.Header().Set("Retry-After", fmt.Sprint(int(ra/time.Second)))
			s.writeError(rec, http.StatusTooManyRequests, "Too Many Requests", "Rate limit exceeded")
			return
		case FaultServerError:
			s.writeError(rec, http.StatusInternalServerError, "Internal Server Error", "Internal Server Error")
			return
		case FaultUnavailable:
			rec.Header().Set("Content-Type", "text/html")
			rec.WriteHeader(http.StatusServiceUnavailable)
			_, _ = rec.Write([]byte("<html><body><h1>503 Service Unavailable</h1></body></html>"))
			return
		}
		if !public && !s.authenticate(rec, r) {
			return
		}
		h(rec, r)
	}
}

func (s *Server) drawFault() (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.forced) > 0 {
		f := s.forced[0]
		s.forced = s.forced[1:]
		return f, 0
	}
	f := s.faults
	var delay time.Duration
	if f.Slow > 0 && s.rng.Float64() < f.Slow {
		delay = f.Latency
	}
	switch {
	case f.Drop > 0 && s.rng.Float64() < f.Drop:
		return FaultDrop, delay
	case f.TooMany > 0 && s.rng.Float64() < f.TooMany:
		return FaultTooMany, delay
	case f.ServerError > 0 && s.rng.Float64() < f.ServerError:
		return FaultServerError, delay
	}
	return 0, delay
}

// ---- authentication ----

// authenticate checks the request's credentials as the version's server does and answers
// 401/403 itself when they fail.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	if s.cfg.Token != "" && strings.EqualFold(scheme, "Bearer") && hmac.Equal([]byte(cred), []byte(s.cfg.Token)) {
		return true
	}
	if s.cfg.APIVersion == "v1" {
		if strings.EqualFold(scheme, "Basic") {
			if u, p, ok := r.BasicAuth(); ok && u == s.cfg.Username && p == s.cfg.Password {
				return true
			}
		}
		w.Header().Set("WWW-Authenticate", "Basic")
		s.writeError(w, http.StatusUnauthorized, "Unauthorized", "")
		return false
	}
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Not authenticated"})
		return false
	}
	switch s.checkJWT(cred) {
	case jwtOK:
		return true
	case jwtExpired:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Token Expired"})
	default:
		writeJSON(w, http.StatusForbidden, map[string]any{"detail": "Invalid JWT token"})
	}
	return false
}

type jwtResult int

const (
	jwtOK jwtResult = iota
	jwtExpired
	jwtInvalid
)

var b64 = base64.RawURLEncoding

func (s *Server) issueJWT(user string) string {
	now := time.Now()
	head := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": user, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.cfg.TokenTTL).Unix(), "aud": "apache-airflow"})
	body := head + "." + b64.EncodeToString(claims)
	s.mu.Lock()
	mac := hmac.New(sha256.New, s.secret)
	s.tokens++
	s.mu.Unlock()
	mac.Write([]byte(body))
	return body + "." + b64.EncodeToString(mac.Sum(nil))
}

func (s *Server) checkJWT(tok string) jwtResult {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwtInvalid
	}
	s.mu.Lock()
	mac := hmac.New(sha256.New, s.secret)
	s.mu.Unlock()
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return jwtInvalid
	}
	raw, err := b64.DecodeString(parts[1])
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		return jwtInvalid
	}
	if time.Now().Unix() >= claims.Exp {
		return jwtExpired
	}
	return jwtOK
}

// handleToken is Airflow 3's simple auth manager's POST /auth/token: JSON or form body,
// 201 {"access_token"}, 401 on wrong credentials, 400 on empty ones, 422 on a malformed body.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err == nil {
			u, p := r.PostForm.Get("username"), r.PostForm.Get("password")
			body.Username, body.Password = &u, &p
		}
	} else if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, validationErrors(verr([]any{"body"}, "JSON decode error", "json_invalid", nil)))
		return
	}
	if body.Username == nil || body.Password == nil {
		var errs []map[string]any
		if body.Username == nil {
			errs = append(errs, verr([]any{"body", "username"}, "Field required", "missing", nil))
		}
		if body.Password == nil {
			errs = append(errs, verr([]any{"body", "password"}, "Field required", "missing", nil))
		}
		writeJSON(w, http.StatusUnprocessableEntity, validationErrors(errs...))
		return
	}
	if *body.Username == "" || *body.Password == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Username and password must be provided"})
		return
	}
	if *body.Username != s.cfg.Username || *body.Password != s.cfg.Password {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Invalid credentials"})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"access_token": s.issueJWT(*body.Username)})
}

// ---- answers ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorNames are v1's problem types by status (the #section/Errors/<Name> anchors).
var errorNames = map[int]string{400: "BadRequest", 401: "Unauthenticated", 403: "PermissionDenied", 404: "NotFound", 409: "AlreadyExists", 429: "Unknown", 500: "Unknown"}

// writeError answers in the version's error format: v1 RFC 7807 problem+json with Airflow's
// title and docs URL type, v2 FastAPI {"detail": ...}.
func (s *Server) writeError(w http.ResponseWriter, status int, title string, detail any) {
	if s.cfg.APIVersion == "v2" {
		if detail == "" {
			detail = title
		}
		writeJSON(w, status, map[string]any{"detail": detail})
		return
	}
	name := errorNames[status]
	if name == "" {
		name = "Unknown"
	}
	body := map[string]any{
		"type":   fmt.Sprintf("https://airflow.apache.org/docs/apache-airflow/%s/stable-rest-api-ref.html#section/Errors/%s", s.cfg.AirflowVersion, name),
		"title":  title,
		"status": status,
	}
	if d, ok := detail.(string); !ok || d != "" {
		body["detail"] = detail
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func verr(loc []any, msg, typ string, input any) map[string]any {
	e := map[string]any{"loc": loc, "msg": msg, "type": typ}
	if input != nil {
		e["input"] = input
	}
	return e
}

func validationErrors(errs ...map[string]any) map[string]any {
	return map[string]any{"detail": errs}
}
