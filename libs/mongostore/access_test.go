package mongostore

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/testenv"
)

// TestLegacyAPIKeysGoToTheAdminUser stores an API key as builds before users did (no user, no
// public id), then opens the store: the key belongs to the bootstrap admin user, has a public
// id and is listed and revocable like any other.
func TestLegacyAPIKeysGoToTheAdminUser(t *testing.T) {
	t.Parallel()
	uri, db := testenv.Mongo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, uri, db)
	if err != nil {
		t.Fatal(err)
	}
	const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	created := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	if _, err := s.db.Collection(colAPIKeys).InsertOne(ctx, bson.M{"_id": hash, "name": "admin", "principal": "admin", "admin": true, "created_at": created}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)

	s, err = Open(ctx, uri, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	k, err := s.GetAPIKey(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if k.UserID != access.BootstrapAdminID || k.ID != "key_0123456789abcdef" || !k.Admin || !k.CreatedAt.Equal(created) {
		t.Fatalf("legacy key after open = %+v", k)
	}
	keys, err := s.ListAPIKeys(ctx, access.BootstrapAdminID)
	if err != nil || len(keys) != 1 || keys[0].Hash != hash {
		t.Fatalf("keys of the admin user = %+v (%v)", keys, err)
	}
	if err := s.DeleteAPIKey(ctx, access.BootstrapAdminID, k.ID); err != nil {
		t.Fatal(err)
	}
}
