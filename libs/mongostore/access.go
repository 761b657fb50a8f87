package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/store"
)

// Collections of tenancy and access records.
const (
	colSpaces      = "spaces"
	colUsers       = "users"
	colMemberships = "memberships"
	colTeams       = "teams"
	colWatches     = "watches"
)

// CreateSpace inserts sp; a space with the same slug is ErrDuplicate.
func (s *Store) CreateSpace(ctx context.Context, sp *access.Space) error {
	_, err := s.db.Collection(colSpaces).InsertOne(ctx, sp)
	return mapErr(err, "create space "+sp.Slug)
}

// GetSpace returns the space slug.
func (s *Store) GetSpace(ctx context.Context, slug string) (*access.Space, error) {
	var sp access.Space
	if err := s.db.Collection(colSpaces).FindOne(ctx, bson.M{"_id": slug}).Decode(&sp); err != nil {
		return nil, mapErr(err, "get space "+slug)
	}
	return &sp, nil
}

// GetSpaces returns the spaces among slugs that exist, by slug.
func (s *Store) GetSpaces(ctx context.Context, slugs []string) (map[string]*access.Space, error) {
	m := make(map[string]*access.Space, len(slugs))
	if len(slugs) == 0 {
		return m, nil
	}
	sps, err := findAll[access.Space](ctx, s.db.Collection(colSpaces), bson.M{"_id": bson.M{"$in": slugs}}, options.Find(), "spaces")
	if err != nil {
		return nil, err
	}
	for i := range sps {
		m[sps[i].Slug] = &sps[i]
	}
	return m, nil
}

// ListSpaces returns a page of every space by slug, and their total count.
func (s *Store) ListSpaces(ctx context.Context, pg store.Page) ([]access.Space, int64, error) {
	return findPage[access.Space](ctx, s.db.Collection(colSpaces), bson.M{}, bson.D{{Key: "_id", Value: 1}}, pg, "spaces")
}

// CreateUser inserts u; a user with the same id or username is ErrDuplicate.
func (s *Store) CreateUser(ctx context.Context, u *access.User) error {
	_, err := s.db.Collection(colUsers).InsertOne(ctx, u)
	return mapErr(err, "create user "+u.Username)
}

// GetUser returns the user id.
func (s *Store) GetUser(ctx context.Context, id string) (*access.User, error) {
	var u access.User
	if err := s.db.Collection(colUsers).FindOne(ctx, bson.M{"_id": id}).Decode(&u); err != nil {
		return nil, mapErr(err, "get user "+id)
	}
	return &u, nil
}

// GetUsers returns the users among ids that exist, by id.
func (s *Store) GetUsers(ctx context.Context, ids []string) (map[string]*access.User, error) {
	m := make(map[string]*access.User, len(ids))
	if len(ids) == 0 {
		return m, nil
	}
	us, err := findAll[access.User](ctx, s.db.Collection(colUsers), bson.M{"_id": bson.M{"$in": ids}}, options.Find(), "users")
	if err != nil {
		return nil, err
	}
	for i := range us {
		m[us[i].ID] = &us[i]
	}
	return m, nil
}

// membershipDoc is a membership under an _id made of its key, so that a membership is one
// document however many writers put it at once.
type membershipDoc struct {
	ID                string `bson:"_id"`
	access.Membership `bson:",inline"`
}

func membershipID(space, userID string) string { return space + "/" + userID }

// PutMembership creates the membership or changes its role, keeping its creation time, which
// it writes back to m. One upsert: concurrent puts make one document.
func (s *Store) PutMembership(ctx context.Context, m *access.Membership) error {
	what := fmt.Sprintf("put membership of %s in %s", m.UserID, m.Space)
	id := membershipID(m.Space, m.UserID)
	defer s.locks.lock(colMemberships + "/" + id)()
	var d membershipDoc
	var err error
	// Two concurrent upserts of a missing document can both try to insert it; the loser sees a
	// duplicate key and, retried, updates the winner's document.
	for range 2 {
		err = s.db.Collection(colMemberships).FindOneAndUpdate(ctx, bson.M{"_id": id},
			bson.M{
				"$set":         bson.M{"role": m.Role, "updated_at": m.UpdatedAt},
				"$setOnInsert": bson.M{"space": m.Space, "user_id": m.UserID, "created_at": m.CreatedAt},
			},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&d)
		if err = mapErr(err, what); !isDuplicate(err) {
			break
		}
	}
	if err != nil {
		return err
	}
	m.CreatedAt = d.CreatedAt
	return nil
}

