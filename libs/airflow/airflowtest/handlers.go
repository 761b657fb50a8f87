package airflowtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Route names, as Request.Route and RequestCount know them.
const (
	RouteVersion  = "GET /version"
	RouteToken    = "POST /auth/token"
	RouteDAGs     = "GET /dags"
	RouteDAG      = "GET /dags/{dag_id}"
	RouteRuns     = "GET /dags/{dag_id}/dagRuns"
	RouteTrigger  = "POST /dags/{dag_id}/dagRuns"
	RouteRun      = "GET /dags/{dag_id}/dagRuns/{dag_run_id}"
	RouteTaskInst = "GET /dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := "/api/" + s.cfg.APIVersion
	mux.Handle("GET "+p+"/version", s.routed(RouteVersion, true, s.handleVersion))
	mux.Handle("GET "+p+"/dags", s.routed(RouteDAGs, false, s.handleDAGs))
	mux.Handle("GET "+p+"/dags/{dag_id}", s.routed(RouteDAG, false, s.handleDAG))
	mux.Handle("GET "+p+"/dags/{dag_id}/dagRuns", s.routed(RouteRuns, false, s.handleRuns))
	mux.Handle("POST "+p+"/dags/{dag_id}/dagRuns", s.routed(RouteTrigger, false, s.handleTrigger))
	mux.Handle("GET "+p+"/dags/{dag_id}/dagRuns/{dag_run_id}", s.routed(RouteRun, false, s.handleRun))
	mux.Handle("GET "+p+"/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", s.routed(RouteTaskInst, false, s.handleTIs))
	if s.cfg.APIVersion == "v2" {
		mux.Handle("POST /auth/token", s.routed(RouteToken, true, s.handleToken))
		// Airflow 3 answers every /api/v1 path so.
		mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "/api/v1 has been removed in Airflow 3, please use its upgraded version /api/v2 instead."})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIVersion == "v1" && strings.HasPrefix(r.URL.Path, "/api/v1/") {
			s.writeError(w, http.StatusNotFound, "Not Found", "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
			return
		}
		if s.cfg.APIVersion == "v2" {
			writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
			return
		}
		// Airflow 2's webserver: a Flask HTML 404 for paths outside its API.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!doctype html><title>Airflow 404</title><h1>404 Not Found</h1>"))
	})
	return mux
}

func (s *Server) v2() bool { return s.cfg.APIVersion == "v2" }

// ts formats a time as the version does: v1 +00:00 offsets, v2 Z.
func (s *Server) ts(t *time.Time) any {
	if t == nil {
		return nil
	}
	if s.v2() {
		return t.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00"
}

func (s *Server) handleVersion(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": s.cfg.AirflowVersion, "git_version": nil})
}

// badParam answers a malformed query parameter: v1 400, v2 422 with the parameter's loc.
func (s *Server) badParam(w http.ResponseWriter, name, msg, typ, input string) {
	if s.v2() {
		writeJSON(w, http.StatusUnprocessableEntity, validationErrors(verr([]any{"query", name}, msg, typ, input)))
		return
	}
	s.writeError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("%s: %s", name, msg))
}

// page reads limit and offset as the version does: v1 clamps to the cap and treats 0 as the
// default (100); v2 defaults to 50, clamps to the cap, answers 0 rows for limit=0, and
// refuses negatives with 422.
func (s *Server) page(w http.ResponseWriter, q url.Values) (limit, offset int, ok bool) {
	limit = 100
	if s.v2() {
		limit = 50
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.badParam(w, "limit", "Input should be greater than or equal to 0", "greater_than_equal", v)
			return 0, 0, false
		}
		if n == 0 && !s.v2() {
			n = 100
		}
		limit = n
	}
	limit = min(limit, s.cfg.PageCap)
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.badParam(w, "offset", "Input should be greater than or equal to 0", "greater_than_equal", v)
			return 0, 0, false
		}
		offset = n
	}
	return limit, offset, true
}

func window[T any](items []T, limit, offset int) []T {
	if offset >= len(items) {
		return []T{}
	}
	return items[offset:min(len(items), offset+limit)]
}

