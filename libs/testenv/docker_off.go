//go:build !docker

package testenv

import (
	"os"
	"testing"
)

// dockerMongo is the build without testcontainers: asking for Docker is a mistake to report,
// not to skip silently.
func dockerMongo(t testing.TB) string {
	if os.Getenv("RUNYARD_TEST_DOCKER") == "1" {
		t.Fatal("RUNYARD_TEST_DOCKER=1 needs the docker build tag: run make test-docker")
	}
	return ""
}