// GetMembership returns userID's membership of space.
func (s *Store) GetMembership(ctx context.Context, space, userID string) (*access.Membership, error) {
	var d membershipDoc
	if err := s.db.Collection(colMemberships).FindOne(ctx, bson.M{"_id": membershipID(space, userID)}).Decode(&d); err != nil {
		return nil, mapErr(err, fmt.Sprintf("get membership of %s in %s", userID, space))
	}
	return &d.Membership, nil
}

// DeleteMembership removes userID from space.
func (s *Store) DeleteMembership(ctx context.Context, space, userID string) error {
	return deleteOne(ctx, s, colMemberships, bson.M{"_id": membershipID(space, userID)}, fmt.Sprintf("delete membership of %s in %s", userID, space))
}

func (s *Store) listMemberships(ctx context.Context, filter bson.M, sort bson.D, pg store.Page, what string) ([]access.Membership, int64, error) {
	docs, total, err := findPage[membershipDoc](ctx, s.db.Collection(colMemberships), filter, sort, pg, what)
	if err != nil {
		return nil, 0, err
	}
	out := make([]access.Membership, len(docs))
	for i := range docs {
		out[i] = docs[i].Membership
	}
	return out, total, nil
}

// ListSpaceMembers returns a page of the memberships of space by user id, and their count.
func (s *Store) ListSpaceMembers(ctx context.Context, space string, pg store.Page) ([]access.Membership, int64, error) {
	return s.listMemberships(ctx, bson.M{"space": space}, bson.D{{Key: "user_id", Value: 1}}, pg, "members of "+space)
}

// ListUserMemberships returns a page of userID's memberships by space, and their count.
func (s *Store) ListUserMemberships(ctx context.Context, userID string, pg store.Page) ([]access.Membership, int64, error) {
	return s.listMemberships(ctx, bson.M{"user_id": userID}, bson.D{{Key: "space", Value: 1}}, pg, "memberships of "+userID)
}

// ListAPIKeys lists userID's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	return findAll[store.APIKey](ctx, s.db.Collection(colAPIKeys), bson.M{"user_id": userID},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "id", Value: 1}}), "api keys of "+userID)
}

// DeleteAPIKey removes userID's key keyID.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, keyID string) error {
	return deleteOne(ctx, s, colAPIKeys, bson.M{"user_id": userID, "id": keyID}, fmt.Sprintf("delete api key %s of %s", keyID, userID))
}

// TouchAPIKey records when the key hash was last used. An update, not an upsert: a key
// revoked meanwhile stays revoked.
func (s *Store) TouchAPIKey(ctx context.Context, hash string, at time.Time) error {
	res, err := s.db.Collection(colAPIKeys).UpdateOne(ctx, bson.M{"_id": hash}, bson.M{"$set": bson.M{"last_used_at": at}})
	if err == nil && res.MatchedCount == 0 {
		err = errNoDocuments
	}
	return mapErr(err, "touch api key")
}

// adoptLegacyAPIKeys gives the keys stored before keys had users (all of them admin keys) to
// the bootstrap admin user, with a public id derived from their hash, as the SQLite store's
// migration does. It runs before the indexes are made, at every start; once done it finds
// nothing.
func (s *Store) adoptLegacyAPIKeys(ctx context.Context) error {
	c := s.db.Collection(colAPIKeys)
	keys, err := findAll[store.APIKey](ctx, c, bson.M{"user_id": bson.M{"$exists": false}}, options.Find(), "legacy api keys")
	if err != nil {
		return err
	}
	for _, k := range keys {
		id := "key_" + k.Hash[:min(16, len(k.Hash))]
		_, err := c.UpdateOne(ctx, bson.M{"_id": k.Hash, "user_id": bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"id": id, "user_id": access.BootstrapAdminID}})
		if err != nil {
			return mapErr(err, "adopt legacy api key")
		}
	}
	return nil
}

// errWrongSpace stops an update closure on a record of another space, which is answered as
// not found.
var errWrongSpace = errors.New("record of another space")

