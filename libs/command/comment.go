package command

import (
	"github.com/runyard/runyard/libs/access"
	"github.com/runyard/runyard/libs/comment"
)

// Comment command types. They are wire names: never derive them from Go identifiers. The
// envelope's Principal is the user acting and its Space the space of the target.
const (
	TypeCreateComment = "comment.create"
	TypeUpdateComment = "comment.update"
	TypeDeleteComment = "comment.delete"
)

// CreateComment asks an executor to add a comment to a run or a task run of the command's
// space. The comment's id is comment.IDFor(the command's id).
type CreateComment struct {
	TargetType comment.TargetType `json:"target_type"`
	TargetID   int64              `json:"target_id"`
	Body       string             `json:"body"`
}

// UpdateComment asks an executor to replace a comment's body. Only its author may.
type UpdateComment struct {
	CommentID string `json:"comment_id"`
	Body      string `json:"body"`
}

// DeleteComment asks an executor to delete a comment. Its author may, and so may a space
// admin: Role is the principal's role in the space when the command was issued.
type DeleteComment struct {
	CommentID string      `json:"comment_id"`
	Role      access.Role `json:"role"`
}

// CommentResult is the Result of a successful CreateComment or UpdateComment: the comment as
// it is after the command. A DeleteComment succeeds with no Result.
type CommentResult struct {
	Comment comment.Comment `json:"comment"`
}
