package schedule_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/runyard/runyard/libs/schedule"
	"github.com/runyard/runyard/libs/validation"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    schedule.Schedule
		check func(t *testing.T, s schedule.Schedule)
	}{
		{
			name: "defaults",
			in:   schedule.Schedule{Name: "  nightly  ", ScheduleInterval: " @daily "},
			check: func(t *testing.T, s schedule.Schedule) {
				if s.Name != "nightly" {
					t.Errorf("Name = %q, want nightly", s.Name)
				}
				if s.ScheduleInterval != "@daily" {
					t.Errorf("ScheduleInterval = %q, want @daily", s.ScheduleInterval)
				}
				if s.ScheduleType != schedule.TypeAPI {
					t.Errorf("ScheduleType = %q, want %q", s.ScheduleType, schedule.TypeAPI)
				}
				if s.Status != schedule.StatusInactive {
					t.Errorf("Status = %q, want %q", s.Status, schedule.StatusInactive)
				}
				if s.Variables == nil || len(s.Variables) != 0 {
					t.Errorf("Variables = %#v, want non-nil empty", s.Variables)
				}
				if s.Settings == nil || len(s.Settings) != 0 {
					t.Errorf("Settings = %#v, want non-nil empty", s.Settings)
				}
			},
		},
		{
			name: "values kept",
			in: schedule.Schedule{
				Name:         "hourly",
				ScheduleType: schedule.TypeTime,
				Status:       schedule.StatusActive,
				Variables:    map[string]any{"k": "v"},
				Settings:     map[string]any{"allow_blocks_to_fail": true},
			},
			check: func(t *testing.T, s schedule.Schedule) {
				if s.ScheduleType != schedule.TypeTime || s.Status != schedule.StatusActive {
					t.Errorf("ScheduleType, Status = %q, %q; want time, active", s.ScheduleType, s.Status)
				}
				if s.Variables["k"] != "v" || s.Settings["allow_blocks_to_fail"] != true {
					t.Errorf("Variables, Settings = %v, %v; want them kept", s.Variables, s.Settings)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.in
			s.Normalize()
			tt.check(t, s)
		})
	}
}

