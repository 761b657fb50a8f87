package airflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AllDAGs is the dag_id that lists runs across every DAG the caller may read.
const AllDAGs = "~"

// DAGFilter selects DAGs. The zero value lists every DAG, those whose file is gone
// included (IsActive false), so that a sync notices them.
type DAGFilter struct {
	// ActiveOnly hides DAGs whose file is gone (v1 only_active, v2 exclude_stale).
	ActiveOnly bool
	// DAGIDPattern is Airflow's case-insensitive substring match on dag_id.
	DAGIDPattern string
	Paused       *bool
	// Tags keeps DAGs with any of the tags.
	Tags []string
}

// ListDAGs returns every DAG the filter selects, paging to the end, ordered by dag_id.
func (c *Client) ListDAGs(ctx context.Context, f DAGFilter) ([]DAG, error) {
	var out []DAG
	err := c.EachDAGPage(ctx, f, func(page []DAG) error { out = append(out, page...); return nil })
	return out, err
}

// EachDAGPage calls fn with each page of DAGs, in dag_id order.
func (c *Client) EachDAGPage(ctx context.Context, f DAGFilter, fn func([]DAG) error) error {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return err
	}
	q := url.Values{}
	active := strconv.FormatBool(f.ActiveOnly)
	if v == V1 {
		q.Set("only_active", active)
	} else {
		q.Set("exclude_stale", active)
	}
	if f.DAGIDPattern != "" {
		q.Set("dag_id_pattern", f.DAGIDPattern)
	}
	if f.Paused != nil {
		q.Set("paused", strconv.FormatBool(*f.Paused))
	}
	for _, t := range f.Tags {
		q.Add("tags", t)
	}
	q.Set("order_by", "dag_id")
	seen := map[string]bool{}
	return c.pages(ctx, v, "/dags", q, func(raw json.RawMessage) (int, error) {
		var body struct {
			DAGs []json.RawMessage `json:"dags"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return 0, err
		}
		page := make([]DAG, 0, len(body.DAGs))
		for _, r := range body.DAGs {
			d, err := decodeDAG(v, r)
			if err != nil {
				return 0, err
			}
			// Offset paging over a set that changes between pages can repeat a row.
			if !seen[d.DAGID] {
				seen[d.DAGID] = true
				page = append(page, d)
			}
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return 0, err
			}
		}
		return len(body.DAGs), nil
	})
}

func decodeDAG(v APIVersion, raw json.RawMessage) (DAG, error) {
	var w wireDAG
	if err := json.Unmarshal(raw, &w); err != nil {
		return DAG{}, fmt.Errorf("decode dag: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return DAG{}, fmt.Errorf("decode dag: %w", err)
	}
	return w.normalize(v, m), nil
}

// GetDAG returns one DAG; an unknown dag_id is an *APIError matching ErrNotFound.
func (c *Client) GetDAG(ctx context.Context, dagID string) (*DAG, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, v, request{method: http.MethodGet, path: "/dags/" + url.PathEscape(dagID)}, &raw); err != nil {
		return nil, err
	}
	d, err := decodeDAG(v, raw)
	if err != nil {
		return nil, fmt.Errorf("airflow: get dag %s: %w", dagID, err)
	}
	return &d, nil
}

// RunFilter selects DAG runs. Times are sent in UTC with a Z offset.
type RunFilter struct {
	// UpdatedAtGTE/LTE filter on the run's updated_at (Airflow 2.6+ and 3.x), which no
	// answer carries: the watermark must come from the caller's clock.
	UpdatedAtGTE, UpdatedAtLTE *time.Time
	// LogicalDateGTE/LTE filter on the logical date (v1 execution_date_*).
	LogicalDateGTE, LogicalDateLTE *time.Time
	StartDateGTE                   *time.Time
	States                         []string
	// OrderBy is one field, "-" for descending: id (default), updated_at, logical_date,
	// start_date, end_date, run_id, state. The client translates names v1 spells
	// differently (logical_date → execution_date, run_id → dag_run_id).
	OrderBy string
}

// ListDAGRuns returns every run of dagID (AllDAGs for every DAG) the filter selects.
func (c *Client) ListDAGRuns(ctx context.Context, dagID string, f RunFilter) ([]DAGRun, error) {
	var out []DAGRun
	err := c.EachDAGRunPage(ctx, dagID, f, func(page []DAGRun) error { out = append(out, page...); return nil })
	return out, err
}

// EachDAGRunPage calls fn with each page of runs. A run seen on an earlier page is not
// passed again (offset paging over a moving set can repeat rows; it can also skip one, so
// a sync re-polls the runs it knows are unfinished).
func (c *Client) EachDAGRunPage(ctx context.Context, dagID string, f RunFilter, fn func([]DAGRun) error) error {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return err
	}
	q := url.Values{}
	setTime := func(name string, t *time.Time) {
		if t != nil {
			q.Set(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	setTime("updated_at_gte", f.UpdatedAtGTE)
	setTime("updated_at_lte", f.UpdatedAtLTE)
	if v == V1 {
		setTime("execution_date_gte", f.LogicalDateGTE)
		setTime("execution_date_lte", f.LogicalDateLTE)
	} else {
		setTime("logical_date_gte", f.LogicalDateGTE)
		setTime("logical_date_lte", f.LogicalDateLTE)
	}
	setTime("start_date_gte", f.StartDateGTE)
	for _, s := range f.States {
		q.Add("state", s)
	}
	if f.OrderBy != "" {
		q.Set("order_by", runOrderField(v, f.OrderBy))
	}
	seen := map[string]bool{}
	return c.pages(ctx, v, "/dags/"+url.PathEscape(dagID)+"/dagRuns", q, func(raw json.RawMessage) (int, error) {
		var body struct {
			Runs []wireRun `json:"dag_runs"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return 0, err
		}
		page := make([]DAGRun, 0, len(body.Runs))
		for i := range body.Runs {
			r := body.Runs[i].normalize()
			if k := r.DAGID + "\x00" + r.RunID; !seen[k] {
				seen[k] = true
				page = append(page, r)
			}
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return 0, err
			}
		}
		return len(body.Runs), nil
	})
}

