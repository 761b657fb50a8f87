package gateway

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/logging"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/pipeline"
)

// pipelinePublishAttempts bounds the tries of one pipeline.updated publish. The pipeline is
// already written, so the request succeeds either way; a lost event is logged with its id.
const pipelinePublishAttempts = 3

// announcePipeline publishes pipeline.updated for p as stored. The event id is the pipeline
// and its version, so a retried publish is dropped by the stream's duplicate window.
func (g *Gateway) announcePipeline(ctx context.Context, p *pipeline.Pipeline) {
	ev := event.PipelineUpdated(p)
	if err := natsbus.PublishEventRetrying(ctx, g.bus, natsbus.PipelineUpdatedSubject(p.Space, p.UUID), ev, pipelinePublishAttempts, 2*time.Second); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("event_id", ev.ID).Str(logging.KeySpace, p.Space).Msg("pipeline.updated not published")
	}
}