func boolParam(q url.Values, name string, def bool) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseBool(v)
}

func (s *Server) handleDAGs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, ok := s.page(w, q)
	if !ok {
		return
	}
	activeParam := "only_active"
	if s.v2() {
		activeParam = "exclude_stale"
	}
	activeOnly, err := boolParam(q, activeParam, true)
	if err != nil {
		s.badParam(w, activeParam, "Input should be a valid boolean", "bool_parsing", q.Get(activeParam))
		return
	}
	var paused *bool
	if q.Get("paused") != "" {
		p, err := strconv.ParseBool(q.Get("paused"))
		if err != nil {
			s.badParam(w, "paused", "Input should be a valid boolean", "bool_parsing", q.Get("paused"))
			return
		}
		paused = &p
	}
	desc := false
	for _, ob := range q["order_by"] {
		switch ob {
		case "dag_id":
		case "-dag_id":
			desc = true
		default:
			s.writeError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("Ordering with '%s' is disallowed or the attribute does not exist on the model", strings.TrimPrefix(ob, "-")))
			return
		}
	}
	pattern := strings.ToLower(q.Get("dag_id_pattern"))
	tags := q["tags"]
	s.mu.Lock()
	defer s.mu.Unlock()
	var sel []*dag
	for _, id := range s.order {
		d := s.dags[id]
		if (activeOnly && d.stale) || (paused != nil && d.paused != *paused) || !strings.Contains(strings.ToLower(d.id), pattern) {
			continue
		}
		if len(tags) > 0 && !slices.ContainsFunc(d.tags, func(t string) bool { return slices.Contains(tags, t) }) {
			continue
		}
		sel = append(sel, d)
	}
	sort.Slice(sel, func(i, j int) bool { return (sel[i].id < sel[j].id) != desc })
	out := make([]any, 0, limit)
	for _, d := range window(sel, limit, offset) {
		out = append(out, s.renderDAG(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total_entries": len(sel)})
}

func (s *Server) dagNotFound(w http.ResponseWriter, id string) {
	if s.v2() {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("Dag with id %s was not found", id)})
		return
	}
	s.writeError(w, http.StatusNotFound, "DAG not found", fmt.Sprintf("DAG with dag_id: '%s' not found", id))
}

func (s *Server) handleDAG(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dag_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dags[id]
	if !ok {
		s.dagNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, s.renderDAG(d))
}

func (s *Server) renderDAG(d *dag) map[string]any {
	var next *time.Time
	if d.interval > 0 && !d.paused && !d.stale {
		if last := d.lastLogical(); last != nil {
			next = timep(last.Add(d.interval))
		}
	}
	var nextEnd *time.Time
	if next != nil {
		nextEnd = timep(next.Add(d.interval))
	}
	summary, description := any(nil), "Never, external triggers only"
	switch {
	case d.cron != "":
		summary = d.cron
		description = map[string]string{"0 * * * *": "At 0 minutes past the hour", "0 0 * * *": "At 00:00"}[d.cron]
	case d.interval > 0:
		summary = fmt.Sprintf("%d:%02d:%02d", int(d.interval.Hours()), int(d.interval.Minutes())%60, int(d.interval.Seconds())%60)
		description = ""
	}
	m := map[string]any{
		"dag_id": d.id, "dag_display_name": d.id, "is_paused": d.paused, "last_parsed_time": s.ts(&d.lastParsed),
		"last_expired": nil, "fileloc": "/opt/airflow/dags/" + strings.ReplaceAll(d.id, ".", "/") + ".py",
		"file_token": "Ii9vcHQvYWlyZmxvdy9kYWdzLyI.fake-" + d.id, "owners": d.owners, "description": d.description,
		"timetable_description": description, "max_active_tasks": 16, "max_active_runs": 16,
		"has_task_concurrency_limits": false, "has_import_errors": d.importErrs,
		"next_dagrun_data_interval_start": s.ts(next), "next_dagrun_data_interval_end": s.ts(nextEnd),
		"max_consecutive_failed_dag_runs": 0,
	}
	tags := make([]any, 0, len(d.tags))
	for _, t := range d.tags {
		if s.v2() {
			tags = append(tags, map[string]any{"name": t, "dag_id": d.id, "dag_display_name": d.id})
		} else {
			tags = append(tags, map[string]any{"name": t})
		}
	}
	m["tags"] = tags
	if s.v2() {
		m["is_stale"] = d.stale
		m["last_parse_duration"] = 0.42
		m["bundle_name"] = "dags-folder"
		m["bundle_version"] = nil
		m["relative_fileloc"] = strings.ReplaceAll(d.id, ".", "/") + ".py"
		m["timetable_summary"] = summary
		m["timetable_partitioned"] = false
		m["next_dagrun_logical_date"] = s.ts(next)
		m["next_dagrun_run_after"] = s.ts(nextEnd)
		m["allowed_run_types"] = nil
		return m
	}
	m["root_dag_id"] = nil
	m["is_active"] = !d.stale
	m["is_subdag"] = false
	m["last_pickled"] = nil
	m["scheduler_lock"] = nil
	m["pickle_id"] = nil
	m["default_view"] = "grid"
	m["next_dagrun"] = s.ts(next)
	m["next_dagrun_create_after"] = s.ts(nextEnd)
	switch {
	case d.cron != "":
		m["schedule_interval"] = map[string]any{"__type": "CronExpression", "value": d.cron}
	case d.interval > 0:
		m["schedule_interval"] = map[string]any{"__type": "TimeDelta", "days": int(d.interval / (24 * time.Hour)), "seconds": int((d.interval % (24 * time.Hour)).Seconds()), "microseconds": 0}
	default:
		m["schedule_interval"] = nil
	}
	return m
}