func runOrderField(v APIVersion, field string) string {
	desc, name := strings.HasPrefix(field, "-"), strings.TrimPrefix(field, "-")
	if v == V1 {
		switch name {
		case "logical_date":
			name = "execution_date"
		case "run_id":
			name = "dag_run_id"
		}
	} else if name == "execution_date" {
		name = "logical_date"
	}
	if desc {
		return "-" + name
	}
	return name
}

// GetDAGRun returns one run.
func (c *Client) GetDAGRun(ctx context.Context, dagID, runID string) (*DAGRun, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	var w wireRun
	if err := c.do(ctx, v, request{method: http.MethodGet, path: "/dags/" + url.PathEscape(dagID) + "/dagRuns/" + url.PathEscape(runID)}, &w); err != nil {
		return nil, err
	}
	r := w.normalize()
	return &r, nil
}

// maxTIRereads bounds how often a task instance listing is read again when its total
// changed while it was paged.
const maxTIRereads = 3

// ListTaskInstances returns every task instance of a run, one per (task_id, map_index),
// sorted by task_id then map_index. Airflow 2 lists them in no defined order, so pages are
// deduplicated on the key, and the listing is read again when the count it ends with is not
// the count it started with.
func (c *Client) ListTaskInstances(ctx context.Context, dagID, runID string) ([]TaskInstance, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	path := "/dags/" + url.PathEscape(dagID) + "/dagRuns/" + url.PathEscape(runID) + "/taskInstances"
	var tis map[string]TaskInstance
	for read := 0; ; read++ {
		tis = map[string]TaskInstance{}
		firstTotal, lastTotal := -1, -1
		err := c.pagesTotal(ctx, v, path, url.Values{}, func(raw json.RawMessage, total int) (int, error) {
			var body struct {
				TIs []wireTI `json:"task_instances"`
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				return 0, err
			}
			if firstTotal < 0 {
				firstTotal = total
			}
			lastTotal = total
			for i := range body.TIs {
				ti := body.TIs[i].normalize()
				tis[ti.Key()] = ti
			}
			return len(body.TIs), nil
		})
		if err != nil {
			return nil, err
		}
		if (firstTotal == lastTotal && len(tis) >= lastTotal) || read+1 >= maxTIRereads {
			break
		}
	}
	out := make([]TaskInstance, 0, len(tis))
	for _, ti := range tis {
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TaskID != out[j].TaskID {
			return out[i].TaskID < out[j].TaskID
		}
		return out[i].MapIndex < out[j].MapIndex
	})
	return out, nil
}

