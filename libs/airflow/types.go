package airflow

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DAG run states, the same in both versions.
const (
	RunQueued  = "queued"
	RunRunning = "running"
	RunSuccess = "success"
	RunFailed  = "failed"
)

// Run types. v1 says dataset_triggered where v2 says asset_triggered; the client keeps
// Airflow's word for it.
const (
	RunTypeBackfill             = "backfill"
	RunTypeScheduled            = "scheduled"
	RunTypeManual               = "manual"
	RunTypeDatasetTriggered     = "dataset_triggered"
	RunTypeAssetTriggered       = "asset_triggered"
	RunTypeAssetMaterialization = "asset_materialization"
)

// Task instance states (both versions; a task without a state yet has State "").
const (
	TaskSuccess         = "success"
	TaskRunning         = "running"
	TaskFailed          = "failed"
	TaskUpstreamFailed  = "upstream_failed"
	TaskSkipped         = "skipped"
	TaskUpForRetry      = "up_for_retry"
	TaskUpForReschedule = "up_for_reschedule"
	TaskQueued          = "queued"
	TaskScheduled       = "scheduled"
	TaskDeferred        = "deferred"
	TaskRemoved         = "removed"
	TaskRestarting      = "restarting"
)

// DAG is a DAG of either version.
type DAG struct {
	DAGID       string
	DisplayName string
	Description string
	IsPaused    bool
	// IsActive is v1's is_active, or the inverse of v2's is_stale: false when the DAG's file
	// is gone.
	IsActive bool
	Owners   []string
	Tags     []string
	// Schedule is v2's timetable_summary, or v1's schedule_interval rendered as text (a cron
	// expression's value, a timedelta as "1 day, 0:00:00"); empty when unscheduled.
	Schedule             string
	TimetableDescription string
	Fileloc              string
	HasImportErrors      bool
	LastParsedTime       *time.Time
	// NextDagRun is v1's next_dagrun or v2's next_dagrun_logical_date.
	NextDagRun    *time.Time
	MaxActiveRuns *int
	// Raw is the record as Airflow sent it.
	Raw map[string]any
}

// DAGRun is a DAG run of either version.
type DAGRun struct {
	DAGID string
	// RunID is the dag_run_id; (DAGID, RunID) is the run's key.
	RunID string
	// LogicalDate is v1's logical_date (alias execution_date) or v2's logical_date, which
	// may be null on Airflow 3.
	LogicalDate *time.Time
	// RunAfter is v2's run_after; on v1 the logical date, which plays its part there.
	RunAfter          *time.Time
	QueuedAt          *time.Time
	StartDate         *time.Time
	EndDate           *time.Time
	DataIntervalStart *time.Time
	DataIntervalEnd   *time.Time
	State             string
	RunType           string
	// ExternalTrigger is v1's; TriggeredBy v2's (rest_api, ui, timetable, ...).
	ExternalTrigger bool
	TriggeredBy     string
	Conf            map[string]any
	Note            string
}

