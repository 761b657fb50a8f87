// Package client is a Go client of Runyard's HTTP API for services that trigger pipelines and
// follow their runs: trigger by pipeline or by schedule token, stream a space's events with
// automatic resumption, and wait for a run to finish.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/run"
)

// Client calls one Runyard gateway with one API key. It is safe for concurrent use.
type Client struct {
	base string
	key  string
	// HTTP sends the requests; its Timeout must be zero, since event streams stay open.
	HTTP *http.Client
	// PollEvery is how often TriggerSchedule polls a trigger the gateway accepted but had not
	// finished when it answered (default 200 ms).
	PollEvery time.Duration
}

// New returns a client of the gateway at baseURL (such as http://localhost:6789) that
// authenticates with apiKey.
func New(baseURL, apiKey string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), key: apiKey, HTTP: &http.Client{}, PollEvery: 200 * time.Millisecond}
}

// Error is an answer of the gateway other than success.
type Error struct {
	Status int
	// Detail is the answer's detail: a message, or for a 422 the list of {loc, msg, type}.
	Detail any
	Body   string
}

func (e *Error) Error() string {
	if s, ok := e.Detail.(string); ok {
		return fmt.Sprintf("runyard: %d: %s", e.Status, s)
	}
	return fmt.Sprintf("runyard: %d: %s", e.Status, e.Body)
}

// Permanent reports whether repeating the request cannot succeed (a client error other than
// 408 and 429).
func (e *Error) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// Run is a run as a trigger answers it.
type Run struct {
	ID     int64
	Status string
	// Raw is the whole run object as the gateway sent it.
	Raw json.RawMessage
}

func (r *Run) UnmarshalJSON(data []byte) error {
	var v struct {
		ID     json.RawMessage `json:"id"`
		Status string          `json:"status"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	id, err := strconv.ParseInt(strings.Trim(string(v.ID), `"`), 10, 64)
	if err != nil {
		return fmt.Errorf("runyard: run id %s: %w", v.ID, err)
	}
	r.ID, r.Status, r.Raw = id, v.Status, append(json.RawMessage(nil), data...)
	return nil
}

// TriggerPipeline starts a run of a pipeline through the orchestration API
// (POST /api/v1.0/spaces/{space}/orchestration/pipelines/{pipeline_id}/trigger), passing conf
// as the run's configuration (a native run's variables) when it is not nil. The key's user
// must be an editor of the space. When the gateway answers before an executor did (202), it
// polls the command until the run exists.
func (c *Client) TriggerPipeline(ctx context.Context, space, pipelineID string, conf map[string]any) (*Run, error) {
	var body any
	if conf != nil {
		body = map[string]any{"conf": conf}
	}
	var raw json.RawMessage
	p := "/api/v1.0/spaces/" + url.PathEscape(space) + "/orchestration/pipelines/" + url.PathEscape(pipelineID) + "/trigger"
	status, err := c.do(ctx, http.MethodPost, p, body, &raw)
	if err != nil {
		return nil, err
	}
	if status == http.StatusAccepted {
		// The executor had not answered in time: the answer is the command to poll.
		var acc struct {
			Command struct {
				ID string `json:"id"`
			} `json:"command"`
		}
		if err := json.Unmarshal(raw, &acc); err != nil || acc.Command.ID == "" {
			return nil, fmt.Errorf("runyard: trigger accepted without a command: %s", raw)
		}
		return c.awaitCommand(ctx, acc.Command.ID)
	}
	var r Run
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("runyard: trigger answer: %w", err)
	}
	return &r, nil
}

// TriggerSchedule starts a run through a schedule's trigger URL (Mage's
// POST /api/pipeline_schedules/{id}/pipeline_runs/{token}), with variables for the run. When
// the gateway answers before an executor did (202), it polls the command until the run exists.
func (c *Client) TriggerSchedule(ctx context.Context, scheduleID int64, token string, variables map[string]any) (*Run, error) {
	body := map[string]any{"pipeline_run": map[string]any{"variables": variables}}
	var out struct {
		PipelineRun *Run `json:"pipeline_run"`
		Command     *struct {
			ID string `json:"id"`
		} `json:"command"`
	}
	p := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", scheduleID, url.PathEscape(token))
	if _, err := c.do(ctx, http.MethodPost, p, body, &out); err != nil {
		return nil, err
	}
	if out.PipelineRun != nil {
		return out.PipelineRun, nil
	}
	if out.Command == nil {
		return nil, errors.New("runyard: trigger answered neither a run nor a command")
	}
	return c.awaitCommand(ctx, out.Command.ID)
}

