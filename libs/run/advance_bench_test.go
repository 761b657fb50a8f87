package run_test

import (
	"fmt"
	"testing"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
)

// BenchmarkAdvance plans the next step of a 50-block run (a chain of fan-outs) halfway
// through: the work every finished block costs its executor.
func BenchmarkAdvance(b *testing.B) {
	var blocks []pipeline.Block
	var brs []run.BlockRun
	for i := range 50 {
		up := []string{}
		if i > 0 {
			up = []string{fmt.Sprint("b", (i-1)/2)}
		}
		blocks = append(blocks, pipeline.Block{UUID: fmt.Sprint("b", i), UpstreamBlocks: up})
		st := run.StatusInitial
		if i < 25 {
			st = run.StatusCompleted
		}
		brs = append(brs, run.BlockRun{ID: int64(i), BlockUUID: fmt.Sprint("b", i), Status: st})
	}
	b.ReportAllocs()
	for b.Loop() {
		p := run.Advance(blocks, brs, run.Settings{})
		if len(p.Queue) == 0 {
			b.Fatal("nothing to queue")
		}
	}
}
