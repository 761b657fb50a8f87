package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/connector"
	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

const (
	colConnectors = "connectors"
	colSyncJobs   = "sync_jobs"
)

// CreateConnector inserts c; an id in use, or a name another connector of the space has, is
// ErrDuplicate.
func (s *Store) CreateConnector(ctx context.Context, c *connector.Connector) error {
	_, err := s.db.Collection(colConnectors).InsertOne(ctx, c)
	return mapErr(err, "create connector "+c.ID)
}

// GetConnector returns the connector id of space.
func (s *Store) GetConnector(ctx context.Context, space, id string) (*connector.Connector, error) {
	var c connector.Connector
	if err := s.db.Collection(colConnectors).FindOne(ctx, bson.M{"_id": id, "space": space}).Decode(&c); err != nil {
		return nil, mapErr(err, "get connector "+id)
	}
	return &c, nil
}

// ListConnectors returns a page of connectors by space and name, and their count; an empty
// Space lists every space's.
func (s *Store) ListConnectors(ctx context.Context, f connector.ConnectorFilter, pg store.Page) ([]connector.Connector, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.Type != "" {
		filter["type"] = f.Type
	}
	return findPage[connector.Connector](ctx, s.db.Collection(colConnectors), filter, bson.D{{Key: "space", Value: 1}, {Key: "name", Value: 1}}, pg, "connectors")
}

// UpdateConnector applies fn to the stored connector and writes the result if fn returns
// nil; a new name another connector of the space has is ErrDuplicate.
func (s *Store) UpdateConnector(ctx context.Context, space, id string, fn func(*connector.Connector) error) (*connector.Connector, error) {
	c, err := update(ctx, s.locks, s.db.Collection(colConnectors), id, "update connector "+id,
		func(c *connector.Connector) *int64 { return &c.Version },
		func(c *connector.Connector, now time.Time) { c.UpdatedAt = now },
		func(c *connector.Connector) error {
			if c.Space != space {
				return mapErr(errNoDocuments, "update connector "+id)
			}
			return fn(c)
		})
	if isNotFound(err) {
		return nil, err // never hand out another space's record
	}
	return c, err
}

// DeleteConnector removes the connector id of space, then its sync jobs. The pipelines and
// runs it mirrored stay.
func (s *Store) DeleteConnector(ctx context.Context, space, id string) error {
	if err := deleteOne(ctx, s, colConnectors, bson.M{"_id": id, "space": space}, "delete connector "+id); err != nil {
		return err
	}
	_, err := s.db.Collection(colSyncJobs).DeleteMany(ctx, bson.M{"connector_id": id})
	return mapErr(err, "delete sync jobs of connector "+id)
}

// CreateSyncJob inserts j; an id in use is ErrDuplicate.
func (s *Store) CreateSyncJob(ctx context.Context, j *connector.SyncJob) error {
	_, err := s.db.Collection(colSyncJobs).InsertOne(ctx, j)
	return mapErr(err, "create sync job "+j.ID)
}

// GetSyncJob returns the sync job id of space.
func (s *Store) GetSyncJob(ctx context.Context, space, id string) (*connector.SyncJob, error) {
	var j connector.SyncJob
	if err := s.db.Collection(colSyncJobs).FindOne(ctx, bson.M{"_id": id, "space": space}).Decode(&j); err != nil {
		return nil, mapErr(err, "get sync job "+id)
	}
	return &j, nil
}

// ListSyncJobs returns a page of sync jobs, newest first, and their count.
func (s *Store) ListSyncJobs(ctx context.Context, f connector.SyncJobFilter, pg store.Page) ([]connector.SyncJob, int64, error) {
	filter := bson.M{}
	if f.Space != "" {
		filter["space"] = f.Space
	}
	if f.ConnectorID != "" {
		filter["connector_id"] = f.ConnectorID
	}
	if f.Status != "" {
		filter["status"] = f.Status
	}
	return findPage[connector.SyncJob](ctx, s.db.Collection(colSyncJobs), filter, bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, pg, "sync jobs")
}

// UpdateSyncJob applies fn to the stored sync job and writes the result if fn returns nil.
func (s *Store) UpdateSyncJob(ctx context.Context, space, id string, fn func(*connector.SyncJob) error) (*connector.SyncJob, error) {
	j, err := update(ctx, s.locks, s.db.Collection(colSyncJobs), id, "update sync job "+id,
		func(j *connector.SyncJob) *int64 { return &j.Version },
		func(j *connector.SyncJob, now time.Time) { j.UpdatedAt = now },
		func(j *connector.SyncJob) error {
			if j.Space != space {
				return mapErr(errNoDocuments, "update sync job "+id)
			}
			return fn(j)
		})
	if isNotFound(err) {
		return nil, err // never hand out another space's record
	}
	return j, err
}

