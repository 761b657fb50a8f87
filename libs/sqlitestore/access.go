package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// CreateSpace inserts sp; a space with the same slug is ErrDuplicate.
func (s *Store) CreateSpace(ctx context.Context, sp *access.Space) error {
	doc, err := encode(sp)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO spaces (slug, doc) VALUES (?, ?)`, sp.Slug, doc)
	return mapErr(err, "create space "+sp.Slug)
}

// GetSpace returns the space slug.
func (s *Store) GetSpace(ctx context.Context, slug string) (*access.Space, error) {
	return getDoc[access.Space](ctx, s.r, "get space "+slug, `SELECT doc FROM spaces WHERE slug = ?`, slug)
}

// GetSpaces returns the spaces among slugs that exist, by slug.
func (s *Store) GetSpaces(ctx context.Context, slugs []string) (map[string]*access.Space, error) {
	m := make(map[string]*access.Space, len(slugs))
	if len(slugs) == 0 {
		return m, nil
	}
	sps, err := listDocs[access.Space](ctx, s.r, "get spaces", `SELECT doc FROM spaces WHERE slug IN (`+placeholders(len(slugs))+`)`, stringArgs(slugs)...)
	if err != nil {
		return nil, err
	}
	for i := range sps {
		m[sps[i].Slug] = &sps[i]
	}
	return m, nil
}

const listSpacesQuery = `SELECT doc FROM spaces ORDER BY slug`

// ListSpaces returns a page of every space by slug, and their total count.
func (s *Store) ListSpaces(ctx context.Context, pg store.Page) ([]access.Space, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM spaces`).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count spaces")
	}
	sps, err := listDocs[access.Space](ctx, s.r, "list spaces", listSpacesQuery+limitClause(pg))
	return sps, total, err
}

// CreateUser inserts u; a user with the same id or username is ErrDuplicate.
func (s *Store) CreateUser(ctx context.Context, u *access.User) error {
	doc, err := encode(u)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO users (id, username, doc) VALUES (?, ?, ?)`, u.ID, u.Username, doc)
	return mapErr(err, "create user "+u.Username)
}

// GetUser returns the user id.
func (s *Store) GetUser(ctx context.Context, id string) (*access.User, error) {
	return getDoc[access.User](ctx, s.r, "get user "+id, `SELECT doc FROM users WHERE id = ?`, id)
}

// GetUsers returns the users among ids that exist, by id.
func (s *Store) GetUsers(ctx context.Context, ids []string) (map[string]*access.User, error) {
	m := make(map[string]*access.User, len(ids))
	if len(ids) == 0 {
		return m, nil
	}
	us, err := listDocs[access.User](ctx, s.r, "get users", `SELECT doc FROM users WHERE id IN (`+placeholders(len(ids))+`)`, stringArgs(ids)...)
	if err != nil {
		return nil, err
	}
	for i := range us {
		m[us[i].ID] = &us[i]
	}
	return m, nil
}

// PutMembership creates the membership or changes its role, keeping its creation time, which
// it writes back to m. One statement, so concurrent puts cannot make two.
func (s *Store) PutMembership(ctx context.Context, m *access.Membership) error {
	var created int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO memberships (space, user_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (space, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at
		RETURNING created_at`,
		m.Space, m.UserID, string(m.Role), m.CreatedAt.UnixMilli(), m.UpdatedAt.UnixMilli()).Scan(&created)
	if err != nil {
		return mapErr(err, fmt.Sprintf("put membership of %s in %s", m.UserID, m.Space))
	}
	m.CreatedAt = time.UnixMilli(created).UTC()
	return nil
}

const membershipColumns = `space, user_id, role, created_at, updated_at`

func scanMemberships(rows *sql.Rows, err error, what string) ([]access.Membership, error) {
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer rows.Close()
	out := []access.Membership{}
	for rows.Next() {
		var m access.Membership
		var role string
		var created, updated int64
		if err := rows.Scan(&m.Space, &m.UserID, &role, &created, &updated); err != nil {
			return nil, mapErr(err, what)
		}
		m.Role, m.CreatedAt, m.UpdatedAt = access.Role(role), time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		out = append(out, m)
	}
	return out, mapErr(rows.Err(), what)
}

// GetMembership returns userID's membership of space.
func (s *Store) GetMembership(ctx context.Context, space, userID string) (*access.Membership, error) {
	what := fmt.Sprintf("get membership of %s in %s", userID, space)
	rows, err := s.r.QueryContext(ctx, `SELECT `+membershipColumns+` FROM memberships WHERE space = ? AND user_id = ?`, space, userID)
	ms, err := scanMemberships(rows, err, what)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, mapErr(sql.ErrNoRows, what)
	}
	return &ms[0], nil
}

// DeleteMembership removes userID from space.
func (s *Store) DeleteMembership(ctx context.Context, space, userID string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM memberships WHERE space = ? AND user_id = ?`, space, userID))(
		fmt.Sprintf("delete membership of %s in %s", userID, space))
}

const (
	listSpaceMembersQuery    = `SELECT ` + membershipColumns + ` FROM memberships WHERE space = ? ORDER BY user_id`
	listUserMembershipsQuery = `SELECT ` + membershipColumns + ` FROM memberships WHERE user_id = ? ORDER BY space`
)

// ListSpaceMembers returns a page of the memberships of space by user id, and their count.
func (s *Store) ListSpaceMembers(ctx context.Context, space string, pg store.Page) ([]access.Membership, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE space = ?`, space).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count members of "+space)
	}
	rows, err := s.r.QueryContext(ctx, listSpaceMembersQuery+limitClause(pg), space)
	ms, err := scanMemberships(rows, err, "list members of "+space)
	return ms, total, err
}

