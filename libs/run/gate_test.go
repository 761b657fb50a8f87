package run_test

import (
	"testing"

	"github.com/runyard/runyard/libs/run"
)

func TestGateAdmit(t *testing.T) {
	t.Parallel()
	var g run.Gate
	// Per-group limit 1, total 2.
	if !g.Admit(1, 10, 1, 2) || g.Admit(2, 10, 1, 2) {
		t.Fatal("the group limit must refuse a second run of group 10")
	}
	if !g.Admit(3, 20, 1, 2) || g.Admit(4, 30, 1, 2) {
		t.Fatal("the total limit must refuse a third run")
	}
	if !g.Admit(1, 10, 1, 2) || len(g.Holders) != 2 {
		t.Fatal("admitting a holder again is a no-op that succeeds")
	}
	if !g.Release(1) || g.Release(1) || g.Holds(1) {
		t.Fatal("release frees once")
	}
	if !g.Admit(2, 10, 1, 2) {
		t.Fatal("a freed slot is given to the next run")
	}
	var open run.Gate
	for i := range 100 {
		if !open.Admit(int64(i), 0, 0, 0) {
			t.Fatal("zero limits mean no limit")
		}
	}
}
