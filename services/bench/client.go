package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiClient speaks the Mage-compatible API of Runyard (or of Mage itself).
type apiClient struct {
	base   string
	apiKey string
	bearer string
	hc     *http.Client
}

// requestTimeout bounds every request; Runyard answers a trigger within RUNYARD_COMMAND_WAIT
// (5 s by default) with 200 or 202.
const requestTimeout = 30 * time.Second

func newAPIClient(base, apiKey, bearer string, conns int) *apiClient {
	tr := &http.Transport{
		Proxy:               nil, // loopback benchmarks never go through a proxy
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &apiClient{base: base, apiKey: apiKey, bearer: bearer, hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (c *apiClient) close() { c.hc.CloseIdleConnections() }

// httpStatusError is an answer other than the expected status.
type httpStatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, truncate(strings.TrimSpace(e.Body), 300))
}

// do sends a request and returns the status and body (at most 16 MiB). auth adds the API key.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, auth bool) (int, []byte, error) {
	u := c.base + path
	if auth && c.apiKey != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "api_key=" + url.QueryEscape(c.apiKey)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		if c.apiKey != "" {
			req.Header.Set("X-API-KEY", c.apiKey)
		}
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return res.StatusCode, readLimited(res, 16<<20), nil
}

// readLimited reads and closes a response body, draining what is left so that the connection
// is reused.
func readLimited(res *http.Response, limit int64) []byte {
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, limit))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<20))
	return b
}

// triggerBody is what every benchmark trigger sends: Mage's shape, accepted by both servers.
var triggerBody = []byte(`{"pipeline_run": {"variables": {"source": "runyard-bench"}}}`)

// triggerResult is one trigger's answer.
type triggerResult struct {
	Status int
	RunID  int64
}

// trigger fires the schedule's token trigger. A 200 carries the run; other statuses are
// returned without an error, transport failures with one.
func (c *apiClient) trigger(ctx context.Context, scheduleID int64, token string) (triggerResult, error) {
	path := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", scheduleID, token)
	status, body, err := c.do(ctx, http.MethodPost, path, triggerBody, false)
	if err != nil {
		return triggerResult{}, err
	}
	r := triggerResult{Status: status}
	if status != http.StatusOK {
		return r, nil
	}
	var v struct {
		PipelineRun struct {
			ID json.Number `json:"id"`
		} `json:"pipeline_run"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return r, fmt.Errorf("trigger answer: %w", err)
	}
	if r.RunID, err = v.PipelineRun.ID.Int64(); err != nil {
		return r, fmt.Errorf("trigger answer: run id %q: %w", v.PipelineRun.ID, err)
	}
	return r, nil
}

// runStatus reads GET /api/pipeline_runs/:id and returns the run's status.
func (c *apiClient) runStatus(ctx context.Context, id int64) (string, error) {
	path := "/api/pipeline_runs/" + strconv.FormatInt(id, 10)
	status, body, err := c.do(ctx, http.MethodGet, path, nil, true)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", &httpStatusError{Method: http.MethodGet, Path: path, Status: status, Body: string(body)}
	}
	var v struct {
		PipelineRun struct {
			Status string `json:"status"`
		} `json:"pipeline_run"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	return v.PipelineRun.Status, nil
}

// runsPage is a page of GET /api/pipeline_schedules/:id/pipeline_runs.
type runsPage struct {
	Count int64
	IDs   []int64
}

func (c *apiClient) scheduleRuns(ctx context.Context, scheduleID int64, limit int) (runsPage, error) {
	path := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs?_limit=%d", scheduleID, limit)
	status, body, err := c.do(ctx, http.MethodGet, path, nil, true)
	if err != nil {
		return runsPage{}, err
	}
	if status != http.StatusOK {
		return runsPage{}, &httpStatusError{Method: http.MethodGet, Path: path, Status: status, Body: string(body)}
	}
	var v struct {
		PipelineRuns []struct {
			ID json.Number `json:"id"`
		} `json:"pipeline_runs"`
		Metadata struct {
			Count json.Number `json:"count"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return runsPage{}, fmt.Errorf("GET %s: %w", path, err)
	}
	p := runsPage{}
	if v.Metadata.Count != "" {
		p.Count, _ = v.Metadata.Count.Int64()
	}
	for _, r := range v.PipelineRuns {
		if id, err := r.ID.Int64(); err == nil {
			p.IDs = append(p.IDs, id)
		}
	}
	return p, nil
}

// noopPipeline is the benchmark's pipeline: a root block, then two parallel branches, every
// block a noop.
func noopPipeline(uuid string) map[string]any {
	noop := map[string]any{"kind": "noop"}
	return map[string]any{"pipeline": map[string]any{
		"uuid": uuid,
		"name": uuid,
		"blocks": []map[string]any{
			{"uuid": "root", "runner": noop},
			{"uuid": "left", "upstream_blocks": []string{"root"}, "runner": noop},
			{"uuid": "right", "upstream_blocks": []string{"root"}, "runner": noop},
		},
	}}
}

// blocksPerRun is how many block runs a run of noopPipeline has.
const blocksPerRun = 3

// createNoopSchedule creates noopPipeline(uuid) and an active api schedule for it, and returns
// the schedule's id and token.
func (c *apiClient) createNoopSchedule(ctx context.Context, uuid string) (int64, string, error) {
	body, err := json.Marshal(noopPipeline(uuid))
	if err != nil {
		return 0, "", fmt.Errorf("encode pipeline: %w", err)
	}
	status, res, err := c.do(ctx, http.MethodPost, "/api/pipelines", body, true)
	if err != nil {
		return 0, "", err
	}
	if status != http.StatusOK {
		return 0, "", &httpStatusError{Method: http.MethodPost, Path: "/api/pipelines", Status: status, Body: string(res)}
	}
	path := "/api/pipelines/" + uuid + "/pipeline_schedules"
	body = []byte(`{"pipeline_schedule": {"name": "runyard-bench", "schedule_type": "api", "status": "active"}}`)
	status, res, err = c.do(ctx, http.MethodPost, path, body, true)
	if err != nil {
		return 0, "", err
	}
	if status != http.StatusOK {
		return 0, "", &httpStatusError{Method: http.MethodPost, Path: path, Status: status, Body: string(res)}
	}
	var v struct {
		PipelineSchedule struct {
			ID    json.Number `json:"id"`
			Token string      `json:"token"`
		} `json:"pipeline_schedule"`
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", path, err)
	}
	id, err := v.PipelineSchedule.ID.Int64()
	if err != nil || id <= 0 || v.PipelineSchedule.Token == "" {
		return 0, "", fmt.Errorf("POST %s: no id or token in %s", path, truncate(string(res), 300))
	}
	return id, v.PipelineSchedule.Token, nil
}
