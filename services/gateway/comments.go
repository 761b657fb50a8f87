package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/store"
	"github.com/runyard/runyard/libs/validation"
)

// Comments on runs and task runs (Qarion's "Run and Task Comments"). Viewers read them,
// editors write them; only a comment's author edits it, and its author or a space admin
// deletes it. Writes are commands: the gateway checks what it can (role, body, target,
// author) so that most mistakes cost no round trip, then sends the command and answers with
// the executor's reply: 201 with the comment, 200 with the edited one, 204 for a deletion, or
// 202 with the command to poll when the reply is late. A run, task run or comment of another
// space is answered as a missing one.

// CommentStore is what the gateway needs from storage for comments; executors write them.
type CommentStore interface {
	GetComment(ctx context.Context, space, id string) (*comment.Comment, error)
	ListComments(ctx context.Context, space string, tt comment.TargetType, targetID int64, pg store.Page) ([]comment.Comment, int64, error)
}

// commentBodyField is the field path of a comment's body: the member "body" of the request
// body. A bare "body" would name the request body as a whole.
const commentBodyField = "[body]"

// qComment is a comment as the Qarion-compatible API shows it.
type qComment struct {
	ID         string             `json:"id"`
	Body       string             `json:"body"`
	Author     string             `json:"author"`
	AuthorName string             `json:"author_name"`
	TargetType comment.TargetType `json:"target_type"`
	TargetID   int64              `json:"target_id"`
	CreatedAt  time.Time          `json:"created_at"`
	UpdatedAt  time.Time          `json:"updated_at"`
}

// presentComments shows comments with their authors' names; an author whose user is gone
// has an empty name.
func (g *Gateway) presentComments(ctx context.Context, cs []comment.Comment) ([]qComment, error) {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.Author)
	}
	users, err := g.store.GetUsers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]qComment, len(cs))
	for i, c := range cs {
		out[i] = qComment{ID: c.ID, Body: c.Body, Author: c.Author, TargetType: c.TargetType, TargetID: c.TargetID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		if u := users[c.Author]; u != nil {
			out[i].AuthorName = u.Name
		}
	}
	return out, nil
}

// listRunComments answers GET .../orchestration/runs/:run_id/comments, oldest first.
func (g *Gateway) listRunComments(c *fiber.Ctx) error {
	return g.listComments(c, comment.TargetRun, "run_id")
}

// listTaskRunComments answers GET .../orchestration/task-runs/:task_run_id/comments.
func (g *Gateway) listTaskRunComments(c *fiber.Ctx) error {
	return g.listComments(c, comment.TargetTaskRun, "task_run_id")
}

