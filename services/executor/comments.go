package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/event"
	"github.com/runyard/runyard/libs/natsbus"
	"github.com/runyard/runyard/libs/store"
)

// Comments on runs and task runs. The gateway checks what it can before sending a command
// (the caller's role, the body, that the target exists) so that most mistakes are answered
// without a round trip; the executor checks again against the store as it is when the
// command is handled, and is the only writer of comments.
//
// Redelivery: a create's comment id is derived from its command id, so a second delivery
// finds the comment the first made; an edit records its command id and issue time in the
// comment, so a second delivery, or an edit issued before the last applied one, changes
// nothing; a delete of a comment already gone succeeds, as HTTP's DELETE is idempotent.

// CommentStore is what the executor needs from storage for comments.
type CommentStore interface {
	CreateComment(ctx context.Context, c *comment.Comment) (*comment.Comment, error)
	GetComment(ctx context.Context, space, id string) (*comment.Comment, error)
	UpdateComment(ctx context.Context, space, id string, fn func(*comment.Comment) error) (*comment.Comment, error)
	DeleteComment(ctx context.Context, space, id string) error
}

// errNotAuthor stops an edit by someone other than the comment's author.
var errNotAuthor = errors.New("not the comment's author")

// handleCommentCommand dispatches the comment commands.
func (e *Executor) handleCommentCommand(ctx context.Context, env command.Envelope) error {
	switch env.Type {
	case command.TypeCreateComment:
		return e.createComment(ctx, env)
	case command.TypeUpdateComment:
		return e.updateComment(ctx, env)
	default:
		return e.deleteComment(ctx, env)
	}
}

// createComment adds a comment to a run or task run of the command's space.
func (e *Executor) createComment(ctx context.Context, env command.Envelope) error {
	var p command.CreateComment
	if err := e.decodePayload(ctx, env, &p); err != nil {
		return err
	}
	id := comment.IDFor(env.ID)
	if done, err := e.answerAgain(ctx, env, id); done || err != nil {
		return err
	}
	body := comment.NormalizeBody(p.Body)
	if err := comment.ValidateBody("body", body); err != nil {
		e.fail(ctx, env, http.StatusUnprocessableEntity, err.Error())
		return nil
	}
	if !p.TargetType.Valid() {
		e.fail(ctx, env, http.StatusBadRequest, fmt.Sprintf("target_type must be run or task_run, not %q", p.TargetType))
		return nil
	}
	pipelineUUID, runID, err := e.commentTarget(ctx, env.Space, p.TargetType, p.TargetID)
	if errors.Is(err, store.ErrNotFound) {
		e.fail(ctx, env, http.StatusNotFound, err.Error())
		return nil
	} else if err != nil {
		return err
	}
	at := issuedAt(env)
	c, err := e.store.CreateComment(ctx, &comment.Comment{
		ID: id, Space: env.Space, TargetType: p.TargetType, TargetID: p.TargetID,
		PipelineUUID: pipelineUUID, PipelineRunID: runID, Body: body, Author: env.Principal,
		CommandID: env.ID, CreatedAt: at, UpdatedAt: at, Version: 1,
	})
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("comment_id", c.ID).Msg("comment created")
	e.emitComment(ctx, event.TypeCommentCreated, c)
	return e.succeedComment(ctx, env, http.StatusCreated, c)
}

// updateComment replaces a comment's body on behalf of its author.
func (e *Executor) updateComment(ctx context.Context, env command.Envelope) error {
	var p command.UpdateComment
	if err := e.decodePayload(ctx, env, &p); err != nil {
		return err
	}
	if done, err := e.answerAgain(ctx, env, p.CommentID); done || err != nil {
		return err
	}
	body := comment.NormalizeBody(p.Body)
	if err := comment.ValidateBody("body", body); err != nil {
		e.fail(ctx, env, http.StatusUnprocessableEntity, err.Error())
		return nil
	}
	at := issuedAt(env)
	c, err := e.store.UpdateComment(ctx, env.Space, p.CommentID, func(c *comment.Comment) error {
		if c.Author != env.Principal {
			return errNotAuthor
		}
		return c.Edit(env.ID, at, body)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.fail(ctx, env, http.StatusNotFound, fmt.Sprintf("comment %s not found", p.CommentID))
		return nil
	case errors.Is(err, errNotAuthor):
		e.fail(ctx, env, http.StatusForbidden, fmt.Sprintf("only the author of comment %s can edit it", p.CommentID))
		return nil
	case errors.Is(err, comment.ErrNoChange):
		// Applied by an earlier delivery, or overtaken by a later edit: the comment stands.
		return e.succeedComment(ctx, env, http.StatusOK, c)
	case err != nil:
		return err
	}
	e.emitComment(ctx, event.TypeCommentUpdated, c)
	return e.succeedComment(ctx, env, http.StatusOK, c)
}

// deleteComment deletes a comment on behalf of its author or a space admin.
func (e *Executor) deleteComment(ctx context.Context, env command.Envelope) error {
	var p command.DeleteComment
	if err := e.decodePayload(ctx, env, &p); err != nil {
		return err
	}
	if done, err := e.answerAgain(ctx, env, p.CommentID); done || err != nil {
		return err
	}
	c, err := e.store.GetComment(ctx, env.Space, p.CommentID)
	if errors.Is(err, store.ErrNotFound) {
		return e.succeedComment(ctx, env, http.StatusNoContent, nil)
	} else if err != nil {
		return err
	}
	if c.Author != env.Principal && !p.Role.AtLeast(access.RoleAdmin) {
		e.fail(ctx, env, http.StatusForbidden, fmt.Sprintf("only the author of comment %s or an admin of space %s can delete it", c.ID, env.Space))
		return nil
	}
	if err := e.store.DeleteComment(ctx, env.Space, c.ID); errors.Is(err, store.ErrNotFound) {
		// Deleted meanwhile by someone else: the event is theirs to publish.
		return e.succeedComment(ctx, env, http.StatusNoContent, nil)
	} else if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("comment_id", c.ID).Msg("comment deleted")
	c.Version++
	c.UpdatedAt = issuedAt(env)
	e.emitComment(ctx, event.TypeCommentDeleted, c)
	return e.succeedComment(ctx, env, http.StatusNoContent, nil)
}

// commentTarget finds a comment's target in space and returns its pipeline and run: the
// run itself, or the run of a task run. A target of another space is not found.
func (e *Executor) commentTarget(ctx context.Context, space string, tt comment.TargetType, id int64) (string, int64, error) {
	if tt == comment.TargetTaskRun {
		br, err := e.store.GetBlockRun(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && br.Space != space) {
			return "", 0, fmt.Errorf("task run %d not found: %w", id, store.ErrNotFound)
		} else if err != nil {
			return "", 0, err
		}
		return br.PipelineUUID, br.PipelineRunID, nil
	}
	r, err := e.store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.Space != space) {
		return "", 0, fmt.Errorf("run %d not found: %w", id, store.ErrNotFound)
	} else if err != nil {
		return "", 0, err
	}
	return r.PipelineUUID, r.ID, nil
}