// awaitCommand polls GET /api/commands/{id} until the command made its run or failed.
func (c *Client) awaitCommand(ctx context.Context, id string) (*Run, error) {
	t := time.NewTicker(c.PollEvery)
	defer t.Stop()
	for {
		var out struct {
			Command struct {
				Status      string `json:"status"`
				PipelineRun *Run   `json:"pipeline_run"`
				Error       *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"command"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/api/commands/"+url.PathEscape(id), nil, &out); err != nil {
			return nil, err
		}
		switch {
		case out.Command.PipelineRun != nil:
			return out.Command.PipelineRun, nil
		case out.Command.Error != nil:
			return nil, &Error{Status: out.Command.Error.Code, Detail: out.Command.Error.Message}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// GetRun reads a pipeline run (GET /api/pipeline_runs/{id}); the key's user must see its
// space. The answer is the Mage-compatible presentation, so the run has no space, DAG or
// version; those come with events.
func (c *Client) GetRun(ctx context.Context, runID int64) (*run.PipelineRun, error) {
	var out struct {
		PipelineRun *mageRun `json:"pipeline_run"`
	}
	if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/pipeline_runs/%d", runID), nil, &out); err != nil {
		return nil, err
	}
	if out.PipelineRun == nil {
		return nil, fmt.Errorf("runyard: run %d: answer holds no run", runID)
	}
	return out.PipelineRun.run()
}

// mageRun is a run as the Mage-compatible API shows it: dates as "2006-01-02
// 15:04:05.000000+00:00".
type mageRun struct {
	ID                 int64          `json:"id"`
	PipelineUUID       string         `json:"pipeline_uuid"`
	PipelineScheduleID int64          `json:"pipeline_schedule_id"`
	Status             run.Status     `json:"status"`
	ExecutionDate      *string        `json:"execution_date"`
	StartedAt          *string        `json:"started_at"`
	CompletedAt        *string        `json:"completed_at"`
	CreatedAt          *string        `json:"created_at"`
	UpdatedAt          *string        `json:"updated_at"`
	Variables          map[string]any `json:"variables"`
	EventVariables     map[string]any `json:"event_variables"`
	Metrics            map[string]any `json:"metrics"`
	PassedSLA          bool           `json:"passed_sla"`
	BackfillID         *int64         `json:"backfill_id"`
	ExecutorType       string         `json:"executor_type"`
	RunType            string         `json:"run_type"`
}

func (m *mageRun) run() (*run.PipelineRun, error) {
	r := &run.PipelineRun{
		ID: m.ID, PipelineUUID: m.PipelineUUID, PipelineScheduleID: m.PipelineScheduleID, Status: m.Status,
		Variables: m.Variables, EventVariables: m.EventVariables, Metrics: m.Metrics, PassedSLA: m.PassedSLA,
		BackfillID: m.BackfillID, ExecutorType: m.ExecutorType, RunType: m.RunType,
	}
	var err error
	at := func(s *string) *time.Time {
		if s == nil || *s == "" || err != nil {
			return nil
		}
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano} {
			if t, perr := time.Parse(layout, *s); perr == nil {
				return &t
			}
		}
		err = fmt.Errorf("runyard: run %d: date %q", m.ID, *s)
		return nil
	}
	r.StartedAt, r.CompletedAt = at(m.StartedAt), at(m.CompletedAt)
	for _, f := range []struct {
		dst *time.Time
		src *string
	}{{&r.ExecutionDate, m.ExecutionDate}, {&r.CreatedAt, m.CreatedAt}, {&r.UpdatedAt, m.UpdatedAt}} {
		if t := at(f.src); t != nil {
			*f.dst = *t
		}
	}
	return r, err
}

// WaitRun returns the run once it has finished (completed, failed or cancelled). It
// subscribes to the run's events before reading the run, so a run that finishes in between
// is not missed, and it survives dropped connections by resuming the stream. A run that
// finishes while WaitRun waits is returned as its terminal event carries it, in full; one that
// had already finished is returned as GetRun reads it.
func (c *Client) WaitRun(ctx context.Context, space string, runID int64) (*run.PipelineRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Events(ctx, space, EventFilter{RunIDs: []int64{runID}, Types: []string{"pipeline_run.status_changed"}}, "")
	if err != nil {
		return nil, err
	}
	r, err := c.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	if r.Status.Terminal() {
		r.Space = space
		return r, nil
	}
	for ev := range st.C {
		if pr := ev.Payload.PipelineRun; pr != nil && pr.ID == runID && pr.Status.Terminal() {
			return pr, nil
		}
	}
	if err := st.Err(); err != nil {
		return nil, err
	}
	return nil, ctx.Err()
}

func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("runyard: encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("runyard: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// do sends a request and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("runyard: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, fmt.Errorf("runyard: %s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, errorOf(res.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("runyard: %s %s: decode answer: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

func errorOf(status int, body []byte) *Error {
	e := &Error{Status: status, Body: string(body)}
	var v struct {
		Detail any `json:"detail"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil {
		e.Detail = v.Detail
		if e.Detail == nil && v.Error != nil {
			e.Detail = v.Error.Message
		}
	}
	return e
}
