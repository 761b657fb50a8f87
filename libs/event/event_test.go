package event_test

import (
	"testing"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
)

func TestRunSequenceIsUniqueAndRisesPerResource(t *testing.T) {
	t.Parallel()
	r := &run.PipelineRun{ID: 7, Blocks: []pipeline.Block{{UUID: "a"}, {UUID: "b"}, {UUID: "c"}}}
	resources := []string{"", "a", "b", "c", "not-in-dag"}
	seen := map[int64]string{}
	for _, res := range resources {
		prev := int64(-1)
		for v := int64(0); v < 50; v++ {
			s := event.RunSequence(r, v, res)
			if s <= prev {
				t.Fatalf("%q: version %d has sequence %d after %d", res, v, s, prev)
			}
			prev = s
			if res == "not-in-dag" {
				continue // block runs outside the DAG share one position
			}
			if other, dup := seen[s]; dup {
				t.Fatalf("sequence %d of %q v%d is also %s's", s, res, v, other)
			}
			seen[s] = res
		}
	}
}

func TestRunEventsCarryIdentityAndSequence(t *testing.T) {
	t.Parallel()
	r := &run.PipelineRun{ID: 7, Space: "default", Version: 3, Blocks: []pipeline.Block{{UUID: "a"}}}
	br := &run.BlockRun{ID: 70, Space: "default", PipelineRunID: 7, BlockUUID: "a", Version: 2}
	tests := []struct {
		ev     event.Event
		typ    string
		id     string
		seq    int64
		hasRun bool
	}{
		{event.PipelineRunStatusChanged(r), event.TypePipelineRunStatusChanged, "pipeline_run-7-v3", 9, true},
		{event.BlockRunStatusChanged(r, br), event.TypeBlockRunStatusChanged, "block_run-70-v2", 7, false},
		{event.PipelineRunSLAMissed(r), event.TypePipelineRunSLAMissed, "pipeline_run-7-sla_missed", 9, true},
	}
	for _, tt := range tests {
		ev := tt.ev
		if ev.Type != tt.typ || ev.ID != tt.id || ev.Sequence != tt.seq || ev.RunID != 7 || ev.Space != "default" ||
			ev.Version != event.Version || ev.OccurredAt.IsZero() || (ev.PipelineRun != nil) != tt.hasRun || !event.Known(ev.Type) {
			t.Errorf("%s: %+v", tt.typ, ev)
		}
	}
	if event.Known("pipeline_run.created") {
		t.Error("an unknown type is known")
	}
}