// wantErr is one expected field error: its exact field and a substring of its message.
type wantErr struct {
	field string
	msg   string
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(s *schedule.Schedule)
		want   []wantErr // nil means valid
	}{
		{name: "valid api schedule", modify: func(*schedule.Schedule) {}},
		{name: "valid event schedule", modify: func(s *schedule.Schedule) { s.ScheduleType = schedule.TypeEvent }},
		{name: "valid active schedule", modify: func(s *schedule.Schedule) { s.Status = schedule.StatusActive }},
		{name: "valid sla zero and positive", modify: func(s *schedule.Schedule) { s.SLA = 3600 }},
		{name: "valid cron */5 * * * *", modify: func(s *schedule.Schedule) {
			s.ScheduleType, s.ScheduleInterval = schedule.TypeTime, "*/5 * * * *"
		}},
		{name: "valid cron with ranges and lists", modify: func(s *schedule.Schedule) {
			s.ScheduleType, s.ScheduleInterval = schedule.TypeTime, "0 9-17 * * 1,3,5"
		}},
		{name: "valid preset @once", modify: timeSchedule("@once")},
		{name: "valid preset @hourly", modify: timeSchedule("@hourly")},
		{name: "valid preset @daily", modify: timeSchedule("@daily")},
		{name: "valid preset @weekly", modify: timeSchedule("@weekly")},
		{name: "valid preset @monthly", modify: timeSchedule("@monthly")},
		{name: "valid preset @always_on", modify: timeSchedule("@always_on")},
		{
			name:   "missing name",
			modify: func(s *schedule.Schedule) { s.Name = "" },
			want:   []wantErr{{"schedule.name", "required"}},
		},
		{
			name:   "blank name",
			modify: func(s *schedule.Schedule) { s.Name = "   " },
			want:   []wantErr{{"schedule.name", "required"}},
		},
		{
			name:   "name too long",
			modify: func(s *schedule.Schedule) { s.Name = strings.Repeat("n", 256) },
			want:   []wantErr{{"schedule.name", "255"}},
		},
		{
			name:   "bad type",
			modify: func(s *schedule.Schedule) { s.ScheduleType = "cron" },
			want:   []wantErr{{"schedule.schedule_type", "api, time, event"}},
		},
		{
			name:   "bad status",
			modify: func(s *schedule.Schedule) { s.Status = "paused" },
			want:   []wantErr{{"schedule.status", "active or inactive"}},
		},
		{
			name:   "cron with four fields",
			modify: timeSchedule("*/5 * * *"),
			want:   []wantErr{{"schedule.schedule_interval", "cron"}},
		},
		{
			name:   "cron with seven fields",
			modify: timeSchedule("0 0 */5 * * * *"),
			want:   []wantErr{{"schedule.schedule_interval", "cron"}},
		},
		{
			name:   "cron out of range",
			modify: timeSchedule("61 * * * *"),
			want:   []wantErr{{"schedule.schedule_interval", "cron"}},
		},
		{
			name:   "words",
			modify: timeSchedule("every five minutes"),
			want:   []wantErr{{"schedule.schedule_interval", "@once"}},
		},
		{
			name:   "unsupported descriptor",
			modify: timeSchedule("@yearly"),
			want:   []wantErr{{"schedule.schedule_interval", "cron"}},
		},
		{
			name:   "bad cron on an api schedule",
			modify: func(s *schedule.Schedule) { s.ScheduleInterval = "nope" },
			want:   []wantErr{{"schedule.schedule_interval", "cron"}},
		},
		{
			name:   "time schedule without interval",
			modify: timeSchedule(""),
			want:   []wantErr{{"schedule.schedule_interval", "required for a time schedule"}},
		},
		{
			name:   "negative sla",
			modify: func(s *schedule.Schedule) { s.SLA = -1 },
			want:   []wantErr{{"schedule.sla", "zero or more"}},
		},
		{
			name: "every problem is reported",
			modify: func(s *schedule.Schedule) {
				s.Name, s.ScheduleType, s.Status, s.SLA = "", "cron", "paused", -5
			},
			want: []wantErr{
				{"schedule.name", "required"},
				{"schedule.schedule_type", ""},
				{"schedule.status", ""},
				{"schedule.sla", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := schedule.Schedule{Name: "nightly", PipelineUUID: "etl"}
			s.Normalize()
			tt.modify(&s)
			s.Normalize()
			err := s.Validate("schedule")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Validate() = %v (%T), want validation.Errors", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() returned %d errors, want %d: %v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if errs[i].Field != w.field {
					t.Errorf("error %d: Field = %q, want %q", i, errs[i].Field, w.field)
				}
				if !strings.Contains(errs[i].Message, w.msg) {
					t.Errorf("error %d: Message = %q, want it to contain %q", i, errs[i].Message, w.msg)
				}
			}
		})
	}
}

func timeSchedule(interval string) func(s *schedule.Schedule) {
	return func(s *schedule.Schedule) {
		s.ScheduleType = schedule.TypeTime
		s.ScheduleInterval = interval
	}
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		tok := schedule.NewToken()
		if len(tok) != 32 {
			t.Fatalf("NewToken() = %q: %d characters, want 32", tok, len(tok))
		}
		if _, err := hex.DecodeString(tok); err != nil || strings.ToLower(tok) != tok {
			t.Fatalf("NewToken() = %q: not lower-case hex", tok)
		}
		if seen[tok] {
			t.Fatalf("NewToken() returned %q twice", tok)
		}
		seen[tok] = true
	}
}

func TestTokenMatches(t *testing.T) {
	t.Parallel()
	tok := schedule.NewToken()
	tests := []struct {
		name      string
		token     string // the schedule's
		presented string
		want      bool
	}{
		{"same token", tok, tok, true},
		{"other token", tok, schedule.NewToken(), false},
		{"empty presented", tok, "", false},
		{"prefix", tok, tok[:31], false},
		{"longer", tok, tok + "0", false},
		{"different case", tok, strings.ToUpper(tok), tok == strings.ToUpper(tok)},
		{"schedule without token, empty presented", "", "", false},
		{"schedule without token, token presented", "", tok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := schedule.Schedule{Token: tt.token}
			if got := s.TokenMatches(tt.presented); got != tt.want {
				t.Errorf("TokenMatches(%q) with token %q = %v, want %v", tt.presented, tt.token, got, tt.want)
			}
		})
	}
}
