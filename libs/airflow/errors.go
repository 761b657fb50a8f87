package airflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinels an *APIError matches with errors.Is, by status code.
var (
	ErrNotFound       = errors.New("airflow: not found")    // 404
	ErrConflict       = errors.New("airflow: conflict")     // 409
	ErrBadRequest     = errors.New("airflow: bad request")  // 400 and 422
	ErrUnauthorized   = errors.New("airflow: unauthorized") // 401
	ErrForbidden      = errors.New("airflow: forbidden")    // 403
	ErrRateLimited    = errors.New("airflow: rate limited") // 429
	ErrServer         = errors.New("airflow: server error") // 5xx
	ErrRedirected     = errors.New("airflow: redirected")   // 3xx, never followed
	errBadCredentials = errors.New("airflow: token endpoint refused the credentials")
)

// APIError is a non-2xx answer from Airflow: its status code and its message, taken from
// either version's error body (v1 problem+json title/detail, v2 FastAPI detail).
type APIError struct {
	StatusCode int
	// Title is v1's problem title ("Not Found", "Already Exists"); empty on v2.
	Title string
	// Message is Airflow's own explanation, as close to verbatim as the body allows.
	Message string
	// Body is the raw answer, truncated to 4 KiB.
	Body   []byte
	Method string
	Path   string
	// Location is the target of a redirect the client did not follow.
	Location string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.Location != "" {
		msg += " (redirect to " + e.Location + " not followed)"
	}
	return fmt.Sprintf("airflow: %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// Is matches the sentinel of e's status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	case ErrRedirected:
		return e.StatusCode >= 300 && e.StatusCode < 400
	}
	return false
}

// StatusOf returns the Airflow status code err carries, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// apiError reads and closes resp's body into an *APIError.
func (c *Client) apiError(req request, resp *http.Response) *APIError {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	e := &APIError{StatusCode: resp.StatusCode, Body: raw, Method: req.method, Path: req.path}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Location = resp.Header.Get("Location")
	}
	e.Title, e.Message = errorMessage(raw)
	return e
}

// errorMessage extracts the title and message of either version's error body:
// v1 {"type","title","status","detail"}, v2 {"detail": string | object | [{loc,msg,type}]},
// and Airflow 3's {"error": "..."} for removed /api/v1 paths.
func errorMessage(raw []byte) (title, msg string) {
	var body struct {
		Title  string          `json:"title"`
		Detail json.RawMessage `json:"detail"`
		Error  string          `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil {
		s := strings.TrimSpace(string(raw))
		if len(s) > 200 || strings.HasPrefix(s, "<") {
			return "", ""
		}
		return "", s
	}
	if body.Error != "" {
		return body.Title, body.Error
	}
	if len(body.Detail) == 0 || string(body.Detail) == "null" {
		return body.Title, ""
	}
	var s string
	if json.Unmarshal(body.Detail, &s) == nil {
		return body.Title, s
	}
	var list []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(body.Detail, &list) == nil && len(list) > 0 {
		parts := make([]string, 0, len(list))
		for _, it := range list {
			loc := make([]string, 0, len(it.Loc))
			for _, l := range it.Loc {
				loc = append(loc, fmt.Sprint(l))
			}
			parts = append(parts, strings.Join(loc, ".")+": "+it.Msg)
		}
		return body.Title, strings.Join(parts, "; ")
	}
	var obj map[string]any
	if json.Unmarshal(body.Detail, &obj) == nil {
		// The unique-constraint 409: {"reason": "...", "message": "..."}.
		if m, ok := obj["message"].(string); ok && m != "" {
			if r, ok := obj["reason"].(string); ok && r != "" {
				return body.Title, r + ": " + m
			}
			return body.Title, m
		}
		if r, ok := obj["reason"].(string); ok {
			return body.Title, r
		}
	}
	return body.Title, string(body.Detail)
}

// isInvalidJWT reports Airflow 3's 403 for a malformed or wrongly signed token (a token the
// server no longer accepts, which a new one cures), as opposed to a permission 403. The body
// is peeked and put back.
func isInvalidJWT(resp *http.Response) bool {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(string(raw)), resp.Body), resp.Body}
	_, msg := errorMessage(raw)
	return strings.EqualFold(msg, "Invalid JWT token")
}