// runOrderFields are the order_by fields each version allows on run lists.
var runOrderFields = map[string][]string{
	"v1": {"id", "state", "dag_id", "execution_date", "dag_run_id", "start_date", "end_date", "updated_at", "external_trigger", "conf"},
	"v2": {"id", "state", "dag_id", "run_id", "dag_run_id", "logical_date", "run_after", "start_date", "end_date", "updated_at", "conf", "duration"},
}

type timeFilter struct {
	name string
	get  func(*dagRun) *time.Time
	gte  bool
	at   time.Time
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	dagID := r.PathValue("dag_id")
	q := r.URL.Query()
	limit, offset, ok := s.page(w, q)
	if !ok {
		return
	}
	logicalName := "execution_date"
	if s.v2() {
		logicalName = "logical_date"
	}
	fields := map[string]func(*dagRun) *time.Time{
		"updated_at": func(r *dagRun) *time.Time { return &r.updatedAt },
		logicalName:  func(r *dagRun) *time.Time { return r.logical },
		"start_date": func(r *dagRun) *time.Time { return r.start },
		"end_date":   func(r *dagRun) *time.Time { return r.end },
		"run_after":  func(r *dagRun) *time.Time { return &r.runAfter },
	}
	if !s.v2() {
		delete(fields, "run_after")
	}
	var filters []timeFilter
	for name, get := range fields {
		for _, suffix := range []string{"_gte", "_lte"} {
			v := q.Get(name + suffix)
			if v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				s.badParam(w, name+suffix, "Input should be a valid datetime", "datetime_from_date_parsing", v)
				return
			}
			filters = append(filters, timeFilter{name: name, get: get, gte: suffix == "_gte", at: t})
		}
	}
	states := q["state"]
	if s.v2() {
		for _, st := range states {
			if !slices.Contains([]string{"queued", "running", "success", "failed"}, st) {
				s.badParam(w, "state", "Invalid value for state. Valid values are queued, running, success, failed", "value_error", st)
				return
			}
		}
	}
	orders := q["order_by"]
	if len(orders) > 1 && !s.v2() {
		orders = orders[:1]
	}
	for _, ob := range orders {
		if !slices.Contains(runOrderFields[s.cfg.APIVersion], strings.TrimPrefix(ob, "-")) {
			s.writeError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("Ordering with '%s' is disallowed or the attribute does not exist on the model", strings.TrimPrefix(ob, "-")))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var dags []*dag
	if dagID == "~" {
		for _, id := range s.order {
			dags = append(dags, s.dags[id])
		}
	} else if d, ok := s.dags[dagID]; ok {
		dags = []*dag{d}
	} else if s.v2() {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("The Dag with ID: `%s` was not found", dagID)})
		return
	}
	// v1 does not check that the DAG exists: an unknown one has no runs.
	var sel []*dagRun
	for _, d := range dags {
	runs:
		for _, run := range d.runs {
			if len(states) > 0 && !slices.Contains(states, run.state) {
				continue
			}
			for _, f := range filters {
				t := f.get(run)
				if t == nil || (f.gte && t.Before(f.at)) || (!f.gte && t.After(f.at)) {
					continue runs
				}
			}
			sel = append(sel, run)
		}
	}
	sortRuns(sel, orders, logicalName)
	out := make([]any, 0, limit)
	for _, run := range window(sel, limit, offset) {
		out = append(out, s.renderRun(s.dagOf(run), run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dag_runs": out, "total_entries": len(sel)})
}

// dagOf finds a run's DAG (runs do not point back, to keep the model a tree).
func (s *Server) dagOf(run *dagRun) *dag {
	for _, d := range s.dags {
		if slices.Contains(d.runs, run) {
			return d
		}
	}
	return nil
}

// sortRuns orders as Airflow does: by the given fields, then by the primary key.
func sortRuns(runs []*dagRun, orders []string, logicalName string) {
	cmpTime := func(a, b *time.Time) int {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return 1 // NULLS LAST, as PostgreSQL sorts ascending
		case b == nil:
			return -1
		}
		return a.Compare(*b)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		for _, ob := range orders {
			desc, f := strings.HasPrefix(ob, "-"), strings.TrimPrefix(ob, "-")
			var c int
			switch f {
			case "updated_at":
				c = a.updatedAt.Compare(b.updatedAt)
			case logicalName:
				c = cmpTime(a.logical, b.logical)
			case "run_after":
				c = a.runAfter.Compare(b.runAfter)
			case "start_date":
				c = cmpTime(a.start, b.start)
			case "end_date":
				c = cmpTime(a.end, b.end)
			case "state":
				c = strings.Compare(a.state, b.state)
			case "dag_run_id", "run_id":
				c = strings.Compare(a.runID, b.runID)
			case "id":
				c = a.pk - b.pk
			}
			if desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return a.pk < b.pk
	})
}

func (s *Server) renderRun(d *dag, r *dagRun) map[string]any {
	var note any
	if r.note != nil {
		note = *r.note
	}
	var dataStart, dataEnd *time.Time
	if r.logical != nil {
		dataStart, dataEnd = r.logical, r.logical
		if d.interval > 0 {
			dataEnd = timep(r.logical.Add(d.interval))
		}
	}
	m := map[string]any{
		"dag_run_id": r.runID, "dag_id": d.id, "logical_date": s.ts(r.logical), "start_date": s.ts(r.start),
		"end_date": s.ts(r.end), "data_interval_start": s.ts(dataStart), "data_interval_end": s.ts(dataEnd),
		"last_scheduling_decision": s.ts(r.end), "run_type": r.runType, "state": r.state, "conf": r.conf, "note": note,
	}
	if !s.v2() {
		m["execution_date"] = s.ts(r.logical)
		m["external_trigger"] = r.runType == "manual"
		if r.runType == "asset_triggered" {
			m["run_type"] = "dataset_triggered"
		}
		return m
	}
	var duration any
	if r.start != nil && r.end != nil {
		duration = r.end.Sub(*r.start).Seconds()
	}
	m["queued_at"] = s.ts(&r.queuedAt)
	m["run_after"] = s.ts(&r.runAfter)
	m["duration"] = duration
	m["triggered_by"] = r.triggeredBy
	m["triggering_user_name"] = nil
	if r.triggeredBy == "rest_api" || r.triggeredBy == "ui" {
		m["triggering_user_name"] = s.cfg.Username
	}
	m["dag_versions"] = []any{s.renderDAGVersion(d)}
	m["bundle_version"] = nil
	m["dag_display_name"] = d.id
	m["partition_key"] = nil
	return m
}

func (s *Server) renderDAGVersion(d *dag) map[string]any {
	return map[string]any{
		"id": d.versionID, "version_number": 1, "dag_id": d.id, "bundle_name": "dags-folder", "bundle_version": nil,
		"created_at": s.ts(&d.created), "dag_display_name": d.id, "bundle_url": nil,
	}
}

func (s *Server) runNotFound(w http.ResponseWriter, dagID, runID string) {
	if s.v2() {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("The DagRun with dag_id: `%s` and run_id: `%s` was not found", dagID, runID)})
		return
	}
	s.writeError(w, http.StatusNotFound, "DAGRun not found", fmt.Sprintf("DAGRun with DAG ID: '%s' and DagRun ID: '%s' not found", dagID, runID))
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	dagID, runID := r.PathValue("dag_id"), r.PathValue("dag_run_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.findRun(dagID, runID)
	if run == nil {
		s.runNotFound(w, dagID, runID)
		return
	}
	writeJSON(w, http.StatusOK, s.renderRun(s.dags[dagID], run))
}

