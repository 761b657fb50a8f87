package gateway

import (
	"cmp"
	"strings"
	"time"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/schedule"
)

// mageTimeLayout is how Mage renders datetimes: Python's str(datetime) of an aware UTC value.
const mageTimeLayout = "2006-01-02 15:04:05.000000-07:00"

// mageTime renders as Mage does, and as null when unset.
type mageTime struct{ t *time.Time }

func mt(t time.Time) mageTime   { return mageTime{&t} }
func mtp(t *time.Time) mageTime { return mageTime{t} }

func (m mageTime) MarshalJSON() ([]byte, error) {
	if m.t == nil || m.t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + m.t.UTC().Format(mageTimeLayout) + `"`), nil
}

// parseTime accepts Mage's datetime format (with or without fraction and offset), a plain
// date, and RFC 3339.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04",
		"2006-01-02",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

type magePipeline struct {
	UUID              string                      `json:"uuid"`
	Name              string                      `json:"name"`
	Description       string                      `json:"description"`
	Type              string                      `json:"type"`
	Variables         map[string]any              `json:"variables"`
	Blocks            []mageBlock                 `json:"blocks"`
	RetryConfig       *pipeline.RetryConfig       `json:"retry_config"`
	ConcurrencyConfig *pipeline.ConcurrencyConfig `json:"concurrency_config"`
	Tags              []string                    `json:"tags"`
	Owners            []string                    `json:"owners"`
	Provider          string                      `json:"provider"`
	CreatedAt         mageTime                    `json:"created_at"`
	UpdatedAt         mageTime                    `json:"updated_at"`
}

type mageBlock struct {
	UUID             string                `json:"uuid"`
	Name             string                `json:"name"`
	Type             string                `json:"type"`
	UpstreamBlocks   []string              `json:"upstream_blocks"`
	DownstreamBlocks []string              `json:"downstream_blocks"`
	Runner           pipeline.Runner       `json:"runner"`
	RetryConfig      *pipeline.RetryConfig `json:"retry_config"`
	Timeout          float64               `json:"timeout"`
}

func presentPipeline(p *pipeline.Pipeline) magePipeline {
	down := map[string][]string{}
	for _, b := range p.Blocks {
		for _, up := range b.UpstreamBlocks {
			down[up] = append(down[up], b.UUID)
		}
	}
	blocks := make([]mageBlock, len(p.Blocks))
	for i, b := range p.Blocks {
		ds := down[b.UUID]
		if ds == nil {
			ds = []string{}
		}
		blocks[i] = mageBlock{UUID: b.UUID, Name: b.Name, Type: b.Type, UpstreamBlocks: b.UpstreamBlocks, DownstreamBlocks: ds, Runner: b.Runner,
			RetryConfig: b.RetryConfig, Timeout: b.Timeout}
	}
	return magePipeline{UUID: p.UUID, Name: p.Name, Description: p.Description, Type: "python", Variables: p.Variables,
		Blocks: blocks, RetryConfig: p.RetryConfig, ConcurrencyConfig: p.ConcurrencyConfig,
		Tags: nonNil(p.Tags), Owners: nonNil(p.Owners), Provider: cmp.Or(p.Provider, pipeline.ProviderNative),
		CreatedAt: mt(p.CreatedAt), UpdatedAt: mt(p.UpdatedAt)}
}

type mageSchedule struct {
	ID                   int64          `json:"id"`
	Name                 string         `json:"name"`
	Description          string         `json:"description"`
	PipelineUUID         string         `json:"pipeline_uuid"`
	ScheduleType         string         `json:"schedule_type"`
	ScheduleInterval     *string        `json:"schedule_interval"`
	StartTime            mageTime       `json:"start_time"`
	Timezone             string         `json:"timezone"`
	Status               string         `json:"status"`
	Variables            map[string]any `json:"variables"`
	SLA                  *int64         `json:"sla"`
	Settings             map[string]any `json:"settings"`
	Token                string         `json:"token"`
	LastEnabledAt        mageTime       `json:"last_enabled_at"`
	NextPipelineRunDate  mageTime       `json:"next_pipeline_run_date"`
	Tags                 []string       `json:"tags"`
	EventMatchers        []any          `json:"event_matchers"`
	RepoPath             *string        `json:"repo_path"`
	GlobalDataProductUUI *string        `json:"global_data_product_uuid"`
	CreatedAt            mageTime       `json:"created_at"`
	UpdatedAt            mageTime       `json:"updated_at"`
}

