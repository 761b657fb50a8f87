// Package mongostore is Runyard's MongoDB store. It relies on single-document atomic writes
// only (no multi-document transactions, no change streams), so it runs on a standalone
// MongoDB, a replica set, and FerretDB alike.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/store"
)

// Collection names.
const (
	colPipelines = "pipelines"
	colSchedules = "pipeline_schedules"
	colRuns      = "pipeline_runs"
	colBlockRuns = "block_runs"
	colAPIKeys   = "api_keys"
	colCommands  = "commands"
	colCounters  = "counters"
)

// maxUpdateAttempts bounds the optimistic-concurrency loop of an update closure.
const maxUpdateAttempts = 20

// Store is the MongoDB store. It is safe for concurrent use.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	// locks serialize read-modify-write cycles inside this process when the server does not
	// make single-document conditional writes atomic (FerretDB v1 evaluates the filter and
	// the write in separate steps). nil on MongoDB, where the server guarantees it.
	locks *stripedLocks
}

// ServerLacksAtomicWrites reports whether the store had to fall back to process-local
// serialization of conditional writes; such a store is safe only for one process.
func (s *Store) ServerLacksAtomicWrites() bool { return s.locks != nil }

// Open connects to uri, uses database db, and creates the indexes the store's queries need.
func Open(ctx context.Context, uri, db string) (*Store, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetAppName("runyard"))
	if err != nil {
		return nil, fmt.Errorf("mongostore: connect: %w", err)
	}
	s := &Store{client: client, db: client.Database(db)}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	ferret, err := s.isFerretDB(ctx)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	if ferret {
		s.locks = &stripedLocks{}
	}
	if err := s.adoptLegacyAPIKeys(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// Close disconnects from the server.
func (s *Store) Close(ctx context.Context) error {
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongostore: disconnect: %w", err)
	}
	return nil
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("mongostore: ping: %w", err)
	}
	return nil
}

func (s *Store) isFerretDB(ctx context.Context) (bool, error) {
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("mongostore: buildInfo: %w", err)
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}

// stripedLocks is a fixed set of mutexes picked by key hash: enough to serialize writers of
// the same document without one lock per document.
type stripedLocks struct {
	mu [64]sync.Mutex
}

