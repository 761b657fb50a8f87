package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/store"
)

// PutAPIKey stores k, replacing a key with the same hash.
func (s *Store) PutAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.db.Collection(colAPIKeys).ReplaceOne(ctx, bson.M{"_id": k.Hash}, k, options.Replace().SetUpsert(true))
	return mapErr(err, "put api key "+k.Name)
}

// GetAPIKey returns the key whose hash is hash.
func (s *Store) GetAPIKey(ctx context.Context, hash string) (*store.APIKey, error) {
	var k store.APIKey
	if err := s.db.Collection(colAPIKeys).FindOne(ctx, bson.M{"_id": hash}).Decode(&k); err != nil {
		return nil, mapErr(err, "get api key")
	}
	return &k, nil
}

// CountAPIKeys returns how many API keys exist.
func (s *Store) CountAPIKeys(ctx context.Context) (int64, error) {
	n, err := s.db.Collection(colAPIKeys).CountDocuments(ctx, bson.M{})
	return n, mapErr(err, "count api keys")
}

// SaveOutcome records a command's outcome; a second save of the same command is ignored, so
// the first outcome stands.
func (s *Store) SaveOutcome(ctx context.Context, o store.CommandOutcome) error {
	_, err := s.db.Collection(colCommands).InsertOne(ctx, o)
	if err = mapErr(err, "save outcome of command "+o.ID); err != nil && !isDuplicate(err) {
		return err
	}
	return nil
}

// GetOutcome returns the recorded outcome of command id.
func (s *Store) GetOutcome(ctx context.Context, id string) (*store.CommandOutcome, error) {
	var o store.CommandOutcome
	if err := s.db.Collection(colCommands).FindOne(ctx, bson.M{"_id": id}).Decode(&o); err != nil {
		return nil, mapErr(err, "get outcome of command "+id)
	}
	return &o, nil
}
