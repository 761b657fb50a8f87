// Package testenv gives tests real dependencies, isolated per test: an embedded NATS server
// with JetStream, and a MongoDB-wire database (embedded FerretDB by default, or the MongoDB
// named by RUNYARD_TEST_MONGO_URI).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/ferretserver"
	"github.com/runyard/runyard/libs/natsserver"
)

// NATS starts an embedded NATS server with JetStream for the test and returns its URL.
func NATS(t testing.TB) string {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s.URL()
}

var (
	ferretOnce sync.Once
	ferretURI  string
	ferretErr  error
)

// Mongo returns a MongoDB URI and a database name private to the test. The database is
// dropped when the test ends.
func Mongo(t testing.TB) (uri, db string) {
	t.Helper()
	uri = os.Getenv("RUNYARD_TEST_MONGO_URI")
	if uri == "" {
		uri = dockerMongo(t)
	}
	if uri == "" {
		// One FerretDB serves the whole test binary; tests stay isolated by database. Its
		// directory outlives any one test, so it is not a t.TempDir.
		ferretOnce.Do(func() {
			dir, err := os.MkdirTemp("", "runyard-ferretdb-")
			if err != nil {
				ferretErr = err
				return
			}
			s, err := ferretserver.Start(dir, "127.0.0.1:0")
			if err != nil {
				ferretErr = err
				return
			}
			ferretURI = s.URI()
		})
		if ferretErr != nil {
			t.Fatal(ferretErr)
		}
		uri = ferretURI
	}
	db = "t_" + randomHex(8)
	t.Cleanup(func() { dropDatabase(t, uri, db) })
	return uri, db
}

func dropDatabase(t testing.TB, uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop %s: %v", db, err)
		return
	}
	defer func() { _ = c.Disconnect(ctx) }()
	if err := c.Database(db).Drop(ctx); err != nil {
		t.Logf("drop %s: %v", db, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