// handleTIs lists a run's task instances. v1 has no ORDER BY (the fake keeps creation order,
// as an unchanged table usually comes back); v2 orders by map_index, then id.
func (s *Server) handleTIs(w http.ResponseWriter, r *http.Request) {
	dagID, runID := r.PathValue("dag_id"), r.PathValue("dag_run_id")
	q := r.URL.Query()
	limit, offset, ok := s.page(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.findRun(dagID, runID)
	if run == nil {
		if s.v2() {
			s.runNotFound(w, dagID, runID)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"task_instances": []any{}, "total_entries": 0})
		return
	}
	d := s.dags[dagID]
	tis := append([]*taskInstance(nil), run.tis...)
	if s.v2() {
		sort.SliceStable(tis, func(i, j int) bool {
			if tis[i].mapIndex != tis[j].mapIndex {
				return tis[i].mapIndex < tis[j].mapIndex
			}
			return tis[i].uuid < tis[j].uuid
		})
	}
	out := make([]any, 0, limit)
	for _, ti := range window(tis, limit, offset) {
		out = append(out, s.renderTI(d, run, ti))
	}
	writeJSON(w, http.StatusOK, map[string]any{"task_instances": out, "total_entries": len(tis)})
}

func (s *Server) renderTI(d *dag, r *dagRun, ti *taskInstance) map[string]any {
	var state, duration, pid, rendered any
	if ti.state != nil {
		state = *ti.state
	}
	if ti.start != nil && ti.end != nil {
		duration = ti.end.Sub(*ti.start).Seconds()
	}
	if ti.pid != nil {
		pid = *ti.pid
	}
	if ti.mapIndex >= 0 {
		rendered = fmt.Sprintf("item-%d", ti.mapIndex)
	}
	m := map[string]any{
		"task_id": ti.taskID, "task_display_name": ti.taskID, "dag_id": d.id, "dag_run_id": r.runID,
		"start_date": s.ts(ti.start), "end_date": s.ts(ti.end), "duration": duration, "state": state,
		"try_number": ti.try, "map_index": ti.mapIndex, "max_tries": ti.maxTries, "hostname": ti.hostname,
		"unixname": "airflow", "pool": "default_pool", "pool_slots": 1, "queue": "default", "priority_weight": 1,
		"operator": ti.operator, "queued_when": s.ts(ti.queued), "pid": pid, "executor": nil, "executor_config": "{}",
		"rendered_map_index": rendered, "rendered_fields": map[string]any{}, "trigger": nil, "triggerer_job": nil, "note": nil,
	}
	if !s.v2() {
		logical := r.logical
		if logical == nil {
			logical = &r.runAfter
		}
		m["execution_date"] = s.ts(logical)
		m["sla_miss"] = nil
		return m
	}
	m["id"] = ti.uuid
	m["logical_date"] = s.ts(r.logical)
	m["run_after"] = s.ts(&r.runAfter)
	m["dag_display_name"] = d.id
	m["operator_name"] = ti.operator
	m["scheduled_when"] = s.ts(ti.queued)
	m["dag_version"] = s.renderDAGVersion(d)
	return m
}

