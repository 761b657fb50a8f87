package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

// CreateRun inserts r, whose ID the caller allocated. A run with the same command id is
// ErrDuplicate: that command already made its run.
func (s *Store) CreateRun(ctx context.Context, r *run.PipelineRun) error {
	if _, err := s.db.Collection(colRuns).InsertOne(ctx, r); err != nil {
		return mapErr(err, fmt.Sprintf("create run %d", r.ID))
	}
	return s.bumpStats(ctx, r, 1)
}

// CreateBlockRuns inserts brs. A block run whose (run, block) pair exists is skipped, so a
// retried creation completes what a crashed one began.
func (s *Store) CreateBlockRuns(ctx context.Context, brs []run.BlockRun) error {
	if len(brs) == 0 {
		return nil
	}
	docs := make([]any, len(brs))
	for i := range brs {
		docs[i] = &brs[i]
	}
	_, err := s.db.Collection(colBlockRuns).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil && !onlyDuplicates(err) {
		return mapErr(err, fmt.Sprintf("create block runs of run %d", brs[0].PipelineRunID))
	}
	return nil
}

func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// GetRun returns the run id, in whichever space it is.
func (s *Store) GetRun(ctx context.Context, id int64) (*run.PipelineRun, error) {
	var r run.PipelineRun
	if err := s.db.Collection(colRuns).FindOne(ctx, bson.M{"_id": id}).Decode(&r); err != nil {
		return nil, mapErr(err, fmt.Sprintf("get run %d", id))
	}
	return &r, nil
}

// GetRunByCommand returns the run the command commandID created.
func (s *Store) GetRunByCommand(ctx context.Context, commandID string) (*run.PipelineRun, error) {
	var r run.PipelineRun
	if err := s.db.Collection(colRuns).FindOne(ctx, bson.M{"command_id": commandID}).Decode(&r); err != nil {
		return nil, mapErr(err, "get run of command "+commandID)
	}
	return &r, nil
}

// ListRuns returns a page of runs, newest execution date first, and their total count.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter, pg store.Page) ([]run.PipelineRun, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.ScheduleID != 0 {
		filter["pipeline_schedule_id"] = f.ScheduleID
	}
	if f.PipelineUUID != "" {
		filter["pipeline_uuid"] = f.PipelineUUID
	}
	if f.Status != "" {
		filter["status"] = f.Status
	}
	if f.BackfillID != 0 {
		filter["backfill_id"] = f.BackfillID
	}
	key := runOrchestrationFilter(f, filter)
	dir := -1
	if f.OldestFirst {
		dir = 1
	}
	return findPage[run.PipelineRun](ctx, s.db.Collection(colRuns), filter,
		bson.D{{Key: key, Value: dir}, {Key: "_id", Value: dir}}, pg, "runs")
}

// UpdateRun applies fn to the stored run and writes the result if fn returns nil.
func (s *Store) UpdateRun(ctx context.Context, id int64, fn func(*run.PipelineRun) error) (*run.PipelineRun, error) {
	var before run.PipelineRun
	r, err := update(ctx, s.locks, s.db.Collection(colRuns), id, fmt.Sprintf("update run %d", id),
		func(r *run.PipelineRun) *int64 { return &r.Version },
		func(r *run.PipelineRun, now time.Time) { r.UpdatedAt = now },
		func(r *run.PipelineRun) error { before = *r; return fn(r) })
	if err != nil || (before.Status == r.Status && before.ExecutionDate.Equal(r.ExecutionDate)) {
		return r, err
	}
	if err := s.bumpStats(ctx, &before, -1); err != nil {
		return r, err
	}
	return r, s.bumpStats(ctx, r, 1)
}

// blockRunProjection leaves the (possibly large) log out of list reads.
var blockRunProjection = bson.M{"log": 0}

// ListBlockRuns returns a page of block runs, newest first, and their total count.
func (s *Store) ListBlockRuns(ctx context.Context, f store.BlockRunFilter, pg store.Page) ([]run.BlockRun, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.PipelineRunID != 0 {
		filter["pipeline_run_id"] = f.PipelineRunID
	}
	if f.PipelineUUID != "" {
		filter["pipeline_uuid"] = f.PipelineUUID
	}
	c := s.db.Collection(colBlockRuns)
	total, err := c.CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, mapErr(err, "count block runs")
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetSkip(int64(pg.Offset)).SetProjection(blockRunProjection)
	if pg.Limit > 0 {
		opts.SetLimit(int64(pg.Limit))
	}
	brs, err := findAll[run.BlockRun](ctx, c, filter, opts, "block runs")
	return brs, total, err
}

// BlockRunsOf returns the block runs of the given runs, by run and then oldest first, without
// logs.
func (s *Store) BlockRunsOf(ctx context.Context, runIDs ...int64) ([]run.BlockRun, error) {
	return findAll[run.BlockRun](ctx, s.db.Collection(colBlockRuns), bson.M{"pipeline_run_id": bson.M{"$in": runIDs}},
		options.Find().SetSort(bson.D{{Key: "pipeline_run_id", Value: 1}, {Key: "_id", Value: 1}}).SetProjection(blockRunProjection), "block runs")
}

// GetBlockRun returns the block run id with its log.
func (s *Store) GetBlockRun(ctx context.Context, id int64) (*run.BlockRun, error) {
	var br run.BlockRun
	if err := s.db.Collection(colBlockRuns).FindOne(ctx, bson.M{"_id": id}).Decode(&br); err != nil {
		return nil, mapErr(err, fmt.Sprintf("get block run %d", id))
	}
	return &br, nil
}

// UpdateBlockRun applies fn to the stored block run and writes the result if fn returns nil.
func (s *Store) UpdateBlockRun(ctx context.Context, id int64, fn func(*run.BlockRun) error) (*run.BlockRun, error) {
	return update(ctx, s.locks, s.db.Collection(colBlockRuns), id, fmt.Sprintf("update block run %d", id),
		func(br *run.BlockRun) *int64 { return &br.Version },
		func(br *run.BlockRun, now time.Time) { br.UpdatedAt = now },
		fn)
}
