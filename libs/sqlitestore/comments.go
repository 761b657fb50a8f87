package sqlitestore

import (
	"context"
	"database/sql"

	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/store"
)

// CreateComment inserts c and returns it; when a comment with c's id exists (a create
// command handled again), nothing is written and the stored comment is returned.
func (s *Store) CreateComment(ctx context.Context, c *comment.Comment) (*comment.Comment, error) {
	doc, err := encode(c)
	if err != nil {
		return nil, err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO comments (id, space, target_type, target_id, created_at, version, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		c.ID, c.Space, string(c.TargetType), c.TargetID, c.CreatedAt.UnixMilli(), c.Version, doc)
	if err != nil {
		return nil, mapErr(err, "create comment "+c.ID)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, mapErr(err, "create comment "+c.ID)
	} else if n == 0 {
		// Read from the writer: a reader could lag behind the insert it lost to.
		return getDoc[comment.Comment](ctx, s.w, "get comment "+c.ID, `SELECT doc FROM comments WHERE id = ?`, c.ID)
	}
	return c, nil
}

// GetComment returns the comment id of space.
func (s *Store) GetComment(ctx context.Context, space, id string) (*comment.Comment, error) {
	return getDoc[comment.Comment](ctx, s.r, "get comment "+id, `SELECT doc FROM comments WHERE id = ? AND space = ?`, id, space)
}

// ListComments returns a page of the comments on one target, oldest first, and their count.
func (s *Store) ListComments(ctx context.Context, space string, tt comment.TargetType, targetID int64, pg store.Page) ([]comment.Comment, int64, error) {
	const where = ` FROM comments WHERE space = ? AND target_type = ? AND target_id = ?`
	args := []any{space, string(tt), targetID}
	var total int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*)`+where, args...).Scan(&total); err != nil {
		return nil, 0, mapErr(err, "count comments")
	}
	cs, err := listDocs[comment.Comment](ctx, s.r, "list comments", `SELECT doc`+where+` ORDER BY created_at, id`+limitClause(pg), args...)
	return cs, total, err
}

// UpdateComment applies fn to the stored comment and writes the result, one version up, if
// fn returns nil. fn sets UpdatedAt itself: an edit's time is its command's.
func (s *Store) UpdateComment(ctx context.Context, space, id string, fn func(*comment.Comment) error) (*comment.Comment, error) {
	return update(ctx, s, "update comment "+id, `SELECT doc FROM comments WHERE id = ? AND space = ?`, []any{id, space}, fn,
		func(tx *sql.Tx, c *comment.Comment) error {
			c.Version++
			doc, err := encode(c)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE comments SET version = ?, doc = ? WHERE id = ?`, c.Version, doc, id)
			return err
		})
}

// DeleteComment removes the comment id of space.
func (s *Store) DeleteComment(ctx context.Context, space, id string) error {
	return deleted(s.w.ExecContext(ctx, `DELETE FROM comments WHERE id = ? AND space = ?`, id, space))("delete comment " + id)
}
