package gateway

import (
	"testing"

	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
)

// The relay takes each event's type from its subject; the subject builders and the types
// must agree for every kind.
func TestTypeOfSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject  string
		want     string
		pipeline string
		runID    string
	}{
		{natsbus.RunEventSubject("s", "p.1", 4, run.StatusRunning), event.TypePipelineRunStatusChanged, "p%2E1", "4"},
		{natsbus.RunSLAMissedSubject("s", "p", 4), event.TypePipelineRunSLAMissed, "p", "4"},
		{natsbus.BlockRunEventSubject("s", "p", 4, run.StatusQueued), event.TypeBlockRunStatusChanged, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "created"), event.TypeCommentCreated, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "updated"), event.TypeCommentUpdated, "p", "4"},
		{natsbus.CommentEventSubject("s", "p", 4, "deleted"), event.TypeCommentDeleted, "p", "4"},
		{natsbus.SyncEventSubject("s", "c", "j", "started"), event.TypeSyncStarted, "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "completed"), event.TypeSyncCompleted, "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "failed"), event.TypeSyncFailed, "", ""},
		{natsbus.PipelineUpdatedSubject("s", "p"), event.TypePipelineUpdated, "p", ""},
		{"runyard.evt.s.novel.a.b.c", "", "", ""},
		{natsbus.SyncEventSubject("s", "c", "j", "paused"), "", "", ""},
	}
	for _, tt := range tests {
		s, ok := natsbus.ParseEventSubject(tt.subject)
		if !ok {
			t.Fatalf("%s does not parse", tt.subject)
		}
		if got := typeOfSubject(s); got != tt.want || s.Pipeline() != tt.pipeline || s.RunID() != tt.runID {
			t.Errorf("%s: type %q pipeline %q run %q", tt.subject, got, s.Pipeline(), s.RunID())
		}
	}
}
