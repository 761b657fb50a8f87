package mongostore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

const colStats = "pipeline_stats"

type statsDoc struct {
	Space        string `bson:"space"`
	PipelineUUID string `bson:"pipeline_uuid"`
	Day          int64  `bson:"day"`
	Status       string `bson:"status"`
	N            int64  `bson:"n"`
	DurationMS   int64  `bson:"duration_ms"`
}

// completedMillis is a completed run's duration in milliseconds, 0 for other statuses.
func completedMillis(r *run.PipelineRun) int64 {
	if r.Status != run.StatusCompleted || r.StartedAt == nil || r.CompletedAt == nil {
		return 0
	}
	return r.CompletedAt.Sub(*r.StartedAt).Milliseconds()
}

// bumpStats adds d (±1) of run r to its pipeline's daily bucket. It follows the run's own
// write rather than sharing its atomicity (no multi-document transactions): a crash between
// the two leaves the bucket one off, which the statistics tolerate.
func (s *Store) bumpStats(ctx context.Context, r *run.PipelineRun, d int64) error {
	day := store.StatsDay(r.ExecutionDate)
	id := fmt.Sprintf("%s/%s/%d/%s", r.Space, r.PipelineUUID, day, r.Status)
	defer s.locks.lock(colStats + "/" + id)()
	_, err := s.db.Collection(colStats).UpdateOne(ctx, bson.M{"_id": id}, bson.M{
		"$inc":         bson.M{"n": d, "duration_ms": d * completedMillis(r)},
		"$setOnInsert": bson.M{"space": r.Space, "pipeline_uuid": r.PipelineUUID, "day": day, "status": string(r.Status)},
	}, options.UpdateOne().SetUpsert(true))
	return mapErr(err, "pipeline stats of run "+fmt.Sprint(r.ID))
}

// PipelineStats returns the run statistics of the given pipelines of space for runs whose
// execution date is on or after since's day; pipelines without runs get empty stats.
func (s *Store) PipelineStats(ctx context.Context, space string, uuids []string, since time.Time) (map[string]store.PipelineStats, error) {
	out := make(map[string]store.PipelineStats, len(uuids))
	if len(uuids) == 0 {
		return out, nil
	}
	for _, u := range uuids {
		out[u] = store.PipelineStats{PipelineUUID: u, Runs: map[run.Status]int64{}}
	}
	docs, err := findAll[statsDoc](ctx, s.db.Collection(colStats),
		bson.M{"space": space, "pipeline_uuid": bson.M{"$in": uuids}, "day": bson.M{"$gte": store.StatsDay(since)}}, options.Find(), "pipeline stats")
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		st := out[d.PipelineUUID]
		if d.N != 0 {
			st.Runs[run.Status(d.Status)] += d.N
		}
		if d.Status == string(run.StatusCompleted) {
			st.CompletedSeconds += float64(d.DurationMS) / 1000
		}
		out[d.PipelineUUID] = st
	}
	last, err := s.lastRuns(ctx, space, uuids)
	if err != nil {
		return nil, err
	}
	for u, lr := range last {
		st := out[u]
		st.LastRun = lr
		out[u] = st
	}
	return out, nil
}

// lastRunLookups bounds the concurrent last-run queries of one PipelineStats call.
const lastRunLookups = 8

// lastRuns finds the most recent run of each pipeline. Each is one indexed query (space,
// pipeline_uuid, execution_date desc) that reads a single entry; they run concurrently so a
// page of 100 pipelines costs about a dozen round trips of latency, not 100.
func (s *Store) lastRuns(ctx context.Context, space string, uuids []string) (map[string]*store.LastRun, error) {
	out := make(map[string]*store.LastRun, len(uuids))
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(lastRunLookups)
	for _, u := range uuids {
		g.Go(func() error {
			var r run.PipelineRun
			err := s.db.Collection(colRuns).FindOne(ctx, bson.M{"space": space, "pipeline_uuid": u},
				options.FindOne().SetSort(bson.D{{Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}).
					SetProjection(bson.M{"_id": 1, "status": 1, "execution_date": 1})).Decode(&r)
			if err = mapErr(err, "last run of "+u); err != nil {
				if isNotFound(err) {
					return nil
				}
				return err
			}
			mu.Lock()
			out[u] = &store.LastRun{ID: r.ID, Status: r.Status, ExecutionDate: r.ExecutionDate}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