// answerAgain answers a comment command handled before from its recorded outcome, and
// reports whether it did.
func (e *Executor) answerAgain(ctx context.Context, env command.Envelope, commentID string) (bool, error) {
	o, err := e.store.GetOutcome(ctx, env.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if o.Status != command.ReplySucceeded || env.Type == command.TypeDeleteComment {
		e.reply(ctx, command.Reply{CommandID: env.ID, Status: o.Status, Code: o.Code, Message: o.Message})
		return true, nil
	}
	c, err := e.store.GetComment(ctx, env.Space, commentID)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted since: the command's result is gone with it.
		e.reply(ctx, command.Reply{CommandID: env.ID, Status: command.ReplyFailed, Code: http.StatusNotFound, Message: fmt.Sprintf("comment %s not found", commentID)})
		return true, nil
	} else if err != nil {
		return false, err
	}
	return true, e.replyComment(ctx, env, o.Code, c)
}

// succeedComment records that a comment command took effect, then answers it with the
// comment (nil for a deletion).
func (e *Executor) succeedComment(ctx context.Context, env command.Envelope, code int, c *comment.Comment) error {
	if err := e.store.SaveOutcome(ctx, store.CommandOutcome{
		ID: env.ID, Type: env.Type, Space: env.Space, Status: command.ReplySucceeded, Code: code, CreatedAt: store.Now(),
	}); err != nil {
		return err
	}
	return e.replyComment(ctx, env, code, c)
}

func (e *Executor) replyComment(ctx context.Context, env command.Envelope, code int, c *comment.Comment) error {
	r := command.Reply{CommandID: env.ID, Status: command.ReplySucceeded, Code: code}
	if c != nil {
		result, err := json.Marshal(command.CommentResult{Comment: *c})
		if err != nil {
			return fmt.Errorf("executor: encode comment result: %w", err)
		}
		r.Result = result
	}
	e.reply(ctx, r)
	return nil
}

// reply sends a reply; nobody may be waiting for it any more, so a failure is only logged.
func (e *Executor) reply(ctx context.Context, r command.Reply) {
	if err := e.bus.Reply(r); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply not sent")
	}
}

// emitComment publishes a comment event on its run's comment subject (a task run's comment
// names the task run's run). The id is the comment and its version, so an event published
// again for a redelivered command is recognised; the sequence is the comment's version,
// which orders the states of one comment.
func (e *Executor) emitComment(ctx context.Context, typ string, c *comment.Comment) {
	action := "deleted"
	switch typ {
	case event.TypeCommentCreated:
		action = "created"
	case event.TypeCommentUpdated:
		action = "updated"
	}
	ev := event.Event{
		Type: typ, Version: event.Version,
		ID: fmt.Sprintf("comment-%s-v%d", c.ID, c.Version), OccurredAt: c.UpdatedAt,
		Space: c.Space, RunID: c.PipelineRunID, Sequence: c.Version, Comment: c,
	}
	e.publish(ctx, natsbus.CommentEventSubject(c.Space, c.PipelineUUID, c.PipelineRunID, action), ev)
}

// issuedAt is when the command was issued, at the precision stores keep; a command without
// an issue time counts as issued now.
func issuedAt(env command.Envelope) time.Time {
	if env.IssuedAt.IsZero() {
		return store.Now()
	}
	return env.IssuedAt.UTC().Truncate(time.Millisecond)
}
