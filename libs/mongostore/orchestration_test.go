package mongostore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/pipeline"
	"github.com/runyard/runyard/libs/store"
)

// TestOrchestrationQueriesUseIndexes asks the server to explain the orchestration lists: a
// space's pipelines by each filter, a pipeline's runs in a started window or of one run type.
// Like TestListQueriesUseIndexes it needs MongoDB's query plans, which FerretDB does not give.
func TestOrchestrationQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	ctx, s := openForPlans(t)
	type query struct {
		col    string
		filter bson.M
		sort   bson.D
	}
	var queries []query
	pipelineSort := bson.D{{Key: "space", Value: 1}, {Key: "uuid", Value: 1}}
	for _, f := range []store.PipelineFilter{
		{Provider: pipeline.ProviderAirflow}, {Provider: pipeline.ProviderNative}, {State: pipeline.StateActive},
		{TeamID: "t"}, {ConnectorID: "c"}, {Criticality: "high"}, {Owner: "alice"}, {Query: "orders"},
	} {
		f.Space = "s"
		queries = append(queries, query{colPipelines, pipelineFilterDoc(f, nil), pipelineSort})
	}
	queries = append(queries, query{colPipelines, pipelineFilterDoc(store.PipelineFilter{Space: "s"}, []string{"a", "b"}), pipelineSort})
	from, to := time.Now().Add(-time.Hour), time.Now()
	for _, f := range []store.RunFilter{
		{RunType: "manual"}, {StartedFrom: &from}, {StartedFrom: &from, StartedTo: &to, Status: "failed"}, {StartedTo: &to, RunType: "manual"},
	} {
		f.Space, f.PipelineUUID = "s", "p"
		filter := bson.M{"space": f.Space, "pipeline_uuid": f.PipelineUUID}
		if f.Status != "" {
			filter["status"] = f.Status
		}
		key := runOrchestrationFilter(f, filter)
		queries = append(queries, query{colRuns, filter, bson.D{{Key: key, Value: -1}, {Key: "_id", Value: -1}}})
	}
	for _, q := range queries {
		find := bson.D{{Key: "find", Value: q.col}, {Key: "filter", Value: q.filter}, {Key: "sort", Value: q.sort}, {Key: "limit", Value: 100}}
		var out bson.M
		if err := s.db.RunCommand(ctx, bson.D{{Key: "explain", Value: find}}).Decode(&out); err != nil {
			t.Fatalf("explain %s %v: %v", q.col, q.filter, err)
		}
		plan := fmt.Sprint(out["queryPlanner"])
		if strings.Contains(plan, "COLLSCAN") || strings.Contains(plan, "stage:SORT ") {
			t.Errorf("%s %v sorted by %v is not answered by an index: %s", q.col, q.filter, q.sort, plan)
		}
	}
}
