//go:build docker

package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/mongodb"
)

// mongoImage is the MongoDB that deployments run (docker-compose.yml), so that the Docker
// tests check what FerretDB cannot: real atomic conditional writes.
const mongoImage = "mongo:7"

var (
	dockerOnce sync.Once
	dockerURI  string
	dockerErr  error
)

// dockerMongo returns the connection string of a MongoDB container when RUNYARD_TEST_DOCKER=1,
// and "" otherwise so that Mongo falls back to FerretDB.
//
// One container serves the whole test binary: starting one per test would cost seconds each,
// and Mongo already isolates tests by database. No test owns the container, so none
// terminates it; testcontainers' reaper (Ryuk) removes it when the test binary exits.
func dockerMongo(t testing.TB) string {
	t.Helper()
	if os.Getenv("RUNYARD_TEST_DOCKER") != "1" {
		return ""
	}
	dockerOnce.Do(func() { dockerURI, dockerErr = startMongo() })
	if dockerErr != nil {
		t.Fatal(dockerErr)
	}
	return dockerURI
}

func startMongo() (uri string, err error) {
	// testcontainers panics when it finds no Docker engine; as an error it fails the tests
	// with the reason instead of killing the test binary mid-run.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testenv: start %s container: no usable Docker engine: %v", mongoImage, r)
		}
	}()
	// Not the test's context: the container outlives the test that happens to start it. The
	// timeout covers pulling the image on a cold machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := mongodb.Run(ctx, mongoImage)
	if err != nil {
		// Run can fail after creating the container (a wait strategy timing out); remove it
		// rather than leave it to the reaper.
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("testenv: start %s container: %w", mongoImage, err)
	}
	uri, err = c.ConnectionString(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("testenv: %s container connection string: %w", mongoImage, err)
	}
	return uri, nil
}