func (g *Gateway) listComments(c *fiber.Ctx, tt comment.TargetType, param string) error {
	slug, _, err := g.inSpace(c, access.RoleViewer)
	if err != nil {
		return err
	}
	p, err := readListPage(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	id, err := g.commentTarget(ctx, slug, tt, c.Params(param))
	if err != nil {
		return err
	}
	cs, total, err := g.store.ListComments(ctx, slug, tt, id, p.Store())
	if err != nil {
		return err
	}
	out, err := g.presentComments(ctx, cs)
	if err != nil {
		return err
	}
	return writeList(c, p, out, total)
}

// commentTarget finds the run or task run raw names in space and returns its id; one of
// another space is not found, with the same answer.
func (g *Gateway) commentTarget(ctx context.Context, space string, tt comment.TargetType, raw string) (int64, error) {
	what := "run"
	if tt == comment.TargetTaskRun {
		what = "task run"
	}
	notFound := qNotFound("%s %s not found", what, raw)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound
	}
	var in string
	if tt == comment.TargetTaskRun {
		br, err := g.store.GetBlockRun(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		if br != nil {
			in = br.Space
		}
	} else {
		r, err := g.store.GetRun(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		if r != nil {
			in = r.Space
		}
	}
	if in != space {
		return 0, notFound
	}
	return id, nil
}

// createRunComment answers POST .../orchestration/runs/:run_id/comments {"body"}.
func (g *Gateway) createRunComment(c *fiber.Ctx) error {
	return g.createComment(c, comment.TargetRun, "run_id")
}

// createTaskRunComment answers POST .../orchestration/task-runs/:task_run_id/comments.
func (g *Gateway) createTaskRunComment(c *fiber.Ctx) error {
	return g.createComment(c, comment.TargetTaskRun, "task_run_id")
}

func (g *Gateway) createComment(c *fiber.Ctx, tt comment.TargetType, param string) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	id, err := g.commentTarget(c.UserContext(), slug, tt, c.Params(param))
	if err != nil {
		return err
	}
	body, err := commentBody(c)
	if err != nil {
		return err
	}
	return g.commentCommand(c, slug, fmt.Sprintf("%s/%d/comments", tt, id), command.TypeCreateComment,
		command.CreateComment{TargetType: tt, TargetID: id, Body: body}, "", nil)
}

// updateComment answers PUT and PATCH .../orchestration/comments/:comment_id {"body"}: only
// the author may.
func (g *Gateway) updateComment(c *fiber.Ctx) error {
	slug, _, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	id := c.Params("comment_id")
	body, err := commentBody(c)
	if err != nil {
		return err
	}
	check := func(cm *comment.Comment) error {
		if cm.Author != callerOf(c).UserID {
			return qForbidden("only the author of comment %s can edit it", id)
		}
		return nil
	}
	return g.commentCommand(c, slug, "comment/"+id+"/update", command.TypeUpdateComment,
		command.UpdateComment{CommentID: id, Body: body}, id, check)
}

// deleteComment answers DELETE .../orchestration/comments/:comment_id: its author or an
// admin of the space may.
func (g *Gateway) deleteComment(c *fiber.Ctx) error {
	slug, role, err := g.inSpace(c, access.RoleEditor)
	if err != nil {
		return err
	}
	id := c.Params("comment_id")
	check := func(cm *comment.Comment) error {
		if cm.Author != callerOf(c).UserID && !role.AtLeast(access.RoleAdmin) {
			return qForbidden("only the author of comment %s or an admin of space %s can delete it", id, slug)
		}
		return nil
	}
	return g.commentCommand(c, slug, "comment/"+id+"/delete", command.TypeDeleteComment,
		command.DeleteComment{CommentID: id, Role: role}, id, check)
}

// commentBody reads {"body": "..."} and returns the body trimmed; a missing, empty or too
// long body is a 422 at ["body", "body"].
func commentBody(c *fiber.Ctx) (string, error) {
	var in struct {
		Body json.RawMessage `json:"body"`
	}
	if err := decodeBody(c, &in); err != nil {
		return "", err
	}
	if len(in.Body) == 0 || string(in.Body) == "null" {
		return "", validation.New(commentBodyField, "is required")
	}
	var s string
	if err := json.Unmarshal(in.Body, &s); err != nil {
		return "", validation.New(commentBodyField, "must be a string")
	}
	s = comment.NormalizeBody(s)
	return s, comment.ValidateBody(commentBodyField, s)
}

// commentCommand sends a comment command and answers with its reply. Idempotency-Key works
// as for run commands: the same key on the same action returns the first result. commentID
// is the comment an update or delete acts on; check, run on it before sending, refuses what
// the executor would refuse. A comment of another space is not found.
func (g *Gateway) commentCommand(c *fiber.Ctx, space, scope, typ string, payload any, commentID string, check func(*comment.Comment) error) error {
	ctx := c.UserContext()
	id := command.NewID()
	key := c.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return validation.New("Idempotency-Key", "must be at most %d characters", maxIdempotencyKey)
	}
	if key != "" {
		id = command.IdempotentID(space, scope, key)
	}
	if typ == command.TypeCreateComment {
		commentID = comment.IDFor(id)
	}
	lookup := g.commentOutcome(space, commentID)
	if key != "" {
		// Before the checks: a repeated delete finds the comment gone, yet answers as the
		// first one did.
		if r, err := lookup(ctx, id); err != nil {
			return err
		} else if r != nil {
			return g.commentAnswer(c, typ, id, commentID, r)
		}
	} else {
		lookup = nil
	}
	if check != nil {
		cm, err := g.store.GetComment(ctx, space, commentID)
		if errors.Is(err, store.ErrNotFound) {
			return qNotFound("comment %s not found", commentID)
		} else if err != nil {
			return err
		}
		if err := check(cm); err != nil {
			return err
		}
	}
	principal, _ := c.Locals(principalKey).(string)
	env, err := command.New(id, typ, space, principal, payload)
	if err != nil {
		return err
	}
	reply, err := g.send(ctx, env, lookup)
	if err != nil {
		return err
	}
	return g.commentAnswer(c, typ, id, commentID, reply)
}

// commentAnswer turns a comment command's reply into the response; nil is a reply not
// received yet: 202 with the command to poll (and, for a creation, the id the comment will
// have).
func (g *Gateway) commentAnswer(c *fiber.Ctx, typ, id, commentID string, reply *command.Reply) error {
	if reply == nil {
		return c.Status(http.StatusAccepted).JSON(fiber.Map{"command": fiber.Map{
			"id": id, "type": typ, "status": "pending", "url": "/api/commands/" + id, "comment_id": commentID,
		}})
	}
	if reply.Status != command.ReplySucceeded {
		return replyError(reply)
	}
	if typ == command.TypeDeleteComment {
		return c.SendStatus(http.StatusNoContent)
	}
	var res command.CommentResult
	if err := json.Unmarshal(reply.Result, &res); err != nil {
		return fmt.Errorf("gateway: decode comment result of %s: %w", reply.CommandID, err)
	}
	out, err := g.presentComments(c.UserContext(), []comment.Comment{res.Comment})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if typ == command.TypeCreateComment {
		status = http.StatusCreated
	}
	return c.Status(status).JSON(out[0])
}

// commentOutcome finds the result of a comment command already handled, from its recorded
// outcome and the comment as it is now; nil means not handled yet.
func (g *Gateway) commentOutcome(space, commentID string) func(context.Context, string) (*command.Reply, error) {
	return func(ctx context.Context, id string) (*command.Reply, error) {
		o, err := g.store.GetOutcome(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		r := &command.Reply{CommandID: id, Status: o.Status, Code: o.Code, Message: o.Message}
		if o.Status != command.ReplySucceeded || o.Type == command.TypeDeleteComment {
			return r, nil
		}
		cm, err := g.store.GetComment(ctx, space, commentID)
		if errors.Is(err, store.ErrNotFound) {
			return &command.Reply{CommandID: id, Status: command.ReplyFailed, Code: http.StatusNotFound, Message: fmt.Sprintf("comment %s not found", commentID)}, nil
		} else if err != nil {
			return nil, err
		}
		if r.Result, err = json.Marshal(command.CommentResult{Comment: *cm}); err != nil {
			return nil, fmt.Errorf("gateway: encode comment result: %w", err)
		}
		return r, nil
	}
}
