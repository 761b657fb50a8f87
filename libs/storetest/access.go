package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// AccessStore is what the suite exercises of tenancy and access records, part of Store.
type AccessStore interface {
	// CreateSpace: a space with the same slug is ErrDuplicate.
	CreateSpace(ctx context.Context, sp *access.Space) error
	GetSpace(ctx context.Context, slug string) (*access.Space, error)
	// GetSpaces returns the spaces among slugs that exist, by slug.
	GetSpaces(ctx context.Context, slugs []string) (map[string]*access.Space, error)
	// ListSpaces orders by slug.
	ListSpaces(ctx context.Context, pg store.Page) ([]access.Space, int64, error)

	// CreateUser: a user with the same id or username is ErrDuplicate.
	CreateUser(ctx context.Context, u *access.User) error
	GetUser(ctx context.Context, id string) (*access.User, error)
	// GetUsers returns the users among ids that exist, by id.
	GetUsers(ctx context.Context, ids []string) (map[string]*access.User, error)

	// PutMembership creates the membership or changes its role and UpdatedAt; it sets
	// m.CreatedAt to the stored creation time.
	PutMembership(ctx context.Context, m *access.Membership) error
	GetMembership(ctx context.Context, space, userID string) (*access.Membership, error)
	DeleteMembership(ctx context.Context, space, userID string) error
	// ListSpaceMembers orders by user id.
	ListSpaceMembers(ctx context.Context, space string, pg store.Page) ([]access.Membership, int64, error)
	// ListUserMemberships orders by space.
	ListUserMemberships(ctx context.Context, userID string, pg store.Page) ([]access.Membership, int64, error)

	// ListAPIKeys lists a user's keys, oldest first.
	ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error)
	// DeleteAPIKey removes the key of userID whose public id is keyID; another user's key is
	// ErrNotFound.
	DeleteAPIKey(ctx context.Context, userID, keyID string) error
	// TouchAPIKey records when a key was last used; a missing key is ErrNotFound (never
	// recreated, so a touch racing a revocation cannot bring the key back).
	TouchAPIKey(ctx context.Context, hash string, at time.Time) error

	// CreateTeam: a team with the same name in the space is ErrDuplicate.
	CreateTeam(ctx context.Context, t *access.Team) error
	GetTeam(ctx context.Context, space, id string) (*access.Team, error)
	// ListTeams orders by name.
	ListTeams(ctx context.Context, space string, pg store.Page) ([]access.Team, int64, error)
	// UpdateTeam applies fn and writes the result if fn returns nil; a rename onto another
	// team's name is ErrDuplicate.
	UpdateTeam(ctx context.Context, space, id string, fn func(*access.Team) error) (*access.Team, error)
	DeleteTeam(ctx context.Context, space, id string) error

	// PutWatch is idempotent.
	PutWatch(ctx context.Context, w access.Watch) error
	// DeleteWatch: a pipeline the user does not watch is ErrNotFound.
	DeleteWatch(ctx context.Context, space, pipelineUUID, userID string) error
	// ListWatchedPipelines returns the uuids of the pipelines userID watches in space, in order.
	ListWatchedPipelines(ctx context.Context, space, userID string) ([]string, error)
}

