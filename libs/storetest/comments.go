package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/store"
)

// CommentStore is what the suite exercises of comments, part of Store.
type CommentStore interface {
	// CreateComment inserts c and returns it; a comment with c's id already stored is
	// returned instead, unchanged, and nothing is written.
	CreateComment(ctx context.Context, c *comment.Comment) (*comment.Comment, error)
	GetComment(ctx context.Context, space, id string) (*comment.Comment, error)
	// ListComments lists the comments on one target, oldest first (then by id).
	ListComments(ctx context.Context, space string, tt comment.TargetType, targetID int64, pg store.Page) ([]comment.Comment, int64, error)
	// UpdateComment applies fn and writes the result with Version one up if fn returns nil;
	// fn's error is returned with the comment as read.
	UpdateComment(ctx context.Context, space, id string, fn func(*comment.Comment) error) (*comment.Comment, error)
	DeleteComment(ctx context.Context, space, id string) error
}

func testComments(t *testing.T, s Store) {
	c := ctx(t)
	t0 := store.Now()
	mk := func(n int, space string, tt comment.TargetType, target int64) *comment.Comment {
		at := t0.Add(time.Duration(n) * time.Second)
		return &comment.Comment{
			ID: fmt.Sprintf("cmt_%02d", n), Space: space, TargetType: tt, TargetID: target,
			PipelineUUID: "etl", PipelineRunID: 7, Body: fmt.Sprintf("note %d", n), Author: "usr_a",
			CommandID: fmt.Sprintf("cmd%d", n), CreatedAt: at, UpdatedAt: at,
		}
	}
	// Created out of order: lists follow created_at, not insertion.
	for _, n := range []int{3, 1, 2} {
		got, err := s.CreateComment(c, mk(n, "s1", comment.TargetRun, 7))
		must(t, err)
		if got.ID != fmt.Sprintf("cmt_%02d", n) || got.Body != fmt.Sprintf("note %d", n) {
			t.Fatalf("created comment = %+v", got)
		}
	}
	// The same id again (a create command handled twice): the first one stands.
	again := mk(1, "s1", comment.TargetRun, 7)
	again.Body = "a second body"
	got, err := s.CreateComment(c, again)
	must(t, err)
	if got.Body != "note 1" || !got.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("a repeated create returned %+v, want the stored comment", got)
	}
	// The same target id on a task run, and in another space, are other targets.
	_, err = s.CreateComment(c, mk(4, "s1", comment.TargetTaskRun, 7))
	must(t, err)
	_, err = s.CreateComment(c, mk(5, "s2", comment.TargetRun, 7))
	must(t, err)

	list, total, err := s.ListComments(c, "s1", comment.TargetRun, 7, store.Page{})
	must(t, err)
	if total != 3 || len(list) != 3 || list[0].ID != "cmt_01" || list[1].ID != "cmt_02" || list[2].ID != "cmt_03" {
		t.Fatalf("comments on run 7 of s1 = %d %+v", total, list)
	}
	if list[0].Body != "note 1" || list[0].Author != "usr_a" || list[0].PipelineUUID != "etl" || list[0].PipelineRunID != 7 || list[0].TargetType != comment.TargetRun {
		t.Fatalf("comment read back wrong: %+v", list[0])
	}
	page, total, err := s.ListComments(c, "s1", comment.TargetRun, 7, store.Page{Limit: 2, Offset: 2})
	must(t, err)
	if total != 3 || len(page) != 1 || page[0].ID != "cmt_03" {
		t.Fatalf("second page = %d %+v", total, page)
	}
	if tr, total, err := s.ListComments(c, "s1", comment.TargetTaskRun, 7, store.Page{}); err != nil || total != 1 || tr[0].ID != "cmt_04" {
		t.Fatalf("comments on task run 7 = %d %+v (%v)", total, tr, err)
	}
	if none, total, err := s.ListComments(c, "s1", comment.TargetRun, 8, store.Page{}); err != nil || total != 0 || len(none) != 0 {
		t.Fatalf("comments on run 8 = %d %+v (%v)", total, none, err)
	}

	one, err := s.GetComment(c, "s1", "cmt_02")
	must(t, err)
	if one.Body != "note 2" || !one.UpdatedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("comment 2 = %+v", one)
	}
	_, err = s.GetComment(c, "s2", "cmt_02")
	wantErr(t, err, store.ErrNotFound)

	edited := t0.Add(time.Minute)
	up, err := s.UpdateComment(c, "s1", "cmt_02", func(cm *comment.Comment) error { return cm.Edit("cmd9", edited, "edited") })
	must(t, err)
	if up.Body != "edited" || up.Version != 1 || !up.UpdatedAt.Equal(edited) || up.CommandID != "cmd9" || !up.CreatedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("updated comment = %+v", up)
	}
	// The same edit again, and an edit issued before it, change nothing.
	_, err = s.UpdateComment(c, "s1", "cmt_02", func(cm *comment.Comment) error { return cm.Edit("cmd9", edited, "edited twice") })
	wantErr(t, err, comment.ErrNoChange)
	_, err = s.UpdateComment(c, "s1", "cmt_02", func(cm *comment.Comment) error { return cm.Edit("cmd8", t0, "stale") })
	wantErr(t, err, comment.ErrNoChange)
	sentinel := errors.New("refused")
	_, err = s.UpdateComment(c, "s1", "cmt_02", func(cm *comment.Comment) error { cm.Body = "lost"; return sentinel })
	wantErr(t, err, sentinel)
	_, err = s.UpdateComment(c, "s2", "cmt_02", func(*comment.Comment) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateComment(c, "s1", "cmt_99", func(*comment.Comment) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	one, err = s.GetComment(c, "s1", "cmt_02")
	must(t, err)
	if one.Body != "edited" || one.Version != 1 {
		t.Fatalf("refused updates were written: %+v", one)
	}

	wantErr(t, s.DeleteComment(c, "s2", "cmt_02"), store.ErrNotFound)
	must(t, s.DeleteComment(c, "s1", "cmt_02"))
	wantErr(t, s.DeleteComment(c, "s1", "cmt_02"), store.ErrNotFound)
	_, err = s.GetComment(c, "s1", "cmt_02")
	wantErr(t, err, store.ErrNotFound)
	if list, total, err = s.ListComments(c, "s1", comment.TargetRun, 7, store.Page{}); err != nil || total != 2 || list[0].ID != "cmt_01" || list[1].ID != "cmt_03" {
		t.Fatalf("comments after delete = %d %+v (%v)", total, list, err)
	}
}
