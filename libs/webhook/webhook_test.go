package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/netguard"
	"github.com/runyard/runyard/libs/validation"
	"github.com/runyard/runyard/libs/webhook"
)

func TestSignMatchesTheDocumentedRecipe(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"pipeline_run.status_changed","id":"e1"}`)
	const secret, ts = "whsec_test_secret_value", int64(1764590000)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(fmt.Sprintf("%d.%s", ts, body)))
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	if got := webhook.Sign(secret, ts, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	now := time.Unix(ts, 0).Add(30 * time.Second)
	if err := webhook.Verify(secret, want, fmt.Sprint(ts), body, now, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other secret": webhook.Verify("whsec_other_secret_val", want, fmt.Sprint(ts), body, now, 5*time.Minute),
		"other body":   webhook.Verify(secret, want, fmt.Sprint(ts), append(body, ' '), now, 5*time.Minute),
		"other time":   webhook.Verify(secret, want, fmt.Sprint(ts+1), body, now, 5*time.Minute),
		"stale":        webhook.Verify(secret, want, fmt.Sprint(ts), body, now.Add(time.Hour), 5*time.Minute),
		"garbage":      webhook.Verify(secret, want, "yesterday", body, now, 5*time.Minute),
	} {
		if !errors.Is(err, webhook.ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := webhook.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := webhook.Backoff(40); got != 5*time.Minute {
		t.Errorf("Backoff(40) = %s, want the 5m cap", got)
	}
}

func TestFailGivesUpAtTheHorizon(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	d := &webhook.Delivery{Status: webhook.StatusPending, CreatedAt: created, GiveUpAt: created.Add(10 * time.Second)}
	now := created
	var attempts []time.Time
	for d.Status != webhook.StatusFailed {
		attempts = append(attempts, now)
		d.Attempts++
		d.Fail(now, 503, "503 Service Unavailable")
		if d.Status == webhook.StatusRetrying {
			now = *d.NextAttemptAt
		}
		if len(attempts) > 10 {
			t.Fatal("never gave up")
		}
	}
	// 0, 1, 3, 7 s; the next would be at 15 s, past the 10 s horizon.
	if len(attempts) != 4 || !attempts[3].Equal(created.Add(7*time.Second)) || d.NextAttemptAt != nil || d.LastError == "" || d.ResponseCode != 503 {
		t.Fatalf("attempts %v, delivery %+v", attempts, d)
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	after := created.Add(time.Minute)
	s := webhook.Subscription{Active: true, CreatedAt: created, EventTypes: []string{"pipeline_run.status_changed"}, PipelineIDs: []string{"etl"}}
	cases := []struct {
		typ, pipeline string
		at            time.Time
		want          bool
	}{
		{"pipeline_run.status_changed", "etl", after, true},
		{"block_run.status_changed", "etl", after, false},
		{"pipeline_run.status_changed", "other", after, false},
		{"pipeline_run.status_changed", "", after, false},
		{"pipeline_run.status_changed", "etl", created.Add(-time.Hour), false},
	}
	for _, tc := range cases {
		if got := s.Matches(tc.typ, tc.pipeline, tc.at); got != tc.want {
			t.Errorf("Matches(%s, %q, %s) = %v", tc.typ, tc.pipeline, tc.at, got)
		}
	}
	all := webhook.Subscription{Active: true, CreatedAt: created}
	if !all.Matches("comment.created", "", after) {
		t.Error("a subscription without filters misses an event")
	}
	all.Active = false
	if all.Matches("comment.created", "", after) {
		t.Error("an inactive subscription matches")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	fields := func(err error) string {
		var ve validation.Errors
		if !errors.As(err, &ve) {
			return fmt.Sprint(err)
		}
		var out []string
		for _, fe := range ve {
			out = append(out, fe.Field)
		}
		return strings.Join(out, ",")
	}
	strict := netguard.Guard{}
	ok := webhook.Subscription{URL: "https://hooks.example.com/runyard?x=1", EventTypes: []string{"sync.failed"}, PipelineIDs: []string{"etl"}}
	if err := ok.Validate(strict); err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"":                                    "url",
		"ftp://hooks.example.com/":            "url",
		"https://user:pw@hooks.example.com/":  "url",
		"https:///path":                       "url",
		"http://169.254.169.254/latest/":      "url",
		"http://metadata.google.internal/":    "url",
		"http://[fd00:ec2::254]/":             "url",
		"http://127.0.0.1:8080/hook":          "url",
		"http://localhost/hook":               "url",
		"hooks.example.com/no-scheme":         "url",
		"https://hooks.example.com/#fragment": "url",
	} {
		s := ok
		s.URL = raw
		if got := fields(s.Validate(strict)); got != want {
			t.Errorf("url %q: fields %q, want %q", raw, got, want)
		}
	}
	loopback := ok
	loopback.URL = "http://127.0.0.1:8080/hook"
	if err := loopback.Validate(netguard.Guard{AllowPrivate: true}); err != nil {
		t.Errorf("loopback with private allowed: %v", err)
	}
	bad := ok
	bad.EventTypes = []string{"sync.failed", "run.exploded"}
	bad.PipelineIDs = []string{"etl", ""}
	bad.Description = strings.Repeat("d", webhook.MaxDescriptionLength+1)
	if got := fields(bad.Validate(strict)); got != "event_types[1],pipeline_ids[1],description" {
		t.Errorf("fields %q", got)
	}
	if err := webhook.ValidateSecret("short"); fields(err) != "secret" {
		t.Errorf("short secret: %v", err)
	}
	if err := webhook.ValidateSecret("has a space in it ok"); fields(err) != "secret" {
		t.Errorf("secret with spaces: %v", err)
	}
	if s := webhook.NewSecret(); webhook.ValidateSecret(s) != nil || !strings.HasPrefix(s, "whsec_") {
		t.Errorf("generated secret %q", s)
	}
	if webhook.DeliveryID("whk_a", "e1") != webhook.DeliveryID("whk_a", "e1") || webhook.DeliveryID("whk_a", "e1") == webhook.DeliveryID("whk_b", "e1") {
		t.Error("delivery ids are not derived from subscription and event")
	}
}
