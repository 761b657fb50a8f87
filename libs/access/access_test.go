package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/runyard/runyard/libs/validation"
)

func TestRolesAreOrdered(t *testing.T) {
	for _, c := range []struct {
		r, min Role
		want   bool
	}{
		{RoleViewer, RoleViewer, true}, {RoleViewer, RoleEditor, false}, {RoleViewer, RoleAdmin, false},
		{RoleEditor, RoleViewer, true}, {RoleEditor, RoleEditor, true}, {RoleEditor, RoleAdmin, false},
		{RoleAdmin, RoleViewer, true}, {RoleAdmin, RoleEditor, true}, {RoleAdmin, RoleAdmin, true},
		{"", RoleViewer, false}, {"owner", RoleViewer, false},
	} {
		if got := c.r.AtLeast(c.min); got != c.want {
			t.Errorf("%q.AtLeast(%q) = %v, want %v", c.r, c.min, got, c.want)
		}
	}
}

// fields returns the fields err names, in order.
func fields(err error) string {
	var ve validation.Errors
	if !errors.As(err, &ve) {
		return ""
	}
	var out []string
	for _, fe := range ve {
		out = append(out, fe.Field)
	}
	return strings.Join(out, ",")
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("x", MaxNameLength+1)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"good space", (&Space{Slug: "finance-2", Name: "Finance"}).Validate(""), ""},
		{"one-letter slug", (&Space{Slug: "f", Name: "F"}).Validate(""), "slug"},
		{"upper-case slug", (&Space{Slug: "Finance", Name: "F"}).Validate(""), "slug"},
		{"slug starting with -", (&Space{Slug: "-fin", Name: "F"}).Validate(""), "slug"},
		{"slug of 64", (&Space{Slug: strings.Repeat("a", 64), Name: "F"}).Validate(""), "slug"},
		{"no name", (&Space{Slug: "fin"}).Validate("space"), "space.name"},
		{"long name", (&Space{Slug: "fin", Name: long}).Validate(""), "name"},
		{"good user", (&User{Username: "jane.doe_2", Name: "Jane"}).Validate(""), ""},
		{"bad username", (&User{Username: "Jane Doe"}).Validate(""), "username"},
		{"bad team", (&Team{Name: "", Description: strings.Repeat("d", MaxDescriptionLength+1)}).Validate(""), "name,description"},
		{"bad role", ValidateRole("role", "owner"), "role"},
		{"good role", ValidateRole("role", RoleEditor), ""},
	} {
		if got := fields(c.err); got != c.want {
			t.Errorf("%s: fields %q, want %q (%v)", c.name, got, c.want, c.err)
		}
	}
}

func TestIDs(t *testing.T) {
	a, b := NewUserID(), NewUserID()
	if a == b || !strings.HasPrefix(a, "usr_") || len(a) != len("usr_")+16 {
		t.Fatalf("user ids %q %q", a, b)
	}
	if !strings.HasPrefix(NewTeamID(), "team_") || !strings.HasPrefix(NewKeyID(), "key_") {
		t.Fatal("id prefixes")
	}
}
