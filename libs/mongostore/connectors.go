package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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