// runIDPattern is Airflow's default [scheduler] allowed_run_id_pattern.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.~:+-]+$`)

// handleTrigger is POST dagRuns, with each version's body rules and answers.
func (s *Server) handleTrigger(w http.ResponseWriter, r *http.Request) {
	dagID := r.PathValue("dag_id")
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&raw); err != nil || raw == nil {
		if s.v2() {
			writeJSON(w, http.StatusUnprocessableEntity, validationErrors(verr([]any{"body"}, "Input should be a valid dictionary or object to extract fields from", "model_attributes_type", nil)))
		} else {
			s.writeError(w, http.StatusBadRequest, "Bad Request", "Request body must be a JSON object")
		}
		return
	}
	body, problems := s.parseTrigger(raw)
	if len(problems) > 0 {
		if s.v2() {
			writeJSON(w, http.StatusUnprocessableEntity, validationErrors(problems...))
		} else {
			parts := make([]string, 0, len(problems))
			for _, p := range problems {
				parts = append(parts, fmt.Sprintf("'%v': ['%s']", p["loc"].([]any)[1], p["msg"]))
			}
			sort.Strings(parts)
			s.writeError(w, http.StatusBadRequest, "Bad Request", "{"+strings.Join(parts, ", ")+"}")
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dags[dagID]
	if !ok || d.stale {
		if s.v2() {
			writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("DAG with dag_id: '%s' not found", dagID)})
		} else {
			s.writeError(w, http.StatusNotFound, "DAG not found", fmt.Sprintf("DAG with dag_id: '%s' not found", dagID))
		}
		return
	}
	if d.importErrs {
		s.writeError(w, http.StatusBadRequest, "DAG cannot be triggered", fmt.Sprintf("DAG with dag_id: '%s' has import errors and cannot be triggered", dagID))
		return
	}
	now := s.now()
	logical := body.logical
	if !s.v2() && logical == nil {
		logical = timep(now)
	}
	runAfter := now
	if body.runAfter != nil {
		runAfter = *body.runAfter
	}
	runID := body.runID
	if runID == "" {
		base := runAfter
		if logical != nil {
			base = *logical
		}
		runID = "manual__" + isoformat(base)
	} else if !runIDPattern.MatchString(runID) {
		s.writeError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("The run_id provided '%s' does not match regex pattern '%s' or '%s'", runID, runIDPattern, runIDPattern))
		return
	} else if s.v2() && (strings.HasPrefix(runID, "scheduled__") || strings.HasPrefix(runID, "backfill__") || strings.HasPrefix(runID, "asset_triggered__")) {
		s.writeError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("The run_id '%s' uses a prefix reserved for other run types", runID))
		return
	}
	for _, existing := range d.runs {
		dupID := existing.runID == runID
		dupDate := logical != nil && existing.logical != nil && existing.logical.Equal(*logical)
		if !dupID && !dupDate {
			continue
		}
		if s.v2() {
			writeJSON(w, http.StatusConflict, map[string]any{"detail": map[string]any{
				"reason": "Unique constraint violation", "statement": "hidden", "orig_error": "hidden",
				"message": "Serious error when handling your request. Check logs for more details - you will find it in api server when you look for ID " + s.uuid(),
			}})
		} else if dupID {
			s.writeError(w, http.StatusConflict, "Conflict", fmt.Sprintf("DAGRun with DAG ID: '%s' and DAGRun ID: '%s' already exists", dagID, runID))
		} else {
			s.writeError(w, http.StatusConflict, "Conflict", fmt.Sprintf("DAGRun with DAG ID: '%s' and DAGRun logical date: '%s' already exists", dagID, isoformat(*logical)))
		}
		return
	}
	// A paused DAG accepts the run; it stays queued until the DAG is unpaused (Step skips
	// paused DAGs).
	s.nextRunPK++
	run := &dagRun{pk: s.nextRunPK, runID: runID, logical: logical, runAfter: runAfter, queuedAt: now, runType: "manual", conf: body.conf, note: body.note, updatedAt: now}
	if logical != nil && body.runAfter == nil {
		run.runAfter = *logical
	}
	run.triggeredBy = "rest_api"
	if r.Header.Get("Referer") != "" {
		run.triggeredBy = "ui"
	}
	for _, td := range d.tasks {
		idx := []int{-1}
		if td.mapped > 0 {
			idx = idx[:0]
			for m := range td.mapped {
				idx = append(idx, m)
			}
		}
		for _, m := range idx {
			run.tis = append(run.tis, &taskInstance{taskID: td.id, operator: td.operator, mapIndex: m, maxTries: 2, uuid: s.uuid(), updatedAt: now})
		}
	}
	d.runs = append(d.runs, run)
	s.setRunState(run, "queued", now)
	writeJSON(w, http.StatusOK, s.renderRun(d, run))
}

