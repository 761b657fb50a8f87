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
		name          string
		space, pipe   string
		runID         int64
		status        run.Status
		wantRun       string
		wantBlockRun  string
		wantSanitized bool
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
			wantRun:      "runyard.evt.acme_prod.run.a_b_c.7.running",
			wantBlockRun: "runyard.evt.acme_prod.block_run.a_b_c.7.running",
		},
		{
			name: "wildcards", space: "*", pipe: ">", runID: 3, status: run.StatusFailed,
			wantRun:      "runyard.evt._.run._.3.failed",
			wantBlockRun: "runyard.evt._.block_run._.3.failed",
		},
		{
			name: "whitespace", space: "my space", pipe: "a\tb\r\nc", runID: 9, status: run.StatusQueued,
			wantRun:      "runyard.evt.my_space.run.a_b__c.9.queued",
			wantBlockRun: "runyard.evt.my_space.block_run.a_b__c.9.queued",
		},
		{
			name: "empty tokens", space: "", pipe: "", runID: 0, status: run.StatusInitial,
			wantRun:      "runyard.evt._.run._.0.initial",
			wantBlockRun: "runyard.evt._.block_run._.0.initial",
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
		{"sla missed", natsbus.RunSLAMissedSubject("default", "etl.daily", 42), "runyard.evt.default.run.etl_daily.42.sla_missed"},
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