// UpsertProviderPipeline creates or updates a pipeline mirrored from a connector; see
// connector.UpsertPipeline.
func (s *Store) UpsertProviderPipeline(ctx context.Context, p *pipeline.Pipeline) (connector.Outcome, error) {
	return connector.UpsertPipeline(ctx, s, p)
}

// UpsertProviderRun creates or updates a run mirrored from a connector, keyed by its command
// id; see connector.UpsertRun.
func (s *Store) UpsertProviderRun(ctx context.Context, r *run.PipelineRun) (connector.Outcome, error) {
	return connector.UpsertRun(ctx, s, r)
}

// UpsertProviderBlockRuns creates or updates the mirrored block runs of a run; see
// connector.UpsertBlockRuns.
func (s *Store) UpsertProviderBlockRuns(ctx context.Context, runID int64, brs []run.BlockRun) (connector.Counts, error) {
	return connector.UpsertBlockRuns(ctx, s, runID, brs)
}

// GetRunsByCommands returns the stored runs of the given command ids, in no particular order;
// ids without a run are left out. A sync reads a page of runs with it in one query.
func (s *Store) GetRunsByCommands(ctx context.Context, commandIDs ...string) ([]run.PipelineRun, error) {
	if len(commandIDs) == 0 {
		return []run.PipelineRun{}, nil
	}
	return findAll[run.PipelineRun](ctx, s.db.Collection(colRuns), bson.M{"command_id": bson.M{"$in": commandIDs}}, options.Find(), "runs of commands")
}

// UpsertProviderRuns creates or updates a batch of mirrored runs with their block runs (see
// connector.RunUpsert). The stored state is read in two queries, ids are reserved with one
// counter update per sequence, and the new runs and block runs are written with unordered
// bulk inserts and the pipeline statistics with one unordered bulk update. A run whose
// command id another writer took meanwhile fails its insert alone and is planned again;
// updates (rare: a run that moved on in Airflow) go through UpdateRun and UpdateBlockRun,
// which merge onto the record as they find it. Nothing is written for an unchanged record.
func (s *Store) UpsertProviderRuns(ctx context.Context, items []connector.RunUpsert) error {
	pending := make([]int, len(items))
	for k := range pending {
		pending[k] = k
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 3 {
			return fmt.Errorf("mongostore: upsert %d provider runs: %w", len(pending), store.ErrConflict)
		}
		batch := make([]connector.RunUpsert, len(pending))
		for i, k := range pending {
			batch[i] = connector.RunUpsert{Run: items[k].Run, BlockRuns: items[k].BlockRuns}
		}
		failed, err := s.upsertRunBatch(ctx, batch)
		if err != nil {
			return err
		}
		var again []int
		for i, k := range pending {
			if failed[i] {
				again = append(again, k)
				continue
			}
			items[k] = batch[i]
		}
		pending = again
	}
	return nil
}

