package mongostore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/testenv"
)

// openForPlans opens a store on the test MongoDB for query-plan checks, and skips the test
// on FerretDB, which answers explain with its SQLite plan, not MongoDB's.
func openForPlans(t *testing.T) (context.Context, *Store) {
	t.Helper()
	uri, db := testenv.Mongo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s, err := Open(ctx, uri, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	if s.ServerLacksAtomicWrites() {
		t.Skip("capability: FerretDB does not report MongoDB query plans; this check runs against MongoDB (RUNYARD_TEST_MONGO_URI or make test-docker)")
	}
	return ctx, s
}

// TestListQueriesUseIndexes asks the server to explain every list query the APIs serve and
// fails on a collection scan or an in-memory sort. FerretDB 1.x answers explain with its
// SQLite plan, not MongoDB's, so there the check is declared unsupported.
func TestListQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	ctx, s := openForPlans(t)
	runSort := bson.D{{Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}
	queries := []struct {
		col    string
		filter bson.M
		sort   bson.D
	}{
		{colRuns, bson.M{"space": "s", "pipeline_schedule_id": 1}, runSort},
		{colRuns, bson.M{"space": "s", "pipeline_uuid": "p"}, runSort},
		{colRuns, bson.M{"space": "s", "status": "failed"}, runSort},
		{colRuns, bson.M{"space": "s", "pipeline_uuid": "p", "status": "failed"}, runSort},
		{colRuns, bson.M{"space": "s"}, runSort},
		{colRuns, bson.M{"command_id": "c"}, nil},
		{colBlockRuns, bson.M{"pipeline_run_id": bson.M{"$in": bson.A{1, 2}}}, bson.D{{Key: "pipeline_run_id", Value: 1}, {Key: "_id", Value: 1}}},
		{colBlockRuns, bson.M{"space": "s", "pipeline_uuid": "p"}, bson.D{{Key: "_id", Value: -1}}},
		{colBlockRuns, bson.M{"space": "s", "pipeline_run_id": 1}, bson.D{{Key: "_id", Value: -1}}},
		{colBlockRuns, bson.M{"space": "s"}, bson.D{{Key: "_id", Value: -1}}},
		{colSchedules, bson.M{"space": "s"}, bson.D{{Key: "_id", Value: -1}}},
		{colPipelines, bson.M{"space": "s"}, bson.D{{Key: "space", Value: 1}, {Key: "uuid", Value: 1}}},
		{colSchedules, bson.M{"space": "s", "pipeline_uuid": "p"}, bson.D{{Key: "_id", Value: -1}}},
		{colSchedules, bson.M{"schedule_type": "time", "status": "active"}, bson.D{{Key: "_id", Value: -1}}},
		{colRuns, activeRunsFilter, activeRunsSort},
		{colRuns, bson.M{"space": "s", "backfill_id": 3}, runSort},
		{colRuns, bson.M{"backfill_id": 3, "status": "running"}, nil},
		{colBackfills, bson.M{"space": "s", "pipeline_uuid": "p"}, bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
		{colBackfills, bson.M{"space": "s"}, bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}},
		{colSpaces, bson.M{}, bson.D{{Key: "_id", Value: 1}}},
		{colMemberships, bson.M{"space": "s"}, bson.D{{Key: "user_id", Value: 1}}},
		{colMemberships, bson.M{"user_id": "u"}, bson.D{{Key: "space", Value: 1}}},
		{colAPIKeys, bson.M{"user_id": "u"}, bson.D{{Key: "created_at", Value: 1}, {Key: "id", Value: 1}}},
		{colAPIKeys, bson.M{"user_id": "u", "id": "k"}, nil},
		{colTeams, bson.M{"space": "s"}, bson.D{{Key: "name", Value: 1}}},
		{colWatches, bson.M{"space": "s", "user_id": "u"}, bson.D{{Key: "pipeline_uuid", Value: 1}}},
	}
	for _, q := range queries {
		find := bson.D{{Key: "find", Value: q.col}, {Key: "filter", Value: q.filter}, {Key: "limit", Value: 20}}
		if q.sort != nil {
			find = append(find, bson.E{Key: "sort", Value: q.sort})
		}
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