// ListUserMemberships returns a page of userID's memberships by space, and their count.
func (s *Store) ListUserMemberships(ctx context.Context, userID string, pg store.Page) ([]access.Membership, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE user_id = ?`, userID).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count memberships of "+userID)
	}
	rows, err := s.r.QueryContext(ctx, listUserMembershipsQuery+limitClause(pg), userID)
	ms, err := scanMemberships(rows, err, "list memberships of "+userID)
	return ms, total, err
}

const listAPIKeysQuery = `SELECT doc FROM api_keys WHERE user_id = ? ORDER BY created_at, id`

// ListAPIKeys lists userID's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	return listDocs[store.APIKey](ctx, s.r, "list api keys of "+userID, listAPIKeysQuery, userID)
}

// DeleteAPIKey removes userID's key keyID.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, keyID string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID))(
		fmt.Sprintf("delete api key %s of %s", keyID, userID))
}

// TouchAPIKey records when the key hash was last used. A read-modify-write in one
// transaction: a key revoked meanwhile is not found, never written back.
func (s *Store) TouchAPIKey(ctx context.Context, hash string, at time.Time) error {
	_, err := update(ctx, s, "touch api key", `SELECT doc FROM api_keys WHERE hash = ?`, []any{hash},
		func(k *store.APIKey) error { k.LastUsedAt = &at; return nil },
		func(tx *sql.Tx, k *store.APIKey) error {
			doc, err := encode(k)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE api_keys SET doc = ? WHERE hash = ?`, doc, hash)
			return err
		})
	return err
}

// CreateTeam inserts t; a team with the same name in the space is ErrDuplicate.
func (s *Store) CreateTeam(ctx context.Context, t *access.Team) error {
	doc, err := encode(t)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO teams (id, space, name, version, doc) VALUES (?, ?, ?, ?, ?)`, t.ID, t.Space, t.Name, t.Version, doc)
	return mapErr(err, fmt.Sprintf("create team %q in %s", t.Name, t.Space))
}

// GetTeam returns the team id of space.
func (s *Store) GetTeam(ctx context.Context, space, id string) (*access.Team, error) {
	return getDoc[access.Team](ctx, s.r, "get team "+id, `SELECT doc FROM teams WHERE id = ? AND space = ?`, id, space)
}

const listTeamsQuery = `SELECT doc FROM teams WHERE space = ? ORDER BY name`

// ListTeams returns a page of the space's teams by name, and their count.
func (s *Store) ListTeams(ctx context.Context, space string, pg store.Page) ([]access.Team, int64, error) {
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM teams WHERE space = ?`, space).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count teams of "+space)
	}
	ts, err := listDocs[access.Team](ctx, s.r, "list teams of "+space, listTeamsQuery+limitClause(pg), space)
	return ts, total, err
}

// UpdateTeam applies fn to the stored team and writes the result if fn returns nil; a new
// name that another team of the space has is ErrDuplicate.
func (s *Store) UpdateTeam(ctx context.Context, space, id string, fn func(*access.Team) error) (*access.Team, error) {
	return update(ctx, s, "update team "+id, `SELECT doc FROM teams WHERE id = ? AND space = ?`, []any{id, space}, fn,
		func(tx *sql.Tx, t *access.Team) error {
			t.Version++
			t.UpdatedAt = now()
			doc, err := encode(t)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE teams SET name = ?, version = ?, doc = ? WHERE id = ?`, t.Name, t.Version, doc, id)
			return err
		})
}

// DeleteTeam removes the team id of space.
func (s *Store) DeleteTeam(ctx context.Context, space, id string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM teams WHERE id = ? AND space = ?`, id, space))("delete team " + id)
}

// PutWatch records that w.UserID watches w.PipelineUUID; watching again changes nothing.
func (s *Store) PutWatch(ctx context.Context, w access.Watch) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO watches (space, user_id, pipeline_uuid, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		w.Space, w.UserID, w.PipelineUUID, w.CreatedAt.UnixMilli())
	return mapErr(err, fmt.Sprintf("watch %s of %s", w.PipelineUUID, w.Space))
}

// DeleteWatch removes userID's watch of the pipeline.
func (s *Store) DeleteWatch(ctx context.Context, space, pipelineUUID, userID string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM watches WHERE space = ? AND user_id = ? AND pipeline_uuid = ?`, space, userID, pipelineUUID))(
		fmt.Sprintf("unwatch %s of %s", pipelineUUID, space))
}

const listWatchedQuery = `SELECT pipeline_uuid FROM watches WHERE space = ? AND user_id = ? ORDER BY pipeline_uuid`

// ListWatchedPipelines returns the uuids of the pipelines userID watches in space, in order.
func (s *Store) ListWatchedPipelines(ctx context.Context, space, userID string) ([]string, error) {
	what := "list watched pipelines of " + userID
	rows, err := s.r.QueryContext(ctx, listWatchedQuery, space, userID)
	if err != nil {
		return nil, mapErr(err, what)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, mapErr(err, what)
		}
		out = append(out, u)
	}
	return out, mapErr(rows.Err(), what)
}

func stringArgs(vs []string) []any {
	args := make([]any, len(vs))
	for i, v := range vs {
		args[i] = v
	}
	return args
}