// upsertRunBatch upserts batch and returns the items whose run another writer created
// meanwhile: nothing of theirs is written, nor are they given results.
func (s *Store) upsertRunBatch(ctx context.Context, batch []connector.RunUpsert) (map[int]bool, error) {
	what := fmt.Sprintf("upsert %d provider runs", len(batch))
	stored, err := s.GetRunsByCommands(ctx, connector.CommandIDs(batch)...)
	if err != nil {
		return nil, err
	}
	var blocks []run.BlockRun
	if ids := connector.BlockRunsToRead(batch, stored); len(ids) > 0 {
		if blocks, err = s.BlockRunsOf(ctx, ids...); err != nil {
			return nil, err
		}
	}
	p, err := connector.PlanRuns(batch, stored, blocks, store.Now())
	if err != nil {
		return nil, err
	}
	var lastRun, lastBlock int64
	if n := len(p.NewRuns); n > 0 {
		if lastRun, err = s.NextIDs(ctx, connector.SeqPipelineRuns, int64(n)); err != nil {
			return nil, err
		}
	}
	if n := len(p.NewBlockRuns); n > 0 {
		if lastBlock, err = s.NextIDs(ctx, connector.SeqBlockRuns, int64(n)); err != nil {
			return nil, err
		}
	}
	p.AssignIDs(lastRun, lastBlock)

	failed := map[int]bool{}
	if len(p.NewRuns) > 0 {
		docs := make([]any, len(p.NewRuns))
		for i, w := range p.NewRuns {
			docs[i] = w.Run
		}
		_, err := s.db.Collection(colRuns).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
				return nil, mapErr(err, what)
			}
			for _, we := range bwe.WriteErrors {
				if we.Code != 11000 {
					return nil, mapErr(err, what)
				}
				failed[p.NewRuns[we.Index].Item] = true
			}
		}
		var created []*run.PipelineRun
		for _, w := range p.NewRuns {
			if !failed[w.Item] {
				created = append(created, w.Run)
			}
		}
		if err := s.bumpStatsMany(ctx, created); err != nil {
			return nil, err
		}
	}
	for _, w := range p.ChangedRuns {
		res := &p.Results[w.Item]
		got, err := s.UpdateRun(ctx, w.Run.ID, func(c *run.PipelineRun) error { return connector.MergeRun(c, w.Run) })
		switch {
		case err == nil:
			res.Run = got
		case errors.Is(err, run.ErrNoChange) && got != nil:
			res.Run, res.Outcome = got, connector.Unchanged // another writer stored the same meanwhile
		default:
			return nil, err
		}
	}
	var docs []any
	for _, w := range p.NewBlockRuns {
		if !failed[w.Item] {
			docs = append(docs, w.BlockRun)
		}
	}
	if len(docs) > 0 {
		// As CreateBlockRuns: a (run, block) pair stored meanwhile is skipped.
		_, err := s.db.Collection(colBlockRuns).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			return nil, mapErr(err, what)
		}
	}
	for _, w := range p.ChangedBlockRuns {
		res := &p.Results[w.Item]
		got, err := s.UpdateBlockRun(ctx, w.BlockRun.ID, func(c *run.BlockRun) error { return connector.MergeBlockRun(c, w.BlockRun) })
		switch {
		case err == nil:
			res.BlockRuns[w.Index] = *got
		case errors.Is(err, run.ErrNoChange) && got != nil:
			res.BlockRuns[w.Index], res.BlockOutcomes[w.Index] = *got, connector.Unchanged
		default:
			return nil, err
		}
	}
	p.Apply(batch, failed)
	return failed, nil
}

// bumpStatsMany counts new runs in their pipelines' daily buckets (as bumpStats does one)
// with one unordered bulk update of the buckets they fall in. A bucket whose upsert raced
// another's creation is bumped again alone.
func (s *Store) bumpStatsMany(ctx context.Context, runs []*run.PipelineRun) error {
	type bucket struct {
		r     *run.PipelineRun
		n, ms int64
	}
	var order []string
	buckets := map[string]*bucket{}
	for _, r := range runs {
		id := fmt.Sprintf("%s/%s/%d/%s", r.Space, r.PipelineUUID, store.StatsDay(r.ExecutionDate), r.Status)
		b := buckets[id]
		if b == nil {
			b = &bucket{r: r}
			buckets[id] = b
			order = append(order, id)
		}
		b.n++
		b.ms += completedMillis(r)
	}
	if len(order) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(order))
	for i, id := range order {
		b := buckets[id]
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpsert(true).SetUpdate(bson.M{
			"$inc":         bson.M{"n": b.n, "duration_ms": b.ms},
			"$setOnInsert": bson.M{"space": b.r.Space, "pipeline_uuid": b.r.PipelineUUID, "day": store.StatsDay(b.r.ExecutionDate), "status": string(b.r.Status)},
		})
	}
	_, err := s.db.Collection(colStats).BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return mapErr(err, "pipeline stats")
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 && !strings.Contains(we.Message, "UNIQUE constraint failed") {
			return mapErr(err, "pipeline stats")
		}
		id := order[we.Index]
		b := buckets[id]
		unlock := s.locks.lock(colStats + "/" + id)
		_, err := s.db.Collection(colStats).UpdateOne(ctx, models[we.Index].(*mongo.UpdateOneModel).Filter, models[we.Index].(*mongo.UpdateOneModel).Update, options.UpdateOne().SetUpsert(true))
		unlock()
		if err != nil {
			return mapErr(err, "pipeline stats of run "+fmt.Sprint(b.r.ID))
		}
	}
	return nil
}
