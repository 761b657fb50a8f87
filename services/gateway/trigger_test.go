package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
)

// The trigger's answer decodes the result without the parts it does not show, and presents
// the run exactly as from the full result.
func TestAnsweredResultPresentsLikeTheFullResult(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	full := command.RunResult{
		Run: run.PipelineRun{
			ID: 7, Space: "default", PipelineUUID: "p", PipelineScheduleID: 3, Status: run.StatusRunning,
			ExecutionDate: now, StartedAt: &now, CreatedAt: now, UpdatedAt: now, RunType: run.TypeAPI,
			Variables: map[string]any{"a": "b"}, Metrics: map[string]any{"m": 1.0},
			Blocks:           []pipeline.Block{{UUID: "root"}, {UUID: "left", UpstreamBlocks: []string{"root"}}},
			RuntimeVariables: map[string]any{"x": "y"},
			Settings:         run.Settings{AllowBlocksToFail: true, Timeout: 5},
		},
		BlockRuns: []run.BlockRun{{ID: 21, PipelineRunID: 7, BlockUUID: "root", Status: run.StatusQueued, CreatedAt: now, UpdatedAt: now}},
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var got answeredResult
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Run.PipelineRun.Blocks != nil || got.Run.PipelineRun.RuntimeVariables != nil || got.Run.PipelineRun.Settings.Timeout != 0 {
		t.Fatalf("skipped parts were decoded: %+v", got.Run.PipelineRun)
	}
	want := presentRun(&full.Run, full.BlockRuns, nil)
	if have := presentRun(&got.Run.PipelineRun, got.BlockRuns, nil); !reflect.DeepEqual(have, want) {
		t.Fatalf("presented\n%+v\nwant\n%+v", have, want)
	}
}