func testSpacesAndUsers(t *testing.T, s Store) {
	c := ctx(t)
	now := store.Now()
	for _, slug := range []string{"sales", "analytics", "finance"} {
		must(t, s.CreateSpace(c, &access.Space{Slug: slug, Name: "The " + slug, CreatedAt: now, UpdatedAt: now}))
	}
	wantErr(t, s.CreateSpace(c, &access.Space{Slug: "finance", Name: "again", CreatedAt: now, UpdatedAt: now}), store.ErrDuplicate)
	sp, err := s.GetSpace(c, "finance")
	must(t, err)
	if sp.Name != "The finance" || !sp.CreatedAt.Equal(now) || !sp.UpdatedAt.Equal(now) {
		t.Fatalf("space read back wrong: %+v", sp)
	}
	_, err = s.GetSpace(c, "nope")
	wantErr(t, err, store.ErrNotFound)
	list, total, err := s.ListSpaces(c, store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 3 || len(list) != 2 || list[0].Slug != "finance" || list[1].Slug != "sales" {
		t.Fatalf("spaces = %d %+v", total, list)
	}
	m, err := s.GetSpaces(c, []string{"sales", "nope", "analytics"})
	must(t, err)
	if len(m) != 2 || m["sales"].Name != "The sales" || m["analytics"] == nil {
		t.Fatalf("GetSpaces = %v", m)
	}

	must(t, s.CreateUser(c, &access.User{ID: "usr_a", Username: "alice", Name: "Alice", Admin: true, CreatedAt: now}))
	must(t, s.CreateUser(c, &access.User{ID: "usr_b", Username: "bob", Name: "Bob", CreatedAt: now}))
	wantErr(t, s.CreateUser(c, &access.User{ID: "usr_c", Username: "alice", CreatedAt: now}), store.ErrDuplicate)
	wantErr(t, s.CreateUser(c, &access.User{ID: "usr_a", Username: "carol", CreatedAt: now}), store.ErrDuplicate)
	u, err := s.GetUser(c, "usr_a")
	must(t, err)
	if u.Username != "alice" || u.Name != "Alice" || !u.Admin || !u.CreatedAt.Equal(now) {
		t.Fatalf("user read back wrong: %+v", u)
	}
	_, err = s.GetUser(c, "usr_c")
	wantErr(t, err, store.ErrNotFound)
	users, err := s.GetUsers(c, []string{"usr_b", "usr_zz"})
	must(t, err)
	if len(users) != 1 || users["usr_b"].Username != "bob" || users["usr_b"].Admin {
		t.Fatalf("GetUsers = %v", users)
	}
}

func testMemberships(t *testing.T, s Store) {
	c := ctx(t)
	t0 := store.Now().Add(-time.Hour)
	put := func(space, user string, role access.Role, at time.Time) *access.Membership {
		t.Helper()
		m := &access.Membership{Space: space, UserID: user, Role: role, CreatedAt: at, UpdatedAt: at}
		must(t, s.PutMembership(c, m))
		return m
	}
	put("s1", "usr_b", access.RoleViewer, t0)
	put("s1", "usr_a", access.RoleAdmin, t0)
	put("s2", "usr_a", access.RoleEditor, t0)
	put("s1", "usr_c", access.RoleEditor, t0)
	// Changing a role keeps the creation time.
	t1 := t0.Add(time.Minute)
	m := put("s1", "usr_b", access.RoleEditor, t1)
	if !m.CreatedAt.Equal(t0) {
		t.Fatalf("an upsert must keep the creation time: created %v, want %v", m.CreatedAt, t0)
	}
	got, err := s.GetMembership(c, "s1", "usr_b")
	must(t, err)
	if got.Role != access.RoleEditor || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t1) || got.Space != "s1" || got.UserID != "usr_b" {
		t.Fatalf("membership read back wrong: %+v", got)
	}
	_, err = s.GetMembership(c, "s2", "usr_b")
	wantErr(t, err, store.ErrNotFound)

	members, total, err := s.ListSpaceMembers(c, "s1", store.Page{Limit: 2, Offset: 1})
	must(t, err)
	if total != 3 || len(members) != 2 || members[0].UserID != "usr_b" || members[1].UserID != "usr_c" {
		t.Fatalf("members of s1 = %d %+v", total, members)
	}
	mine, total, err := s.ListUserMemberships(c, "usr_a", store.Page{Limit: 10})
	must(t, err)
	if total != 2 || len(mine) != 2 || mine[0].Space != "s1" || mine[0].Role != access.RoleAdmin || mine[1].Space != "s2" {
		t.Fatalf("memberships of usr_a = %d %+v", total, mine)
	}

	must(t, s.DeleteMembership(c, "s1", "usr_b"))
	wantErr(t, s.DeleteMembership(c, "s1", "usr_b"), store.ErrNotFound)
	_, err = s.GetMembership(c, "s1", "usr_b")
	wantErr(t, err, store.ErrNotFound)
	if _, total, err = s.ListSpaceMembers(c, "s1", store.Page{}); err != nil || total != 2 {
		t.Fatalf("after delete: %d members (%v), want 2", total, err)
	}

	// Concurrent puts of one membership leave exactly one.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := access.Roles[i%len(access.Roles)]
			if err := s.PutMembership(c, &access.Membership{Space: "s3", UserID: "usr_x", Role: role, CreatedAt: t0, UpdatedAt: t1}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, total, err := s.ListSpaceMembers(c, "s3", store.Page{}); err != nil || total != 1 {
		t.Fatalf("concurrent puts left %d memberships (%v), want 1", total, err)
	}
}

func testUserAPIKeys(t *testing.T, s Store) {
	c := ctx(t)
	t0 := store.Now().Add(-time.Hour)
	for i, k := range []store.APIKey{
		{Hash: "h2", ID: "key_2", UserID: "usr_a", Name: "second", CreatedAt: t0.Add(time.Second)},
		{Hash: "h1", ID: "key_1", UserID: "usr_a", Name: "first", CreatedAt: t0},
		{Hash: "h3", ID: "key_3", UserID: "usr_b", Name: "bob's", CreatedAt: t0},
	} {
		must(t, s.PutAPIKey(c, k))
		if n, err := s.CountAPIKeys(c); err != nil || n != int64(i+1) {
			t.Fatalf("count = %d (%v), want %d", n, err, i+1)
		}
	}
	keys, err := s.ListAPIKeys(c, "usr_a")
	must(t, err)
	if len(keys) != 2 || keys[0].ID != "key_1" || keys[1].ID != "key_2" || keys[0].Hash != "h1" || keys[0].Name != "first" || !keys[0].CreatedAt.Equal(t0) || keys[0].LastUsedAt != nil {
		t.Fatalf("keys of usr_a = %+v", keys)
	}
	if keys, err := s.ListAPIKeys(c, "usr_none"); err != nil || len(keys) != 0 {
		t.Fatalf("keys of a user without keys = %v (%v)", keys, err)
	}

	used := t0.Add(time.Minute)
	must(t, s.TouchAPIKey(c, "h1", used))
	k, err := s.GetAPIKey(c, "h1")
	must(t, err)
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(used) || k.UserID != "usr_a" || k.ID != "key_1" {
		t.Fatalf("touched key = %+v", k)
	}
	wantErr(t, s.TouchAPIKey(c, "h-missing", used), store.ErrNotFound)

	// Only the owner's key of that id goes.
	wantErr(t, s.DeleteAPIKey(c, "usr_b", "key_1"), store.ErrNotFound)
	must(t, s.DeleteAPIKey(c, "usr_a", "key_1"))
	wantErr(t, s.DeleteAPIKey(c, "usr_a", "key_1"), store.ErrNotFound)
	_, err = s.GetAPIKey(c, "h1")
	wantErr(t, err, store.ErrNotFound)
	// A touch after the revocation does not bring the key back.
	wantErr(t, s.TouchAPIKey(c, "h1", used), store.ErrNotFound)
	if _, err := s.GetAPIKey(c, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a touched revoked key is back: %v", err)
	}
	keys, err = s.ListAPIKeys(c, "usr_a")
	must(t, err)
	if len(keys) != 1 || keys[0].ID != "key_2" {
		t.Fatalf("keys of usr_a after revocation = %+v", keys)
	}
}

func testTeams(t *testing.T, s Store) {
	c := ctx(t)
	now := store.Now()
	mk := func(id, space, name string) *access.Team {
		return &access.Team{ID: id, Space: space, Name: name, Description: "about " + name, CreatedAt: now, UpdatedAt: now}
	}
	must(t, s.CreateTeam(c, mk("team_1", "s1", "platform")))
	must(t, s.CreateTeam(c, mk("team_2", "s1", "data")))
	must(t, s.CreateTeam(c, mk("team_3", "s1", "growth")))
	must(t, s.CreateTeam(c, mk("team_4", "s2", "platform"))) // the same name in another space
	wantErr(t, s.CreateTeam(c, mk("team_5", "s1", "platform")), store.ErrDuplicate)

	tm, err := s.GetTeam(c, "s1", "team_1")
	must(t, err)
	if tm.Name != "platform" || tm.Description != "about platform" || tm.Space != "s1" || !tm.CreatedAt.Equal(now) {
		t.Fatalf("team read back wrong: %+v", tm)
	}
	_, err = s.GetTeam(c, "s2", "team_1")
	wantErr(t, err, store.ErrNotFound)

	list, total, err := s.ListTeams(c, "s1", store.Page{Limit: 2})
	must(t, err)
	if total != 3 || len(list) != 2 || list[0].Name != "data" || list[1].Name != "growth" {
		t.Fatalf("teams of s1 = %d %+v", total, list)
	}

	up, err := s.UpdateTeam(c, "s1", "team_2", func(t *access.Team) error { t.Name, t.Description = "data-eng", "renamed"; return nil })
	must(t, err)
	if up.Name != "data-eng" || up.Version != 1 || up.UpdatedAt.Before(now) {
		t.Fatalf("updated team = %+v", up)
	}
	_, err = s.UpdateTeam(c, "s1", "team_2", func(t *access.Team) error { t.Name = "growth"; return nil })
	wantErr(t, err, store.ErrDuplicate)
	sentinel := errors.New("refused")
	_, err = s.UpdateTeam(c, "s1", "team_2", func(t *access.Team) error { t.Name = "lost"; return sentinel })
	wantErr(t, err, sentinel)
	_, err = s.UpdateTeam(c, "s2", "team_2", func(*access.Team) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	tm, err = s.GetTeam(c, "s1", "team_2")
	must(t, err)
	if tm.Name != "data-eng" || tm.Description != "renamed" {
		t.Fatalf("refused updates were written: %+v", tm)
	}
	// The old name is free again.
	must(t, s.CreateTeam(c, mk("team_6", "s1", "data")))

	wantErr(t, s.DeleteTeam(c, "s2", "team_1"), store.ErrNotFound)
	must(t, s.DeleteTeam(c, "s1", "team_1"))
	wantErr(t, s.DeleteTeam(c, "s1", "team_1"), store.ErrNotFound)
	if _, total, err = s.ListTeams(c, "s1", store.Page{}); err != nil || total != 3 {
		t.Fatalf("teams of s1 after delete: %d (%v), want 3", total, err)
	}
}

func testWatches(t *testing.T, s Store) {
	c := ctx(t)
	now := store.Now()
	for _, w := range []access.Watch{
		{Space: "s1", PipelineUUID: "p3", UserID: "usr_a"},
		{Space: "s1", PipelineUUID: "p1", UserID: "usr_a"},
		{Space: "s1", PipelineUUID: "p1", UserID: "usr_a"}, // again: no change
		{Space: "s1", PipelineUUID: "p2", UserID: "usr_b"},
		{Space: "s2", PipelineUUID: "p9", UserID: "usr_a"},
	} {
		w.CreatedAt = now
		must(t, s.PutWatch(c, w))
	}
	got, err := s.ListWatchedPipelines(c, "s1", "usr_a")
	must(t, err)
	if fmt.Sprint(got) != "[p1 p3]" {
		t.Fatalf("watched by usr_a in s1 = %v, want [p1 p3]", got)
	}
	must(t, s.DeleteWatch(c, "s1", "p1", "usr_a"))
	wantErr(t, s.DeleteWatch(c, "s1", "p1", "usr_a"), store.ErrNotFound)
	got, err = s.ListWatchedPipelines(c, "s1", "usr_a")
	must(t, err)
	if fmt.Sprint(got) != "[p3]" {
		t.Fatalf("after unwatch = %v, want [p3]", got)
	}
	if got, err := s.ListWatchedPipelines(c, "s3", "usr_a"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("watched in an empty space = %#v (%v), want an empty list", got, err)
	}
}