func (l *stripedLocks) lock(key string) func() {
	if l == nil {
		return func() {}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &l.mu[h.Sum32()%uint32(len(l.mu))]
	m.Lock()
	return m.Unlock
}

type index struct {
	col    string
	keys   bson.D
	unique bool
}

var indexes = []index{
	{colPipelines, bson.D{{Key: "space", Value: 1}, {Key: "uuid", Value: 1}}, true},
	{colSchedules, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "command_id", Value: 1}}, true},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_schedule_id", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "status", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "status", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colBlockRuns, bson.D{{Key: "pipeline_run_id", Value: 1}, {Key: "block_uuid", Value: 1}}, true},
	{colBlockRuns, bson.D{{Key: "pipeline_run_id", Value: 1}, {Key: "_id", Value: 1}}, false},
	{colBlockRuns, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colBlockRuns, bson.D{{Key: "space", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colSchedules, bson.D{{Key: "space", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colStats, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "day", Value: 1}}, false},
	// The time-schedule leader's reads, across all spaces: active schedules of a type, and
	// unfinished runs oldest first.
	{colSchedules, bson.D{{Key: "schedule_type", Value: 1}, {Key: "status", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "status", Value: 1}, {Key: "execution_date", Value: 1}, {Key: "_id", Value: 1}}, false},
	// Backfills, and the runs of a backfill: their list, and their counts by status.
	{colBackfills, bson.D{{Key: "space", Value: 1}, {Key: "pipeline_uuid", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colBackfills, bson.D{{Key: "space", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "space", Value: 1}, {Key: "backfill_id", Value: 1}, {Key: "execution_date", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colRuns, bson.D{{Key: "backfill_id", Value: 1}, {Key: "status", Value: 1}}, false},
	// Tenancy and access: usernames are unique; the member lists of a space and of a user; a
	// user's API keys oldest first; team names unique in a space, listed by name; the
	// pipelines a user watches in a space.
	{colUsers, bson.D{{Key: "username", Value: 1}}, true},
	{colMemberships, bson.D{{Key: "space", Value: 1}, {Key: "user_id", Value: 1}}, false},
	{colMemberships, bson.D{{Key: "user_id", Value: 1}, {Key: "space", Value: 1}}, false},
	{colAPIKeys, bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "id", Value: 1}}, false},
	{colTeams, bson.D{{Key: "space", Value: 1}, {Key: "name", Value: 1}}, true},
	{colWatches, bson.D{{Key: "space", Value: 1}, {Key: "user_id", Value: 1}, {Key: "pipeline_uuid", Value: 1}}, false},
	// Webhooks: a space's webhooks oldest first (and its active ones), a webhook's deliveries
	// newest first, and the unfinished deliveries by when they are due (a finished one has a
	// null next_attempt_at, which the due query's range never matches).
	{colWebhooks, bson.D{{Key: "space", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, false},
	{colDeliveries, bson.D{{Key: "subscription_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colDeliveries, bson.D{{Key: "next_attempt_at", Value: 1}}, false},
	// The comments on one run or task run, oldest first.
	{colComments, bson.D{{Key: "space", Value: 1}, {Key: "target_type", Value: 1}, {Key: "target_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, false},
	// Connectors: names unique in a space, listed by name; sync jobs newest first per
	// connector and per space.
	{colConnectors, bson.D{{Key: "space", Value: 1}, {Key: "name", Value: 1}}, true},
	{colSyncJobs, bson.D{{Key: "connector_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{colSyncJobs, bson.D{{Key: "space", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	for _, ix := range append(indexes, orchestrationIndexes...) {
		m := mongo.IndexModel{Keys: ix.keys}
		if ix.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if _, err := s.db.Collection(ix.col).Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("mongostore: create index on %s: %w", ix.col, err)
		}
	}
	return nil
}

// NextIDs reserves n consecutive ids of the sequence name and returns the last one; the
// reserved ids are last-n+1 … last. One atomic $inc serves a whole block of ids.
func (s *Store) NextIDs(ctx context.Context, name string, n int64) (int64, error) {
	var doc struct {
		Value int64 `bson:"value"`
	}
	defer s.locks.lock(colCounters + "/" + name)()
	err := s.db.Collection(colCounters).FindOneAndUpdate(ctx,
		bson.M{"_id": name},
		bson.M{"$inc": bson.M{"value": n}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("mongostore: allocate %d %s ids: %w", n, name, err)
	}
	return doc.Value, nil
}

func mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("mongostore: %s: %w", what, store.ErrNotFound)
	case mongo.IsDuplicateKeyError(err), isFerretUniqueViolation(err):
		return fmt.Errorf("mongostore: %s: %w", what, store.ErrDuplicate)
	}
	return fmt.Errorf("mongostore: %s: %w", what, err)
}

// update runs the optimistic-concurrency loop shared by every versioned document: read,
// apply fn, replace on the version read, retry when another writer won.
func update[T any](ctx context.Context, locks *stripedLocks, c *mongo.Collection, id any, what string, version func(*T) *int64, touch func(*T, time.Time), fn func(*T) error) (*T, error) {
	defer locks.lock(fmt.Sprint(c.Name(), "/", id))()
	for range maxUpdateAttempts {
		var doc T
		if err := c.FindOne(ctx, bson.M{"_id": id}).Decode(&doc); err != nil {
			return nil, mapErr(err, what)
		}
		old := *version(&doc)
		if err := fn(&doc); err != nil {
			return &doc, err
		}
		*version(&doc) = old + 1
		touch(&doc, time.Now().UTC().Truncate(time.Millisecond))
		res, err := c.ReplaceOne(ctx, bson.M{"_id": id, "version": old}, &doc)
		if err != nil {
			return nil, mapErr(err, what)
		}
		if res.MatchedCount == 1 {
			return &doc, nil
		}
	}
	return nil, fmt.Errorf("mongostore: %s: %w", what, store.ErrConflict)
}

func findPage[T any](ctx context.Context, c *mongo.Collection, filter bson.M, sort bson.D, pg store.Page, what string) ([]T, int64, error) {
	total, err := c.CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, mapErr(err, "count "+what)
	}
	opts := options.Find().SetSort(sort).SetSkip(int64(pg.Offset))
	if pg.Limit > 0 {
		opts.SetLimit(int64(pg.Limit))
	}
	items, err := findAll[T](ctx, c, filter, opts, what)
	return items, total, err
}

func findAll[T any](ctx context.Context, c *mongo.Collection, filter bson.M, opts *options.FindOptionsBuilder, what string) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return nil, mapErr(err, "find "+what)
	}
	items := []T{}
	if err := cur.All(ctx, &items); err != nil {
		return nil, mapErr(err, "read "+what)
	}
	return items, nil
}

// isFerretUniqueViolation recognizes a unique index violated by an update on FerretDB 1.x,
// which reports it as an internal error carrying its SQLite backend's message rather than
// MongoDB's duplicate key error (inserts get the proper code).
func isFerretUniqueViolation(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func isDuplicate(err error) bool { return errors.Is(err, store.ErrDuplicate) }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
