// Package access is Runyard's tenancy and access model: spaces (the unit every resource lives
// in), users (whom API keys belong to), memberships (a user's role in a space), teams (named
// groups of a space that own pipelines) and watches (a user following a pipeline). It holds
// the records and the rules that make them valid; stores keep them and the gateway enforces
// them.
package access

import (
	"crypto/rand"
	"encoding/base32"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runyard/runyard/libs/validation"
)

// Role is a user's role in a space. Roles are ordered: each grants what the ones below it do.
type Role string

// Roles, lowest first. Viewer reads, editor also writes the space's resources, admin also
// manages the space's members.
const (
	RoleViewer Role = "viewer"
	RoleEditor Role = "editor"
	RoleAdmin  Role = "admin"
)

// Roles lists the valid roles, lowest first.
var Roles = []Role{RoleViewer, RoleEditor, RoleAdmin}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r grants what min does. An invalid role (the empty role of a
// non-member included) grants nothing.
func (r Role) AtLeast(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// BootstrapAdminID is the id of the global admin user the bootstrap admin API key belongs to.
// It is fixed rather than random so that every gateway process starting at once creates the
// same user (the second creation is a harmless duplicate), and so that API keys stored before
// keys had users can be given to it.
const BootstrapAdminID = "usr_admin"

// BootstrapAdminUsername is the username of the bootstrap admin user.
const BootstrapAdminUsername = "admin"

// Length limits.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
)

var (
	slugPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
	usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}$`)
)

// ValidSlug reports whether s is a well-formed space slug.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// SlugRule describes a valid slug, for error messages.
const SlugRule = "must be 2-63 of lowercase letters, digits and '-', starting with a letter or digit"

// Space is a tenant: every pipeline, schedule, run, backfill and team belongs to one.
type Space struct {
	Slug      string    `json:"slug" bson:"_id"`
	Name      string    `json:"name" bson:"name"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// Normalize trims the space's name.
func (s *Space) Normalize() { s.Name = strings.TrimSpace(s.Name) }

// Validate checks the space; field errors are named under prefix ("" for top-level fields).
func (s *Space) Validate(prefix string) error {
	var errs validation.Errors
	if !ValidSlug(s.Slug) {
		errs.Add(field(prefix, "slug"), SlugRule)
	}
	checkName(&errs, field(prefix, "name"), s.Name, true)
	return errs.Err()
}

// User is a person or a service account. API keys belong to users, and act with their
// rights: Admin (a global admin) is admin in every space, others have the roles of their
// memberships.
type User struct {
	ID        string    `json:"id" bson:"_id"`
	Username  string    `json:"username" bson:"username"`
	Name      string    `json:"name" bson:"name"`
	Admin     bool      `json:"admin" bson:"admin"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
}

// Normalize fills defaults: a user without a name is called by its username.
func (u *User) Normalize() {
	u.Name = strings.TrimSpace(u.Name)
	if u.Name == "" {
		u.Name = u.Username
	}
}

// Validate checks the user.
func (u *User) Validate(prefix string) error {
	var errs validation.Errors
	if !usernamePattern.MatchString(u.Username) {
		errs.Add(field(prefix, "username"), "must be 2-63 of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	checkName(&errs, field(prefix, "name"), u.Name, false)
	return errs.Err()
}

// Membership gives a user a role in a space.
type Membership struct {
	Space     string    `json:"space" bson:"space"`
	UserID    string    `json:"user_id" bson:"user_id"`
	Role      Role      `json:"role" bson:"role"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// ValidateRole checks a role given in a request.
func ValidateRole(fieldName string, r Role) error {
	if !r.Valid() {
		return validation.New(fieldName, "must be one of viewer, editor, admin")
	}
	return nil
}

// Team is a named group of a space; pipelines name their owning team. Names are unique in a
// space.
type Team struct {
	ID          string    `json:"id" bson:"_id"`
	Space       string    `json:"space" bson:"space"`
	Name        string    `json:"name" bson:"name"`
	Description string    `json:"description" bson:"description"`
	CreatedAt   time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt   time.Time `json:"updated_at" bson:"updated_at"`
	Version     int64     `json:"version" bson:"version"`
}

// Normalize trims the team's text fields.
func (t *Team) Normalize() {
	t.Name = strings.TrimSpace(t.Name)
	t.Description = strings.TrimSpace(t.Description)
}

// Validate checks the team.
func (t *Team) Validate(prefix string) error {
	var errs validation.Errors
	checkName(&errs, field(prefix, "name"), t.Name, true)
	if utf8.RuneCountInString(t.Description) > MaxDescriptionLength {
		errs.Add(field(prefix, "description"), "must be at most %d characters", MaxDescriptionLength)
	}
	return errs.Err()
}

// Watch records that a user watches a pipeline of a space.
type Watch struct {
	Space        string    `json:"space" bson:"space"`
	PipelineUUID string    `json:"pipeline_uuid" bson:"pipeline_uuid"`
	UserID       string    `json:"user_id" bson:"user_id"`
	CreatedAt    time.Time `json:"created_at" bson:"created_at"`
}

// NewUserID, NewTeamID and NewKeyID return fresh public ids. The prefix tells what an id
// names when it shows up in a log or a URL; 80 random bits make them unguessable, so an id
// seen in one space says nothing about others.
func NewUserID() string { return newID("usr_") }

// NewTeamID returns a fresh team id.
func NewTeamID() string { return newID("team_") }

// NewKeyID returns a fresh public API key id (not the key's value).
func NewKeyID() string { return newID("key_") }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + idEncoding.EncodeToString(b[:])
}

func field(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func checkName(errs *validation.Errors, fieldName, v string, required bool) {
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && required:
		errs.Add(fieldName, "is required")
	case n > MaxNameLength:
		errs.Add(fieldName, "must be at most %d characters", MaxNameLength)
	}
}
