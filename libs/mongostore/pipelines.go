package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
)

type pipelineDoc struct {
	ID                string `bson:"_id"`
	pipeline.Pipeline `bson:",inline"`
}

func pipelineID(space, uuid string) string { return space + "/" + uuid }

// CreatePipeline inserts p; a pipeline with the same uuid in the space is ErrDuplicate.
func (s *Store) CreatePipeline(ctx context.Context, p *pipeline.Pipeline) error {
	_, err := s.db.Collection(colPipelines).InsertOne(ctx, pipelineDoc{ID: pipelineID(p.Space, p.UUID), Pipeline: *p})
	return mapErr(err, "create pipeline "+p.UUID)
}

// GetPipeline returns the pipeline uuid of space.
func (s *Store) GetPipeline(ctx context.Context, space, uuid string) (*pipeline.Pipeline, error) {
	var d pipelineDoc
	err := s.db.Collection(colPipelines).FindOne(ctx, bson.M{"_id": pipelineID(space, uuid)}).Decode(&d)
	if err != nil {
		return nil, mapErr(err, "get pipeline "+uuid)
	}
	return &d.Pipeline, nil
}

// ListPipelines returns a page of the space's pipelines by uuid, and their total count.
func (s *Store) ListPipelines(ctx context.Context, space string, pg store.Page) ([]pipeline.Pipeline, int64, error) {
	docs, total, err := findPage[pipelineDoc](ctx, s.db.Collection(colPipelines), bson.M{"space": space}, bson.D{{Key: "space", Value: 1}, {Key: "uuid", Value: 1}}, pg, "pipelines")
	if err != nil {
		return nil, 0, err
	}
	ps := make([]pipeline.Pipeline, len(docs))
	for i := range docs {
		ps[i] = docs[i].Pipeline
	}
	return ps, total, nil
}

// UpdatePipeline applies fn to the stored pipeline and writes the result if fn returns nil.
func (s *Store) UpdatePipeline(ctx context.Context, space, uuid string, fn func(*pipeline.Pipeline) error) (*pipeline.Pipeline, error) {
	d, err := update(ctx, s.locks, s.db.Collection(colPipelines), pipelineID(space, uuid), "update pipeline "+uuid,
		func(d *pipelineDoc) *int64 { return &d.Version },
		func(d *pipelineDoc, now time.Time) { d.UpdatedAt = now },
		func(d *pipelineDoc) error { return fn(&d.Pipeline) })
	if d == nil {
		return nil, err
	}
	return &d.Pipeline, err
}

// DeletePipeline removes the pipeline uuid of space.
func (s *Store) DeletePipeline(ctx context.Context, space, uuid string) error {
	res, err := s.db.Collection(colPipelines).DeleteOne(ctx, bson.M{"_id": pipelineID(space, uuid)})
	if err != nil {
		return mapErr(err, "delete pipeline "+uuid)
	}
	if res.DeletedCount == 0 {
		return mapErr(errNoDocuments, "delete pipeline "+uuid)
	}
	return nil
}
