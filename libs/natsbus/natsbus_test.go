package natsbus_test

import (
	"strings"
	"testing"

	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/run"
)

func TestEventSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		space, pipe  string
		runID        int64
		status       run.Status
		wantRun      string
		wantBlockRun string
	}{
		{
			name: "plain", space: "default", pipe: "etl_daily", runID: 42, status: run.StatusCompleted,
			wantRun:      "runyard.evt.default.run.etl_daily.42.completed",
			wantBlockRun: "runyard.evt.default.block_run.etl_daily.42.completed",
		},
		{
			name: "dashes kept", space: "team-a", pipe: "load-users", runID: 1, status: run.StatusUpstreamFailed,
			wantRun:      "runyard.evt.team-a.run.load-users.1.upstream_failed",
			wantBlockRun: "runyard.evt.team-a.block_run.load-users.1.upstream_failed",
		},
		{
			name: "dots in space and pipeline", space: "acme.prod", pipe: "a.b.c", runID: 7, status: run.StatusRunning,
			wantRun:      "runyard.evt.acme%2Eprod.run.a%2Eb%2Ec.7.running",
			wantBlockRun: "runyard.evt.acme%2Eprod.block_run.a%2Eb%2Ec.7.running",
		},
		{
			name: "wildcards", space: "*", pipe: ">", runID: 3, status: run.StatusFailed,
			wantRun:      "runyard.evt.%2A.run.%3E.3.failed",
			wantBlockRun: "runyard.evt.%2A.block_run.%3E.3.failed",
		},
		{
			name: "whitespace", space: "my space", pipe: "a\tb\r\nc", runID: 9, status: run.StatusQueued,
			wantRun:      "runyard.evt.my%20space.run.a%09b%0D%0Ac.9.queued",
			wantBlockRun: "runyard.evt.my%20space.block_run.a%09b%0D%0Ac.9.queued",
		},
		{
			name: "empty tokens", space: "", pipe: "", runID: 0, status: run.StatusInitial,
			wantRun:      "runyard.evt.%.run.%.0.initial",
			wantBlockRun: "runyard.evt.%.block_run.%.0.initial",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]string{
				tt.wantRun:      natsbus.RunEventSubject(tt.space, tt.pipe, tt.runID, tt.status),
				tt.wantBlockRun: natsbus.BlockRunEventSubject(tt.space, tt.pipe, tt.runID, tt.status),
			}
			for want, subj := range got {
				if subj != want {
					t.Errorf("subject = %q, want %q", subj, want)
				}
				toks := strings.Split(subj, ".")
				if len(toks) != 7 {
					t.Errorf("subject %q has %d tokens, want 7", subj, len(toks))
				}
				for _, tok := range toks {
					if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
						t.Errorf("subject %q has invalid token %q", subj, tok)
					}
				}
				if !strings.HasPrefix(subj, strings.TrimSuffix(natsbus.SubjectEvents, ">")) {
					t.Errorf("subject %q is outside the events stream's %q", subj, natsbus.SubjectEvents)
				}
			}
		})
	}
}

func TestCommandSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"command", natsbus.CommandSubject("pipeline_run.create"), "runyard.cmd.pipeline_run.create"},
		{"reply", natsbus.ReplySubject("abc123"), "runyard.reply.abc123"},
		{"sla missed", natsbus.RunSLAMissedSubject("default", "etl.daily", 42), "runyard.evt.default.run.etl%2Edaily.42.sla_missed"},
		{"comment", natsbus.CommentEventSubject("default", "etl", 42, "created"), "runyard.evt.default.comment.etl.42.created"},
		{"sync", natsbus.SyncEventSubject("default", "con_1", "job.7", "completed"), "runyard.evt.default.sync.con_1.job%2E7.completed"},
		{"pipeline updated", natsbus.PipelineUpdatedSubject("default", "etl"), "runyard.evt.default.pipeline.etl.-.updated"},
		{"space filter", natsbus.SpaceEventsFilter("team-a"), "runyard.evt.team-a.>"},
		{"percent escaped", natsbus.EventToken("50%"), "50%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("subject = %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseEventSubject(t *testing.T) {
	t.Parallel()
	s, ok := natsbus.ParseEventSubject(natsbus.BlockRunEventSubject("team-a", "dag.v2", 17, run.StatusRunning))
	if !ok || s.Space != "team-a" || s.Kind != natsbus.EventKindBlockRun || s.Pipeline() != natsbus.EventToken("dag.v2") || s.RunID() != "17" || s.C != "running" {
		t.Fatalf("parsed %+v, %v", s, ok)
	}
	s, ok = natsbus.ParseEventSubject(natsbus.SyncEventSubject("a", "c", "j", "failed"))
	if !ok || s.Pipeline() != "" || s.RunID() != "" {
		t.Fatalf("a sync event names no pipeline or run: %+v", s)
	}
	for _, bad := range []string{"runyard.cmd.x.y.z.a.b", "runyard.evt.a.b", "runyard.evt.a.b.c.d.e.f"} {
		if _, ok := natsbus.ParseEventSubject(bad); ok {
			t.Errorf("%q parsed as an event subject", bad)
		}
	}
}