// updateInSpace is update for records whose ids are global but which the caller reaches
// through a space: a record of another space is not found.
func updateInSpace[T any](ctx context.Context, s *Store, col, id, space, what string, spaceOf func(*T) string,
	version func(*T) *int64, touch func(*T, time.Time), fn func(*T) error) (*T, error) {
	r, err := update(ctx, s.locks, s.db.Collection(col), id, what, version, touch, func(r *T) error {
		if spaceOf(r) != space {
			return errWrongSpace
		}
		return fn(r)
	})
	if errors.Is(err, errWrongSpace) {
		return nil, mapErr(errNoDocuments, what)
	}
	return r, err
}

// CreateTeam inserts t; a team with the same name in the space is ErrDuplicate.
func (s *Store) CreateTeam(ctx context.Context, t *access.Team) error {
	_, err := s.db.Collection(colTeams).InsertOne(ctx, t)
	return mapErr(err, fmt.Sprintf("create team %q in %s", t.Name, t.Space))
}

// GetTeam returns the team id of space.
func (s *Store) GetTeam(ctx context.Context, space, id string) (*access.Team, error) {
	var t access.Team
	if err := s.db.Collection(colTeams).FindOne(ctx, bson.M{"_id": id, "space": space}).Decode(&t); err != nil {
		return nil, mapErr(err, "get team "+id)
	}
	return &t, nil
}

// ListTeams returns a page of the space's teams by name, and their count.
func (s *Store) ListTeams(ctx context.Context, space string, pg store.Page) ([]access.Team, int64, error) {
	return findPage[access.Team](ctx, s.db.Collection(colTeams), bson.M{"space": space}, bson.D{{Key: "name", Value: 1}}, pg, "teams of "+space)
}

// UpdateTeam applies fn to the stored team and writes the result if fn returns nil; a new
// name that another team of the space has is ErrDuplicate (the unique index on space+name).
func (s *Store) UpdateTeam(ctx context.Context, space, id string, fn func(*access.Team) error) (*access.Team, error) {
	return updateInSpace(ctx, s, colTeams, id, space, "update team "+id, func(t *access.Team) string { return t.Space },
		func(t *access.Team) *int64 { return &t.Version },
		func(t *access.Team, now time.Time) { t.UpdatedAt = now }, fn)
}

// DeleteTeam removes the team id of space.
func (s *Store) DeleteTeam(ctx context.Context, space, id string) error {
	return deleteOne(ctx, s, colTeams, bson.M{"_id": id, "space": space}, "delete team "+id)
}

type watchDoc struct {
	ID           string `bson:"_id"`
	access.Watch `bson:",inline"`
}

// PutWatch records that w.UserID watches w.PipelineUUID; watching again changes nothing.
func (s *Store) PutWatch(ctx context.Context, w access.Watch) error {
	id := w.Space + "/" + w.PipelineUUID + "/" + w.UserID
	_, err := s.db.Collection(colWatches).UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$setOnInsert": watchDoc{ID: id, Watch: w}}, options.UpdateOne().SetUpsert(true))
	if err = mapErr(err, fmt.Sprintf("watch %s of %s", w.PipelineUUID, w.Space)); err != nil && !isDuplicate(err) {
		return err // a duplicate is a concurrent watch of the same pipeline: done
	}
	return nil
}

// DeleteWatch removes userID's watch of the pipeline.
func (s *Store) DeleteWatch(ctx context.Context, space, pipelineUUID, userID string) error {
	return deleteOne(ctx, s, colWatches, bson.M{"_id": space + "/" + pipelineUUID + "/" + userID}, fmt.Sprintf("unwatch %s of %s", pipelineUUID, space))
}

// ListWatchedPipelines returns the uuids of the pipelines userID watches in space, in order.
func (s *Store) ListWatchedPipelines(ctx context.Context, space, userID string) ([]string, error) {
	ws, err := findAll[watchDoc](ctx, s.db.Collection(colWatches), bson.M{"space": space, "user_id": userID},
		options.Find().SetSort(bson.D{{Key: "pipeline_uuid", Value: 1}}), "watched pipelines of "+userID)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ws))
	for i := range ws {
		out[i] = ws[i].PipelineUUID
	}
	return out, nil
}

// deleteOne removes the document filter selects; none is ErrNotFound.
func deleteOne(ctx context.Context, s *Store, col string, filter bson.M, what string) error {
	res, err := s.db.Collection(col).DeleteOne(ctx, filter)
	if err == nil && res.DeletedCount == 0 {
		err = errNoDocuments
	}
	return mapErr(err, what)
}
