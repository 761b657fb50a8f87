package comment

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/validation"
)

func TestValidateBodyCountsCharactersNotBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"empty", "", false},
		{"one", "x", true},
		{"max ascii", strings.Repeat("a", MaxBodyLength), true},
		{"max multibyte", strings.Repeat("é", MaxBodyLength), true},
		{"over", strings.Repeat("a", MaxBodyLength+1), false},
	} {
		err := ValidateBody("body", NormalizeBody(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		var ve validation.Errors
		if err != nil && (!errors.As(err, &ve) || ve[0].Field != "body") {
			t.Errorf("%s: error %v does not name the field", tc.name, err)
		}
	}
	if got := NormalizeBody("  \n hi \t"); got != "hi" {
		t.Errorf("NormalizeBody = %q", got)
	}
}

func TestEditIgnoresRedeliveredAndStaleCommands(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Comment{ID: IDFor("c1"), Body: "first", CommandID: "c1", CreatedAt: t0, UpdatedAt: t0}

	if err := c.Edit("c2", t0.Add(2*time.Second), "second"); err != nil || c.Body != "second" {
		t.Fatalf("edit: err %v, body %q", err, c.Body)
	}
	if err := c.Edit("c2", t0.Add(2*time.Second), "second"); !errors.Is(err, ErrNoChange) {
		t.Errorf("redelivered edit: err %v, want ErrNoChange", err)
	}
	if err := c.Edit("c3", t0.Add(time.Second), "older"); !errors.Is(err, ErrNoChange) || c.Body != "second" {
		t.Errorf("stale edit: err %v, body %q", err, c.Body)
	}
	if IDFor("c1") == IDFor("c2") {
		t.Error("two commands name the same comment")
	}
}
