package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/run"
	"github.com/runyard/runyard/libs/store"
)

const colGates = "gates"

// UpdateGate applies fn to the gate key, which starts empty when it does not exist, and
// writes the result if fn returns nil, conditioned on the version read; it retries when
// another writer won.
func (s *Store) UpdateGate(ctx context.Context, key string, fn func(*run.Gate) error) (*run.Gate, error) {
	c := s.db.Collection(colGates)
	what := "update gate " + key
	// Make sure the document exists so that every writer goes through the versioned update.
	_, err := c.UpdateOne(ctx, bson.M{"_id": key}, bson.M{"$setOnInsert": bson.M{"holders": bson.A{}, "version": int64(0)}}, options.UpdateOne().SetUpsert(true))
	if err != nil && !errors.Is(mapErr(err, what), store.ErrDuplicate) {
		return nil, mapErr(err, what)
	}
	return update(ctx, s.locks, c, key, what,
		func(g *run.Gate) *int64 { return &g.Version },
		func(*run.Gate, time.Time) {},
		func(g *run.Gate) error {
			if g.Holders == nil {
				g.Holders = []run.Holder{}
			}
			return fn(g)
		})
}

// DeleteGate removes the gate key.
func (s *Store) DeleteGate(ctx context.Context, key string) error {
	res, err := s.db.Collection(colGates).DeleteOne(ctx, bson.M{"_id": key})
	if err == nil && res.DeletedCount == 0 {
		err = errNoDocuments
	}
	return mapErr(err, fmt.Sprintf("delete gate %s", key))
}
