package command_test

import (
	"encoding/json"
	"testing"

	"github.com/runyard/runyard/libs/command"
)

// BenchmarkTriggerRoundTrip encodes a trigger command as the gateway does and decodes it as
// the executor does.
func BenchmarkTriggerRoundTrip(b *testing.B) {
	payload := command.TriggerRun{PipelineUUID: "daily_sales", ScheduleID: 42,
		Variables: map[string]any{"day": "2026-11-23"}, EventVariables: map[string]any{"env": "dev", "n": 1}}
	b.ReportAllocs()
	for b.Loop() {
		env, err := command.New(command.NewID(), command.TypeTriggerRun, "default", "schedule-token", payload)
		if err != nil {
			b.Fatal(err)
		}
		data, err := json.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		var got command.Envelope
		if err := json.Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
		var p command.TriggerRun
		if err := json.Unmarshal(got.Payload, &p); err != nil {
			b.Fatal(err)
		}
	}
}