// AnchorDate is the date a run is filed under: its logical date, else run_after (a v2 run
// triggered with a null logical date), else when it was queued or started.
func (r *DAGRun) AnchorDate() time.Time {
	for _, t := range []*time.Time{r.LogicalDate, r.RunAfter, r.QueuedAt, r.StartDate} {
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// TaskInstance is a task instance of either version. Its key is (DAGID, RunID, TaskID,
// MapIndex); TryNumber is its latest try.
type TaskInstance struct {
	DAGID            string
	RunID            string
	TaskID           string
	DisplayName      string
	MapIndex         int
	RenderedMapIndex string
	TryNumber        int
	MaxTries         int
	State            string
	LogicalDate      *time.Time
	StartDate        *time.Time
	EndDate          *time.Time
	QueuedWhen       *time.Time
	Duration         *float64
	Operator         string
	Pool             string
	Queue            string
	Hostname         string
	Note             string
	// ID is v2's task instance id. Airflow regenerates it on every try: never a key.
	ID string
}

// Key identifies a task instance within its run.
func (ti *TaskInstance) Key() string { return fmt.Sprintf("%s[%d]", ti.TaskID, ti.MapIndex) }

// ---- wire formats ----

// wireTime is a nullable timestamp; v1 writes +00:00 offsets, v2 Z.
type wireTime struct{ t *time.Time }

func (w *wireTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		w.t = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("airflow: timestamp %q: %w", s, err)
	}
	t = t.UTC()
	w.t = &t
	return nil
}

type wireTag struct {
	Name string `json:"name"`
}

type wireDAG struct {
	DAGID                string    `json:"dag_id"`
	DisplayName          string    `json:"dag_display_name"`
	Description          *string   `json:"description"`
	IsPaused             *bool     `json:"is_paused"`
	IsActive             *bool     `json:"is_active"` // v1
	IsStale              *bool     `json:"is_stale"`  // v2
	Owners               []string  `json:"owners"`
	Tags                 []wireTag `json:"tags"`
	ScheduleInterval     *schedule `json:"schedule_interval"` // v1
	TimetableSummary     *string   `json:"timetable_summary"` // v2
	TimetableDescription *string   `json:"timetable_description"`
	Fileloc              string    `json:"fileloc"`
	HasImportErrors      *bool     `json:"has_import_errors"`
	LastParsedTime       wireTime  `json:"last_parsed_time"`
	NextDagRun           wireTime  `json:"next_dagrun"`              // v1
	NextDagRunLogical    wireTime  `json:"next_dagrun_logical_date"` // v2
	MaxActiveRuns        *int      `json:"max_active_runs"`
}

// schedule is v1's schedule_interval: {"__type": "CronExpression", "value": ...},
// {"__type": "TimeDelta", "days", "seconds", "microseconds"} or RelativeDelta.
type schedule struct {
	Type         string `json:"__type"`
	Value        string `json:"value"`
	Days         int64  `json:"days"`
	Seconds      int64  `json:"seconds"`
	Microseconds int64  `json:"microseconds"`
	raw          map[string]any
}

func (s *schedule) UnmarshalJSON(b []byte) error {
	type plain schedule
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	return json.Unmarshal(b, &s.raw)
}

func (s *schedule) String() string {
	if s == nil {
		return ""
	}
	switch s.Type {
	case "CronExpression":
		return s.Value
	case "TimeDelta":
		// Python's str(timedelta): "1 day, 0:00:00", "2 days, 1:30:00", "0:05:00".
		secs := s.Seconds
		out := fmt.Sprintf("%d:%02d:%02d", secs/3600, secs%3600/60, secs%60)
		if s.Microseconds != 0 {
			out += fmt.Sprintf(".%06d", s.Microseconds)
		}
		switch s.Days {
		case 0:
		case 1, -1:
			out = fmt.Sprintf("%d day, %s", s.Days, out)
		default:
			out = fmt.Sprintf("%d days, %s", s.Days, out)
		}
		return out
	}
	// RelativeDelta and future types: the non-zero fields, in a stable order.
	var parts []string
	for _, k := range []string{"years", "months", "weeks", "days", "hours", "minutes", "seconds", "microseconds", "year", "month", "day", "weekday", "hour", "minute", "second", "microsecond"} {
		if v, ok := s.raw[k]; ok && v != nil && v != 0.0 {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return s.Type + "(" + strings.Join(parts, ", ") + ")"
}

func (w *wireDAG) normalize(v APIVersion, raw map[string]any) DAG {
	d := DAG{
		DAGID: w.DAGID, DisplayName: w.DisplayName, Owners: w.Owners, Fileloc: w.Fileloc,
		LastParsedTime: w.LastParsedTime.t, MaxActiveRuns: w.MaxActiveRuns, Raw: raw, IsActive: true,
	}
	if d.DisplayName == "" {
		d.DisplayName = d.DAGID
	}
	if d.Owners == nil {
		d.Owners = []string{}
	}
	d.Tags = make([]string, 0, len(w.Tags))
	for _, t := range w.Tags {
		d.Tags = append(d.Tags, t.Name)
	}
	if w.Description != nil {
		d.Description = *w.Description
	}
	if w.IsPaused != nil {
		d.IsPaused = *w.IsPaused
	}
	if w.HasImportErrors != nil {
		d.HasImportErrors = *w.HasImportErrors
	}
	if w.TimetableDescription != nil {
		d.TimetableDescription = *w.TimetableDescription
	}
	if v == V2 {
		if w.IsStale != nil {
			d.IsActive = !*w.IsStale
		}
		if w.TimetableSummary != nil {
			d.Schedule = *w.TimetableSummary
		}
		d.NextDagRun = w.NextDagRunLogical.t
	} else {
		if w.IsActive != nil {
			d.IsActive = *w.IsActive
		}
		d.Schedule = w.ScheduleInterval.String()
		d.NextDagRun = w.NextDagRun.t
	}
	return d
}

type wireRun struct {
	DAGRunID          string         `json:"dag_run_id"`
	DAGID             string         `json:"dag_id"`
	LogicalDate       wireTime       `json:"logical_date"`
	ExecutionDate     wireTime       `json:"execution_date"` // v1
	RunAfter          wireTime       `json:"run_after"`      // v2
	QueuedAt          wireTime       `json:"queued_at"`      // v2
	StartDate         wireTime       `json:"start_date"`
	EndDate           wireTime       `json:"end_date"`
	DataIntervalStart wireTime       `json:"data_interval_start"`
	DataIntervalEnd   wireTime       `json:"data_interval_end"`
	State             *string        `json:"state"`
	RunType           string         `json:"run_type"`
	ExternalTrigger   *bool          `json:"external_trigger"` // v1
	TriggeredBy       *string        `json:"triggered_by"`     // v2
	Conf              map[string]any `json:"conf"`
	Note              *string        `json:"note"`
}

func (w *wireRun) normalize() DAGRun {
	r := DAGRun{
		DAGID: w.DAGID, RunID: w.DAGRunID, LogicalDate: w.LogicalDate.t, RunAfter: w.RunAfter.t, QueuedAt: w.QueuedAt.t,
		StartDate: w.StartDate.t, EndDate: w.EndDate.t, DataIntervalStart: w.DataIntervalStart.t, DataIntervalEnd: w.DataIntervalEnd.t,
		RunType: w.RunType, Conf: w.Conf,
	}
	if r.LogicalDate == nil {
		r.LogicalDate = w.ExecutionDate.t
	}
	if r.RunAfter == nil {
		r.RunAfter = r.LogicalDate
	}
	if w.State != nil {
		r.State = *w.State
	}
	if w.ExternalTrigger != nil {
		r.ExternalTrigger = *w.ExternalTrigger
	}
	if w.TriggeredBy != nil {
		r.TriggeredBy = *w.TriggeredBy
	}
	if w.Note != nil {
		r.Note = *w.Note
	}
	if r.Conf == nil {
		r.Conf = map[string]any{}
	}
	return r
}

type wireTI struct {
	ID               string   `json:"id"` // v2
	TaskID           string   `json:"task_id"`
	DisplayName      string   `json:"task_display_name"`
	DAGID            string   `json:"dag_id"`
	DAGRunID         string   `json:"dag_run_id"`
	MapIndex         *int     `json:"map_index"`
	RenderedMapIndex *string  `json:"rendered_map_index"`
	TryNumber        int      `json:"try_number"`
	MaxTries         int      `json:"max_tries"`
	State            *string  `json:"state"`
	LogicalDate      wireTime `json:"logical_date"`   // v2
	ExecutionDate    wireTime `json:"execution_date"` // v1
	StartDate        wireTime `json:"start_date"`
	EndDate          wireTime `json:"end_date"`
	QueuedWhen       wireTime `json:"queued_when"`
	Duration         *float64 `json:"duration"`
	Operator         *string  `json:"operator"`
	Pool             string   `json:"pool"`
	Queue            *string  `json:"queue"`
	Hostname         *string  `json:"hostname"`
	Note             *string  `json:"note"`
}

func (w *wireTI) normalize() TaskInstance {
	ti := TaskInstance{
		ID: w.ID, TaskID: w.TaskID, DisplayName: w.DisplayName, DAGID: w.DAGID, RunID: w.DAGRunID, MapIndex: -1,
		TryNumber: w.TryNumber, MaxTries: w.MaxTries, LogicalDate: w.LogicalDate.t, StartDate: w.StartDate.t,
		EndDate: w.EndDate.t, QueuedWhen: w.QueuedWhen.t, Duration: w.Duration, Pool: w.Pool,
	}
	if ti.LogicalDate == nil {
		ti.LogicalDate = w.ExecutionDate.t
	}
	if w.MapIndex != nil {
		ti.MapIndex = *w.MapIndex
	}
	if ti.DisplayName == "" {
		ti.DisplayName = ti.TaskID
	}
	// v1 spells "no state yet" as null or the deprecated "none"; v2 as null.
	if w.State != nil && *w.State != "none" {
		ti.State = *w.State
	}
	for dst, src := range map[*string]*string{&ti.RenderedMapIndex: w.RenderedMapIndex, &ti.Operator: w.Operator, &ti.Queue: w.Queue, &ti.Hostname: w.Hostname, &ti.Note: w.Note} {
		if src != nil {
			*dst = *src
		}
	}
	return ti
}