// pages reads a list endpoint page by page: limit=PageSize and an offset advanced by the rows
// actually received, until the offset reaches total_entries or a page comes back empty.
// Servers clamp limit to their maximum page size without saying so.
func (c *Client) pages(ctx context.Context, v APIVersion, path string, q url.Values, page func(json.RawMessage) (int, error)) error {
	return c.pagesTotal(ctx, v, path, q, func(raw json.RawMessage, _ int) (int, error) { return page(raw) })
}

// maxPages guards against a server whose total_entries never stops growing.
const maxPages = 1_000_000

func (c *Client) pagesTotal(ctx context.Context, v APIVersion, path string, q url.Values, page func(json.RawMessage, int) (int, error)) error {
	offset := 0
	for range maxPages {
		pq := url.Values{}
		for k, vs := range q {
			pq[k] = vs
		}
		pq.Set("limit", strconv.Itoa(c.cfg.PageSize))
		pq.Set("offset", strconv.Itoa(offset))
		var raw json.RawMessage
		if err := c.do(ctx, v, request{method: http.MethodGet, path: path, query: pq}, &raw); err != nil {
			return err
		}
		var env struct {
			Total *int `json:"total_entries"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			return fmt.Errorf("airflow: GET %s: decode answer: %w", path, err)
		}
		total := -1
		if env.Total != nil {
			total = *env.Total
		}
		n, err := page(raw, total)
		if err != nil {
			return fmt.Errorf("airflow: GET %s: %w", path, err)
		}
		offset += n
		if n == 0 || (total >= 0 && offset >= total) {
			return nil
		}
	}
	return fmt.Errorf("airflow: GET %s: more than %d pages", path, maxPages)
}

// TriggerRequest is the body of a trigger. Conf is the run's configuration; DAGRunID, when
// set, makes a retried trigger idempotent (a repeat answers 409, which the client resolves
// by reading the run it created).
type TriggerRequest struct {
	DAGRunID string
	// LogicalDate nil means "now" on Airflow 2 and a run with no logical date on Airflow 3.
	LogicalDate *time.Time
	Conf        map[string]any
	Note        string
}

// TriggerDAGRun creates a run of dagID. Airflow's refusals come back as *APIError with
// Airflow's status code and message: 404 unknown or stale DAG, 409 a run with that id (or
// logical date) exists, 400 or 422 an invalid body or run id. A paused DAG accepts the run,
// which stays queued until the DAG is unpaused.
func (c *Client) TriggerDAGRun(ctx context.Context, dagID string, tr TriggerRequest) (*DAGRun, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if tr.DAGRunID != "" {
		body["dag_run_id"] = tr.DAGRunID
	}
	if tr.LogicalDate != nil {
		body["logical_date"] = tr.LogicalDate.UTC().Format(time.RFC3339Nano)
	} else if v == V2 {
		// Airflow 3 requires the key; null asks for a run without a logical date.
		body["logical_date"] = nil
	}
	if tr.Conf != nil {
		body["conf"] = tr.Conf
	}
	if tr.Note != "" {
		body["note"] = tr.Note
	}
	path := "/dags/" + url.PathEscape(dagID) + "/dagRuns"
	var w wireRun
	retried := false
	err = c.do(ctx, v, request{method: http.MethodPost, path: path, body: body, idempotent: tr.DAGRunID != "", retried: &retried}, &w)
	if err != nil {
		// A 409 on a retry of our own run id means an attempt whose answer was lost created
		// the run: read it back. A 409 on the first attempt is the caller's to see.
		if retried && errors.Is(err, ErrConflict) {
			return c.GetDAGRun(ctx, dagID, tr.DAGRunID)
		}
		return nil, err
	}
	r := w.normalize()
	return &r, nil
}
