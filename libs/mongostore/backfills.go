package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/backfill"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

const colBackfills = "backfills"

// CreateBackfill inserts b, whose ID the caller allocated.
func (s *Store) CreateBackfill(ctx context.Context, b *backfill.Backfill) error {
	_, err := s.db.Collection(colBackfills).InsertOne(ctx, b)
	return mapErr(err, fmt.Sprintf("create backfill %d", b.ID))
}

// GetBackfill returns the backfill id, in whichever space it is.
func (s *Store) GetBackfill(ctx context.Context, id int64) (*backfill.Backfill, error) {
	var b backfill.Backfill
	if err := s.db.Collection(colBackfills).FindOne(ctx, bson.M{"_id": id}).Decode(&b); err != nil {
		return nil, mapErr(err, fmt.Sprintf("get backfill %d", id))
	}
	return &b, nil
}

// ListBackfills returns a page of backfills, newest first, and their total count.
func (s *Store) ListBackfills(ctx context.Context, f store.BackfillFilter, pg store.Page) ([]backfill.Backfill, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.PipelineUUID != "" {
		filter["pipeline_uuid"] = f.PipelineUUID
	}
	return findPage[backfill.Backfill](ctx, s.db.Collection(colBackfills), filter,
		bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, pg, "backfills")
}

// UpdateBackfill applies fn to the stored backfill and writes the result if fn returns nil.
func (s *Store) UpdateBackfill(ctx context.Context, id int64, fn func(*backfill.Backfill) error) (*backfill.Backfill, error) {
	return update(ctx, s.locks, s.db.Collection(colBackfills), id, fmt.Sprintf("update backfill %d", id),
		func(b *backfill.Backfill) *int64 { return &b.Version },
		func(b *backfill.Backfill, now time.Time) { b.UpdatedAt = now },
		fn)
}

// DeleteBackfill removes the backfill id. Its runs stay, with their backfill id.
func (s *Store) DeleteBackfill(ctx context.Context, id int64) error {
	res, err := s.db.Collection(colBackfills).DeleteOne(ctx, bson.M{"_id": id})
	if err == nil && res.DeletedCount == 0 {
		err = errNoDocuments
	}
	return mapErr(err, fmt.Sprintf("delete backfill %d", id))
}

// runStatuses are the statuses a pipeline run can have.
var runStatuses = []run.Status{run.StatusInitial, run.StatusRunning, run.StatusCompleted, run.StatusFailed, run.StatusCancelled}

// BackfillRunCounts returns how many runs of backfill id are in each status; statuses
// without runs are absent. One count per status over the (backfill_id, status) index: each is
// an index range, and FerretDB serves counts where its aggregation support varies.
func (s *Store) BackfillRunCounts(ctx context.Context, id int64) (map[run.Status]int64, error) {
	out := map[run.Status]int64{}
	c := s.db.Collection(colRuns)
	for _, st := range runStatuses {
		n, err := c.CountDocuments(ctx, bson.M{"backfill_id": id, "status": st})
		if err != nil {
			return nil, mapErr(err, fmt.Sprintf("count %s runs of backfill %d", st, id))
		}
		if n > 0 {
			out[st] = n
		}
	}
	return out, nil
}
