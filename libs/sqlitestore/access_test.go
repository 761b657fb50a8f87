package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/access"
)

// TestLegacyAPIKeysGoToTheAdminUser writes an API key as builds before users stored it (Go
// field names, no user, no public id) into a database of the schema before access (6), then
// opens it with this build: the key keeps authenticating, belongs to the bootstrap admin user,
// gets a public id and is listed and revocable like any other.
func TestLegacyAPIKeysGoToTheAdminUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	old, err := openAt(ctx, filepath.Join(dir, FileName), 6)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	doc := `{"Hash":"` + hash + `","Name":"admin","Principal":"admin","Admin":true,"CreatedAt":"` + created.Format(time.RFC3339Nano) + `"}`
	if _, err := old.w.ExecContext(ctx, `INSERT INTO api_keys (hash, doc) VALUES (?, ?)`, hash, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := open(t, dir)
	k, err := s.GetAPIKey(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if k.UserID != access.BootstrapAdminID || k.ID != "key_0123456789abcdef" || k.Name != "admin" || !k.Admin || !k.CreatedAt.Equal(created) || k.Hash != hash {
		t.Fatalf("legacy key after migration = %+v", k)
	}
	keys, err := s.ListAPIKeys(ctx, access.BootstrapAdminID)
	if err != nil || len(keys) != 1 || keys[0].Hash != hash {
		t.Fatalf("keys of the admin user = %+v (%v)", keys, err)
	}
	if err := s.DeleteAPIKey(ctx, access.BootstrapAdminID, k.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountAPIKeys(ctx); err != nil || n != 0 {
		t.Fatalf("%d keys after revocation (%v)", n, err)
	}
}
