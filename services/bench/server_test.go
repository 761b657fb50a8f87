package main

import (
	"errors"
	"testing"
)

func TestIsPortRace(t *testing.T) {
	t.Parallel()
	race := errors.New("runyard exited before it was ready (exit status 1); its last output:\n{\"error\":\"system: listen on 127.0.0.1:33797: listen tcp 127.0.0.1:33797: bind: address already in use\"}")
	if !isPortRace(race) {
		t.Fatal("a bind conflict is a port race")
	}
	if isPortRace(errors.New("runyard exited before it was ready (exit status 1)")) || isPortRace(nil) {
		t.Fatal("other failures are not port races")
	}
	if got := firstLine(race); got != "runyard exited before it was ready (exit status 1); its last output:" {
		t.Fatalf("firstLine = %q", got)
	}
}
