package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/run"
)

// activeRunsFilter and activeRunsSort are answered by the index on status, execution_date
// and _id: one index range per status, merged in order.
var (
	// Runs mirrored from a provider carry provider; their provider advances them, so
	// executors leave them out.
	activeRunsFilter = bson.M{"status": bson.M{"$in": bson.A{run.StatusInitial, run.StatusRunning}}, "provider": bson.M{"$in": bson.A{nil, ""}}}
	activeRunsSort   = bson.D{{Key: "execution_date", Value: 1}, {Key: "_id", Value: 1}}
)

// ActiveRuns returns up to limit native runs whose status is initial or running, in every
// space, oldest execution date first; limit ≤ 0 returns them all.
func (s *Store) ActiveRuns(ctx context.Context, limit int) ([]run.PipelineRun, error) {
	opts := options.Find().SetSort(activeRunsSort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	return findAll[run.PipelineRun](ctx, s.db.Collection(colRuns), activeRunsFilter, opts, "active runs")
}
