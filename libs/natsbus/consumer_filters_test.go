package natsbus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/testenv"
)

// TestExecutorConsumerGainsBackfillCommands starts the executors' command consumer as a build
// before backfills made it (run commands only), then as this build does: the durable consumer
// is updated in place and delivers backfill commands too, so upgraded executors need no manual
// step.
func TestExecutorConsumerGainsBackfillCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := natsbus.Connect(ctx, testenv.NATS(t), "filters", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := bus.Setup(ctx, natsbus.StreamOptions{EventMaxAge: time.Hour, EventMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	cfg := natsbus.ConsumerConfig{Stream: natsbus.StreamCommands, Durable: natsbus.DurableExecutorCommands, Filters: []string{natsbus.SubjectRunCommands}}
	old, err := bus.Consume(ctx, cfg, func(context.Context, natsbus.Delivery) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	old.Stop(ctx)

	got := make(chan string, 2)
	cfg.Filters = append(cfg.Filters, natsbus.SubjectBackfillCmds)
	c, err := bus.Consume(ctx, cfg, func(_ context.Context, d natsbus.Delivery) error {
		var env command.Envelope
		if err := json.Unmarshal(d.Data, &env); err != nil {
			return natsbus.Permanent(err)
		}
		got <- env.Type
		return nil
	})
	if err != nil {
		t.Fatalf("updating the consumer's filters: %v", err)
	}
	defer c.Stop(ctx)
	for _, typ := range []string{command.TypeStartBackfill, command.TypeCancelRun} {
		env, err := command.New(command.NewID(), typ, "default", "test", map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bus.PublishCommand(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case typ := <-got:
			seen[typ] = true
		case <-ctx.Done():
			t.Fatalf("delivered %v, want a backfill and a run command", seen)
		}
	}
}
