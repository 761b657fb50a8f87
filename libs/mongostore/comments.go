package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/store"
)

const colComments = "comments"

// errCommentOfOtherSpace stops UpdateComment's closure on a comment of another space, which
// is answered as not found.
var errCommentOfOtherSpace = errors.New("comment of another space")

// CreateComment inserts c and returns it; when a comment with c's id exists (a create
// command handled again), nothing is written and the stored comment is returned.
func (s *Store) CreateComment(ctx context.Context, c *comment.Comment) (*comment.Comment, error) {
	col := s.db.Collection(colComments)
	_, err := col.InsertOne(ctx, c)
	if err == nil {
		return c, nil
	}
	if err = mapErr(err, "create comment "+c.ID); !isDuplicate(err) {
		return nil, err
	}
	var got comment.Comment
	if err := col.FindOne(ctx, bson.M{"_id": c.ID}).Decode(&got); err != nil {
		return nil, mapErr(err, "get comment "+c.ID)
	}
	return &got, nil
}

// GetComment returns the comment id of space.
func (s *Store) GetComment(ctx context.Context, space, id string) (*comment.Comment, error) {
	var c comment.Comment
	if err := s.db.Collection(colComments).FindOne(ctx, bson.M{"_id": id, "space": space}).Decode(&c); err != nil {
		return nil, mapErr(err, "get comment "+id)
	}
	return &c, nil
}

// ListComments returns a page of the comments on one target, oldest first, and their count.
func (s *Store) ListComments(ctx context.Context, space string, tt comment.TargetType, targetID int64, pg store.Page) ([]comment.Comment, int64, error) {
	return findPage[comment.Comment](ctx, s.db.Collection(colComments),
		bson.M{"space": space, "target_type": tt, "target_id": targetID},
		bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, pg, "comments")
}

// UpdateComment applies fn to the stored comment and writes the result, one version up, if
// fn returns nil; the write is conditional on the version read. fn sets UpdatedAt itself: an
// edit's time is its command's.
func (s *Store) UpdateComment(ctx context.Context, space, id string, fn func(*comment.Comment) error) (*comment.Comment, error) {
	what := "update comment " + id
	c, err := update(ctx, s.locks, s.db.Collection(colComments), id, what,
		func(c *comment.Comment) *int64 { return &c.Version },
		func(*comment.Comment, time.Time) {},
		func(c *comment.Comment) error {
			if c.Space != space {
				return errCommentOfOtherSpace
			}
			return fn(c)
		})
	if errors.Is(err, errCommentOfOtherSpace) {
		return nil, mapErr(errNoDocuments, what)
	}
	return c, err
}

// DeleteComment removes the comment id of space.
func (s *Store) DeleteComment(ctx context.Context, space, id string) error {
	return deleteOne(ctx, s, colComments, bson.M{"_id": id, "space": space}, "delete comment "+id)
}