type triggerBody struct {
	runID    string
	logical  *time.Time
	runAfter *time.Time
	conf     map[string]any
	note     *string
}

// parseTrigger validates a trigger body. v2's TriggerDAGRunPostBody forbids unknown keys and
// requires logical_date (null allowed); v1's DAGRun schema refuses unknown and read-only
// fields. Naive datetimes are refused by both.
func (s *Server) parseTrigger(raw map[string]json.RawMessage) (triggerBody, []map[string]any) {
	var b triggerBody
	var problems []map[string]any
	add := func(key, msg, typ string, input json.RawMessage) {
		var in any
		_ = json.Unmarshal(input, &in)
		problems = append(problems, verr([]any{"body", key}, msg, typ, in))
	}
	allowed := []string{"dag_run_id", "logical_date", "conf", "note", "data_interval_start", "data_interval_end"}
	if s.v2() {
		allowed = append(allowed, "run_after", "partition_key")
	} else {
		allowed = append(allowed, "execution_date")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			if s.v2() {
				add(k, "Extra inputs are not permitted", "extra_forbidden", raw[k])
			} else {
				add(k, "Unknown field.", "unknown", raw[k])
			}
		}
	}
	if _, ok := raw["logical_date"]; !ok && s.v2() {
		problems = append(problems, verr([]any{"body", "logical_date"}, "Field required", "missing", nil))
	}
	parseTime := func(key string) *time.Time {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return nil
		}
		var str string
		if json.Unmarshal(v, &str) != nil {
			add(key, "Input should be a valid datetime", "datetime_type", v)
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			if _, nerr := time.Parse("2006-01-02T15:04:05.999999999", str); nerr == nil {
				if s.v2() {
					add(key, "Input should have timezone info", "timezone_aware", v)
				} else {
					add(key, "Naive datetime is disallowed", "naive", v)
				}
				return nil
			}
			add(key, "Input should be a valid datetime", "datetime_from_date_parsing", v)
			return nil
		}
		t = t.UTC()
		return &t
	}
	b.logical = parseTime("logical_date")
	if !s.v2() {
		if exec := parseTime("execution_date"); exec != nil {
			if b.logical != nil && !b.logical.Equal(*exec) {
				add("execution_date", "logical_date conflicts with execution_date", "value_error", raw["execution_date"])
			}
			b.logical = exec
		}
	} else {
		b.runAfter = parseTime("run_after")
	}
	dataStart, dataEnd := parseTime("data_interval_start"), parseTime("data_interval_end")
	if (dataStart == nil) != (dataEnd == nil) {
		add("data_interval_end", "data_interval_start and data_interval_end must be given together", "value_error", raw["data_interval_end"])
	}
	if v, ok := raw["dag_run_id"]; ok && string(v) != "null" {
		if json.Unmarshal(v, &b.runID) != nil {
			add("dag_run_id", "Input should be a valid string", "string_type", v)
		}
	}
	b.conf = map[string]any{}
	if v, ok := raw["conf"]; ok && string(v) != "null" {
		dec := json.NewDecoder(bytes.NewReader(v))
		var conf map[string]any
		if dec.Decode(&conf) != nil || conf == nil {
			add("conf", "Input should be a valid dictionary", "dict_type", v)
		} else {
			b.conf = conf
		}
	}
	if v, ok := raw["note"]; ok && string(v) != "null" {
		var note string
		if json.Unmarshal(v, &note) != nil {
			add("note", "Input should be a valid string", "string_type", v)
		} else {
			b.note = &note
		}
	}
	return b, problems
}
