package mongostore

import (
	"context"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
)

// orchestrationIndexes serve the orchestration lists: a space's pipelines by each filter in
// uuid order, and a pipeline's runs in a started window (newest start first) or of one run
// type.
var orchestrationIndexes = []index{
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "provider", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "state", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "team_id", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "connector_id", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "criticality", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "owners", Value: 1}, {Key: "uuid", Value: 1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "started_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "run_type", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
}

// orDefault matches v, and also a missing or empty field when v is the default value: records
// stored before the field existed read as the default.
func orDefault(v, def string) any {
	if v == def {
		return bson.M{"$in": bson.A{v, "", nil}}
	}
	return v
}

// pipelineFilterDoc is the query of the orchestration pipeline list. Watched pipelines are
// the caller's watches read first (MongoDB has no join the store relies on): watched is nil
// when f does not filter on them.
func pipelineFilterDoc(f store.PipelineFilter, watched []string) bson.M {
	filter := bson.M{"space": f.Space}
	if f.Provider != "" {
		filter["provider"] = orDefault(f.Provider, pipeline.ProviderNative)
	}
	if f.State != "" {
		filter["state"] = orDefault(f.State, pipeline.StateActive)
	}
	for field, v := range map[string]string{"team_id": f.TeamID, "connector_id": f.ConnectorID, "criticality": f.Criticality, "owners": f.Owner} {
		if v != "" {
			filter[field] = v // on owners, an array, this matches an element
		}
	}
	if f.Query != "" {
		re := bson.Regex{Pattern: regexp.QuoteMeta(f.Query), Options: "i"}
		filter["$or"] = bson.A{
			bson.M{"uuid": re}, bson.M{"name": re}, bson.M{"description": re}, bson.M{"provider_id": re},
		}
	}
	if watched != nil {
		filter["uuid"] = bson.M{"$in": watched}
	}
	return filter
}

// ListPipelinesFiltered returns a page of the pipelines f selects, by uuid, and their total
// count.
func (s *Store) ListPipelinesFiltered(ctx context.Context, f store.PipelineFilter, pg store.Page) ([]pipeline.Pipeline, int64, error) {
	var watched []string
	if f.WatchedBy != "" {
		var err error
		if watched, err = s.ListWatchedPipelines(ctx, f.Space, f.WatchedBy); err != nil {
			return nil, 0, err
		}
		if len(watched) == 0 {
			return []pipeline.Pipeline{}, 0, nil
		}
	}
	docs, total, err := findPage[pipelineDoc](ctx, s.db.Collection(colPipelines), pipelineFilterDoc(f, watched),
		bson.D{{Key: "space", Value: 1}, {Key: "uuid", Value: 1}}, pg, "pipelines")
	if err != nil {
		return nil, 0, err
	}
	ps := make([]pipeline.Pipeline, len(docs))
	for i := range docs {
		ps[i] = docs[i].Pipeline
	}
	return ps, total, nil
}

// runOrchestrationFilter adds f's run type and started window to a run query and returns the
// sort key of the list: the start time when f bounds it, else the execution date. A run not
// started has a null started_at, which no bound matches.
func runOrchestrationFilter(f store.RunFilter, filter bson.M) string {
	if f.RunType != "" {
		filter["run_type"] = f.RunType
	}
	if !f.ByStart() {
		return "execution_date"
	}
	window := bson.M{}
	if f.StartedFrom != nil {
		window["$gte"] = f.StartedFrom.UTC()
	}
	if f.StartedTo != nil {
		window["$lte"] = f.StartedTo.UTC()
	}
	filter["started_at"] = window
	return "started_at"
}
