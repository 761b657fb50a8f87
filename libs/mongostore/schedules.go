package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/store"
)

var errNoDocuments = mongo.ErrNoDocuments

// CreateSchedule inserts sc, whose ID the caller allocated.
func (s *Store) CreateSchedule(ctx context.Context, sc *schedule.Schedule) error {
	_, err := s.db.Collection(colSchedules).InsertOne(ctx, sc)
	return mapErr(err, fmt.Sprintf("create schedule %d", sc.ID))
}

// GetSchedule returns the schedule id, in whichever space it is.
func (s *Store) GetSchedule(ctx context.Context, id int64) (*schedule.Schedule, error) {
	var sc schedule.Schedule
	if err := s.db.Collection(colSchedules).FindOne(ctx, bson.M{"_id": id}).Decode(&sc); err != nil {
		return nil, mapErr(err, fmt.Sprintf("get schedule %d", id))
	}
	return &sc, nil
}

// GetSchedules returns the schedules among ids that exist, by id.
func (s *Store) GetSchedules(ctx context.Context, ids []int64) (map[int64]*schedule.Schedule, error) {
	scs, err := findAll[schedule.Schedule](ctx, s.db.Collection(colSchedules), bson.M{"_id": bson.M{"$in": ids}}, options.Find(), "schedules")
	if err != nil {
		return nil, err
	}
	m := make(map[int64]*schedule.Schedule, len(scs))
	for i := range scs {
		m[scs[i].ID] = &scs[i]
	}
	return m, nil
}

// ListSchedules returns a page of schedules, newest first, and their total count.
func (s *Store) ListSchedules(ctx context.Context, f store.ScheduleFilter, pg store.Page) ([]schedule.Schedule, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.PipelineUUID != "" {
		filter["pipeline_uuid"] = f.PipelineUUID
	}
	if f.Type != "" {
		filter["schedule_type"] = f.Type
	}
	if f.Status != "" {
		filter["status"] = f.Status
	}
	return findPage[schedule.Schedule](ctx, s.db.Collection(colSchedules), filter, bson.D{{Key: "_id", Value: -1}}, pg, "schedules")
}

// UpdateSchedule applies fn to the stored schedule and writes the result if fn returns nil.
func (s *Store) UpdateSchedule(ctx context.Context, id int64, fn func(*schedule.Schedule) error) (*schedule.Schedule, error) {
	return update(ctx, s.locks, s.db.Collection(colSchedules), id, fmt.Sprintf("update schedule %d", id),
		func(sc *schedule.Schedule) *int64 { return &sc.Version },
		func(sc *schedule.Schedule, now time.Time) { sc.UpdatedAt = now },
		fn)
}

// DeleteSchedule removes the schedule id. Its runs stay.
func (s *Store) DeleteSchedule(ctx context.Context, id int64) error {
	res, err := s.db.Collection(colSchedules).DeleteOne(ctx, bson.M{"_id": id})
	if err == nil && res.DeletedCount == 0 {
		err = errNoDocuments
	}
	return mapErr(err, fmt.Sprintf("delete schedule %d", id))
}