func presentSchedule(s *schedule.Schedule) mageSchedule {
	out := mageSchedule{
		ID: s.ID, Name: s.Name, Description: s.Description, PipelineUUID: s.PipelineUUID, ScheduleType: s.ScheduleType,
		StartTime: mtp(s.StartTime), Timezone: s.Timezone, Status: s.Status, Variables: s.Variables, Settings: s.Settings, Token: s.Token,
		LastEnabledAt: mtp(s.LastEnabledAt), Tags: []string{}, EventMatchers: []any{},
		CreatedAt: mt(s.CreatedAt), UpdatedAt: mt(s.UpdatedAt),
	}
	if s.ScheduleInterval != "" {
		out.ScheduleInterval = &s.ScheduleInterval
	}
	if s.SLA > 0 {
		out.SLA = &s.SLA
	}
	return out
}

// magePipelineRun carries every field of Mage's pipeline run object.
type magePipelineRun struct {
	ID                      int64          `json:"id"`
	CreatedAt               mageTime       `json:"created_at"`
	UpdatedAt               mageTime       `json:"updated_at"`
	PipelineScheduleID      int64          `json:"pipeline_schedule_id"`
	PipelineScheduleName    *string        `json:"pipeline_schedule_name"`
	PipelineScheduleToken   *string        `json:"pipeline_schedule_token"`
	PipelineScheduleType    *string        `json:"pipeline_schedule_type"`
	PipelineUUID            string         `json:"pipeline_uuid"`
	ExecutionDate           mageTime       `json:"execution_date"`
	Status                  run.Status     `json:"status"`
	StartedAt               mageTime       `json:"started_at"`
	CompletedAt             mageTime       `json:"completed_at"`
	Variables               map[string]any `json:"variables"`
	PassedSLA               bool           `json:"passed_sla"`
	EventVariables          map[string]any `json:"event_variables"`
	Metrics                 map[string]any `json:"metrics"`
	BackfillID              *int64         `json:"backfill_id"`
	ExecutorType            string         `json:"executor_type"`
	RunType                 string         `json:"run_type"`
	BlockRuns               []mageBlockRun `json:"block_runs"`
	BlockRunsCount          int            `json:"block_runs_count"`
	CompletedBlockRunsCount int            `json:"completed_block_runs_count"`
}

type mageBlockRun struct {
	ID                   int64          `json:"id"`
	BlockUUID            string         `json:"block_uuid"`
	PipelineRunID        int64          `json:"pipeline_run_id"`
	PipelineScheduleID   int64          `json:"pipeline_schedule_id"`
	PipelineScheduleName *string        `json:"pipeline_schedule_name"`
	Status               run.Status     `json:"status"`
	StartedAt            mageTime       `json:"started_at"`
	CompletedAt          mageTime       `json:"completed_at"`
	CreatedAt            mageTime       `json:"created_at"`
	UpdatedAt            mageTime       `json:"updated_at"`
	Metrics              map[string]any `json:"metrics"`
}

func presentBlockRun(br *run.BlockRun, sc *schedule.Schedule) mageBlockRun {
	out := mageBlockRun{
		ID: br.ID, BlockUUID: br.BlockUUID, PipelineRunID: br.PipelineRunID, PipelineScheduleID: br.PipelineScheduleID,
		Status: br.Status, StartedAt: mtp(br.StartedAt), CompletedAt: mtp(br.CompletedAt),
		CreatedAt: mt(br.CreatedAt), UpdatedAt: mt(br.UpdatedAt), Metrics: br.Metrics,
	}
	if sc != nil {
		out.PipelineScheduleName = &sc.Name
	}
	return out
}

// presentRun renders r with its block runs; sc is r's schedule, nil if it was deleted.
func presentRun(r *run.PipelineRun, brs []run.BlockRun, sc *schedule.Schedule) magePipelineRun {
	out := magePipelineRun{
		ID: r.ID, CreatedAt: mt(r.CreatedAt), UpdatedAt: mt(r.UpdatedAt), PipelineScheduleID: r.PipelineScheduleID,
		PipelineUUID: r.PipelineUUID, ExecutionDate: mt(r.ExecutionDate), Status: r.Status,
		StartedAt: mtp(r.StartedAt), CompletedAt: mtp(r.CompletedAt), Variables: r.Variables, PassedSLA: r.PassedSLA,
		EventVariables: r.EventVariables, Metrics: r.Metrics, BackfillID: r.BackfillID, ExecutorType: r.ExecutorType, RunType: r.RunType,
		BlockRuns: make([]mageBlockRun, 0, len(brs)), BlockRunsCount: len(brs),
	}
	if sc != nil {
		out.PipelineScheduleName, out.PipelineScheduleToken, out.PipelineScheduleType = &sc.Name, &sc.Token, &sc.ScheduleType
	}
	for i := range brs {
		out.BlockRuns = append(out.BlockRuns, presentBlockRun(&brs[i], sc))
		if brs[i].Status == run.StatusCompleted {
			out.CompletedBlockRunsCount++
		}
	}
	return out
}

// listMetadata is Mage's list metadata: the total count and whether more items follow.
type listMetadata struct {
	Count int64 `json:"count"`
	Next  bool  `json:"next"`
}

// nonNil renders a missing list as [] rather than null.
func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}
