package e2e_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/runyard/runyard/libs/event"
)

// BenchmarkTriggerToCompleted measures one client triggering a 3-block noop pipeline (two
// parallel branches after a root) and waiting for the run's completion event, one run at a
// time, on the whole system in one process (embedded NATS and store).
func BenchmarkTriggerToCompleted(b *testing.B) {
	e := start(b, nil)
	id, token := e.pipelineWithSchedule("bench", block("root", noop), block("left", noop, "root"), block("right", noop, "root"))
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	completed := make(chan int64, 16)
	sub, err := nc.Subscribe("runyard.evt.default.run.bench.*.completed", func(m *nats.Msg) {
		var ev event.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.PipelineRun != nil {
			completed <- ev.PipelineRun.ID
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	path := fmt.Sprintf("/api/pipeline_schedules/%d/pipeline_runs/%s", id, token)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		r := e.call("POST", path, nil, noAuth...)
		if r.Status != 200 {
			b.Fatalf("trigger: %d %s", r.Status, r.Raw)
		}
		runID := num(obj(r.Body, "pipeline_run"), "id")
		for got := int64(0); got != runID; {
			select {
			case got = <-completed:
			case <-time.After(30 * time.Second):
				b.Fatalf("run %d not completed within 30s", runID)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
