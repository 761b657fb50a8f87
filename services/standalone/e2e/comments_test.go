package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/runyard/runyard/libs/command"
	"github.com/runyard/runyard/libs/comment"
	"github.com/runyard/runyard/libs/natsbus"
)

// Comment tests: comments on runs and task runs through the Qarion-compatible API of the
// whole system — every route, the body rules, who may do what, tenancy, pagination,
// Idempotency-Key, events, and comment commands delivered more than once.

// finishedRun makes a one-block pipeline in space, runs it to its end and returns the run's
// id and its block run's id.
func (e *env) finishedRun(space, uuid string) (int64, int64) {
	e.t.Helper()
	e.must(200, e.call("POST", "/api/pipelines?space="+space, map[string]any{"pipeline": map[string]any{"uuid": uuid, "blocks": []any{block("a", noop)}}}))
	sr := e.must(200, e.call("POST", "/api/pipelines/"+uuid+"/pipeline_schedules?space="+space,
		map[string]any{"pipeline_schedule": map[string]any{"name": "api", "schedule_type": "api", "status": "active"}}))
	sched := obj(sr.Body, "pipeline_schedule")
	pr := obj(e.must(200, e.trigger(num(sched, "id"), sched["token"].(string), nil)).Body, "pipeline_run")
	done := e.waitRun(num(pr, "id"))
	brs := done["block_runs"].([]any)
	if len(brs) != 1 {
		e.t.Fatalf("run %d has %d block runs", num(pr, "id"), len(brs))
	}
	return num(pr, "id"), num(brs[0].(map[string]any), "id")
}

// commentSetup is a space "finance" with a finished run, and the users who act on it.
type commentSetup struct {
	run, taskRun                                    int64
	editorID, editorKey, otherKey, viewerKey, saKey string
	outsiderKey                                     string
}

func newCommentSetup(e *env) commentSetup {
	e.t.Helper()
	var s commentSetup
	e.newSpace("finance")
	s.run, s.taskRun = e.finishedRun("finance", "ledger")
	var otherID, viewerID, saID string
	s.editorID, s.editorKey = e.newUser("editor")
	otherID, s.otherKey = e.newUser("other-editor")
	viewerID, s.viewerKey = e.newUser("viewer")
	saID, s.saKey = e.newUser("space-admin")
	_, s.outsiderKey = e.newUser("outsider")
	e.setRole(adminKey, "finance", s.editorID, "editor")
	e.setRole(adminKey, "finance", otherID, "editor")
	e.setRole(adminKey, "finance", viewerID, "viewer")
	e.setRole(adminKey, "finance", saID, "admin")
	return s
}

const commentsBase = "/api/v1.0/spaces/finance/orchestration/"

func runComments(id int64) string { return fmt.Sprintf("%sruns/%d/comments", commentsBase, id) }
func taskRunComments(id int64) string {
	return fmt.Sprintf("%stask-runs/%d/comments", commentsBase, id)
}
func commentPath(id string) string { return commentsBase + "comments/" + id }

func TestComments(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	s := newCommentSetup(e)

	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync("runyard.evt.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// An editor comments on the run; the body is trimmed.
	c1 := e.qmust(201, e.q("POST", runComments(s.run), s.editorKey, map[string]any{"body": "  retried after the disk filled up \n"})).Obj
	id1, _ := c1["id"].(string)
	if !strings.HasPrefix(id1, "cmt_") || c1["body"] != "retried after the disk filled up" || c1["author"] != s.editorID ||
		c1["author_name"] != "EDITOR" || c1["target_type"] != "run" || num(c1, "target_id") != s.run || c1["created_at"] != c1["updated_at"] {
		t.Fatalf("created comment = %v", c1)
	}
	ev := nextCommentEvent(t, events, "comment.created")
	if cm := obj(ev, "comment"); cm["id"] != id1 || ev["space"] != "finance" || num(ev, "sequence") != 1 || num(ev, "run_id") != s.run ||
		ev["subject"] != natsbus.CommentEventSubject("finance", "ledger", s.run, "created") {
		t.Fatalf("comment.created event = %v", ev)
	}

	// A viewer reads but may not comment; a task run has comments of its own.
	e.detail(e.q("POST", runComments(s.run), s.viewerKey, map[string]any{"body": "me too"}), 403, "editor role")
	tc := e.qmust(201, e.q("POST", taskRunComments(s.taskRun), s.editorKey, map[string]any{"body": "block a was slow"})).Obj
	if tc["target_type"] != "task_run" || num(tc, "target_id") != s.taskRun {
		t.Fatalf("task run comment = %v", tc)
	}
	if ev := nextCommentEvent(t, events, "comment.created"); ev["subject"] != natsbus.CommentEventSubject("finance", "ledger", s.run, "created") {
		t.Fatalf("a task run's comment event on %v, want its run's subject", ev["subject"])
	}
	if l := e.qmust(200, e.q("GET", taskRunComments(s.taskRun), s.viewerKey, nil)); len(l.List) != 1 || l.List[0].(map[string]any)["id"] != tc["id"] {
		t.Fatalf("task run comments = %s", l.Raw)
	}

	// Lists are oldest first, paged with headers; the longest body is accepted.
	long := strings.Repeat("é", comment.MaxBodyLength)
	e.qmust(201, e.q("POST", runComments(s.run), s.otherKey, map[string]any{"body": "second"}))
	e.qmust(201, e.q("POST", runComments(s.run), s.editorKey, map[string]any{"body": long}))
	nextCommentEvent(t, events, "comment.created")
	nextCommentEvent(t, events, "comment.created")
	all := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil))
	if len(all.List) != 3 || all.List[0].(map[string]any)["id"] != id1 || all.List[1].(map[string]any)["body"] != "second" ||
		all.List[2].(map[string]any)["body"] != long || all.Header.Get("X-Total-Count") != "3" {
		t.Fatalf("run comments = %d items, headers %v", len(all.List), all.Header)
	}
	p1 := e.qmust(200, e.q("GET", runComments(s.run)+"?size=2", s.viewerKey, nil))
	if len(p1.List) != 2 || p1.Header.Get("X-Total-Pages") != "2" || p1.Header.Get("X-Page-Size") != "2" || p1.Header.Get("X-Page") != "1" ||
		!strings.Contains(p1.Header.Get("Link"), `page=2&size=2>; rel="next"`) {
		t.Fatalf("first page: %d items, headers %v", len(p1.List), p1.Header)
	}
	if p2 := e.qmust(200, e.q("GET", runComments(s.run)+"?page=2&size=2", s.viewerKey, nil)); len(p2.List) != 1 || p2.List[0].(map[string]any)["body"] != long {
		t.Fatalf("second page = %s", p2.Raw)
	}
	if got := e.locs(e.q("GET", runComments(s.run)+"?size=0", s.viewerKey, nil)); fmt.Sprint(got) != `[["query","size"]]` {
		t.Fatalf("bad size located at %v", got)
	}

	// Bad bodies, on creation and on edits alike.
	for _, bad := range []struct {
		body any
		loc  string
	}{
		{map[string]any{}, `[["body","body"]]`},
		{map[string]any{"body": nil}, `[["body","body"]]`},
		{map[string]any{"body": ""}, `[["body","body"]]`},
		{map[string]any{"body": " \t\n "}, `[["body","body"]]`},
		{map[string]any{"body": long + "x"}, `[["body","body"]]`},
		{map[string]any{"body": 42}, `[["body","body"]]`},
		{map[string]any{"body": []string{"a"}}, `[["body","body"]]`},
		{`["body"]`, `[["body"]]`},
	} {
		for _, r := range []qres{
			e.q("POST", runComments(s.run), s.editorKey, bad.body),
			e.q("PATCH", commentPath(id1), s.editorKey, bad.body),
		} {
			if got := e.locs(r); fmt.Sprint(got) != bad.loc {
				t.Fatalf("body %v located at %v, want %s", bad.body, got, bad.loc)
			}
		}
	}
	e.detail(e.q("POST", runComments(s.run), s.editorKey, `{"body": "unfinished`), 400, "not valid JSON")
	e.detail(e.q("POST", runComments(s.run), s.editorKey, nil), 400, "empty")
	if l := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil)); len(l.List) != 3 {
		t.Fatalf("a refused comment was stored: %d comments", len(l.List))
	}

	// Only the author edits, with PUT or PATCH.
	up := e.qmust(200, e.q("PUT", commentPath(id1), s.editorKey, map[string]any{"body": "root cause: full disk"})).Obj
	if up["id"] != id1 || up["body"] != "root cause: full disk" || up["created_at"] != c1["created_at"] || rfc3339(t, up["updated_at"]).Before(rfc3339(t, c1["created_at"])) {
		t.Fatalf("edited comment = %v", up)
	}
	if ev := nextCommentEvent(t, events, "comment.updated"); num(ev, "sequence") != 2 || obj(ev, "comment")["body"] != "root cause: full disk" {
		t.Fatalf("comment.updated event = %v", ev)
	}
	up = e.qmust(200, e.q("PATCH", commentPath(id1), s.editorKey, map[string]any{"body": "root cause: full /var"})).Obj
	if up["body"] != "root cause: full /var" {
		t.Fatalf("patched comment = %v", up)
	}
	if ev := nextCommentEvent(t, events, "comment.updated"); num(ev, "sequence") != 3 {
		t.Fatalf("comment.updated event = %v", ev)
	}
	e.detail(e.q("PUT", commentPath(id1), s.otherKey, map[string]any{"body": "mine now"}), 403, "only the author")
	e.detail(e.q("PATCH", commentPath(id1), s.saKey, map[string]any{"body": "admins too?"}), 403, "only the author")
	e.detail(e.q("PATCH", commentPath(id1), s.viewerKey, map[string]any{"body": "viewers?"}), 403, "editor role")

	// The author or a space admin deletes; nobody else.
	second := all.List[1].(map[string]any)["id"].(string)
	e.detail(e.q("DELETE", commentPath(id1), s.otherKey, nil), 403, "only the author")
	e.detail(e.q("DELETE", commentPath(id1), s.viewerKey, nil), 403, "editor role")
	del := e.qmust(204, e.q("DELETE", commentPath(id1), s.editorKey, nil))
	if len(del.Raw) != 0 {
		t.Fatalf("204 with a body: %s", del.Raw)
	}
	if ev := nextCommentEvent(t, events, "comment.deleted"); obj(ev, "comment")["id"] != id1 || num(ev, "sequence") != 4 {
		t.Fatalf("comment.deleted event = %v", ev)
	}
	e.qmust(204, e.q("DELETE", commentPath(second), s.saKey, nil)) // another's, as a space admin
	if ev := nextCommentEvent(t, events, "comment.deleted"); obj(ev, "comment")["id"] != second {
		t.Fatalf("comment.deleted event = %v", ev)
	}
	e.detail(e.q("DELETE", commentPath(id1), s.editorKey, nil), 404, "comment "+id1+" not found")
	e.detail(e.q("PUT", commentPath(id1), s.editorKey, map[string]any{"body": "back?"}), 404, "comment "+id1+" not found")
	if l := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil)); len(l.List) != 1 || l.List[0].(map[string]any)["body"] != long {
		t.Fatalf("comments after deletes = %d", len(l.List))
	}
}

func rfc3339(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%v is not an RFC 3339 time: %v", v, err)
	}
	return ts
}

// nextCommentEvent waits for the next event of type typ, skipping run events.
func nextCommentEvent(t *testing.T, sub *nats.Subscription, typ string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no %s event: %v", typ, err)
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev["type"] == typ {
			ev["subject"] = m.Subject
			return ev
		}
		if strings.HasPrefix(ev["type"].(string), "comment.") {
			t.Fatalf("event %v, want %s", ev["type"], typ)
		}
	}
}

func TestCommentsTenancy(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	s := newCommentSetup(e)
	e.newSpace("ops")
	opsRun, opsTask := e.finishedRun("ops", "deploys")
	c := e.qmust(201, e.q("POST", runComments(s.run), s.editorKey, map[string]any{"body": "finance only"})).Obj
	id := c["id"].(string)
	opsComment := e.qmust(201, e.q("POST", fmt.Sprintf("/api/v1.0/spaces/ops/orchestration/runs/%d/comments", opsRun), adminKey, map[string]any{"body": "ops only"})).Obj["id"].(string)

	// Ids of another space answer exactly as ids that exist nowhere, even for a global admin
	// who sees both spaces.
	same := func(what string, other, missing qres, want, wantMissing string) {
		t.Helper()
		if other.Status != 404 || string(other.Raw) != fmt.Sprintf(`{"detail":%q}`, want) ||
			missing.Status != 404 || string(missing.Raw) != fmt.Sprintf(`{"detail":%q}`, wantMissing) {
			t.Fatalf("%s of another space: %d %s; a missing one: %d %s", what, other.Status, other.Raw, missing.Status, missing.Raw)
		}
	}
	same("run", e.q("GET", runComments(opsRun), adminKey, nil), e.q("GET", runComments(999999), adminKey, nil), fmt.Sprintf("run %d not found", opsRun), "run 999999 not found")
	same("run", e.q("POST", runComments(opsRun), adminKey, map[string]any{"body": "x"}), e.q("POST", runComments(999999), adminKey, map[string]any{"body": "x"}), fmt.Sprintf("run %d not found", opsRun), "run 999999 not found")
	same("task run", e.q("GET", taskRunComments(opsTask), adminKey, nil), e.q("GET", taskRunComments(999999), adminKey, nil), fmt.Sprintf("task run %d not found", opsTask), "task run 999999 not found")
	same("task run", e.q("POST", taskRunComments(opsTask), adminKey, map[string]any{"body": "x"}), e.q("POST", taskRunComments(999999), adminKey, map[string]any{"body": "x"}), fmt.Sprintf("task run %d not found", opsTask), "task run 999999 not found")
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		other := e.q(method, commentPath(opsComment), adminKey, map[string]any{"body": "x"})
		missing := e.q(method, commentPath("cmt_nothing"), adminKey, map[string]any{"body": "x"})
		if other.Status != 404 || string(other.Raw) != `{"detail":"comment `+opsComment+` not found"}` ||
			string(missing.Raw) != `{"detail":"comment cmt_nothing not found"}` {
			t.Fatalf("%s a comment of another space: %s; a missing one: %s", method, other.Raw, missing.Raw)
		}
	}
	e.detail(e.q("GET", commentsBase+"runs/abc/comments", adminKey, nil), 404, "run abc not found")
	if l := e.qmust(200, e.q("GET", fmt.Sprintf("/api/v1.0/spaces/ops/orchestration/runs/%d/comments", opsRun), adminKey, nil)); len(l.List) != 1 || l.List[0].(map[string]any)["body"] != "ops only" {
		t.Fatalf("ops comments = %s", l.Raw)
	}

	// A non-member gets the 404 of a missing space, on every route.
	for _, r := range []struct{ method, path string }{
		{"GET", runComments(s.run)}, {"POST", runComments(s.run)},
		{"GET", taskRunComments(s.taskRun)}, {"POST", taskRunComments(s.taskRun)},
		{"PUT", commentPath(id)}, {"PATCH", commentPath(id)}, {"DELETE", commentPath(id)},
	} {
		member := e.q(r.method, r.path, s.outsiderKey, map[string]any{"body": "x"})
		missing := e.q(r.method, strings.Replace(r.path, "/finance/", "/nowhere/", 1), s.outsiderKey, map[string]any{"body": "x"})
		if member.Status != 404 || string(member.Raw) != `{"detail":"space finance not found"}` || string(missing.Raw) != `{"detail":"space nowhere not found"}` {
			t.Fatalf("outsider %s %s: %s; missing space: %s", r.method, r.path, member.Raw, missing.Raw)
		}
	}
	if l := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil)); len(l.List) != 1 || l.List[0].(map[string]any)["body"] != "finance only" {
		t.Fatalf("finance comments = %s", l.Raw)
	}
}

func TestCommentsIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	s := newCommentSetup(e)
	post := func(key, body string) qres {
		return e.q("POST", runComments(s.run), s.editorKey, map[string]any{"body": body}, "Idempotency-Key", key)
	}
	first := e.qmust(201, post("k-1", "once")).Obj
	again := e.qmust(201, post("k-1", "once")).Obj
	if again["id"] != first["id"] || again["created_at"] != first["created_at"] {
		t.Fatalf("the same key made %v, then %v", first, again)
	}
	other := e.qmust(201, post("k-2", "once")).Obj
	if other["id"] == first["id"] {
		t.Fatal("another key returned the first comment")
	}
	// The same key on another run is another command.
	if l := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil)); len(l.List) != 2 {
		t.Fatalf("%d comments, want 2: %s", len(l.List), l.Raw)
	}
	id := first["id"].(string)
	edit := func(key, body string) qres {
		return e.q("PATCH", commentPath(id), s.editorKey, map[string]any{"body": body}, "Idempotency-Key", key)
	}
	e.qmust(200, edit("e-1", "edit one"))
	e.qmust(200, edit("e-2", "edit two"))
	// A repeated edit answers as it did the first time and changes nothing.
	if r := e.qmust(200, edit("e-1", "edit one")).Obj; r["body"] != "edit two" {
		t.Fatalf("a repeated edit answered %v", r)
	}
	del := func() qres { return e.q("DELETE", commentPath(id), s.editorKey, nil, "Idempotency-Key", "d-1") }
	e.qmust(204, del())
	e.qmust(204, del()) // the comment is gone, the answer is the first one's
	e.detail(e.q("DELETE", commentPath(id), s.editorKey, nil), 404, "not found")
	if got := e.locs(e.q("POST", runComments(s.run), s.editorKey, map[string]any{"body": "x"}, "Idempotency-Key", strings.Repeat("k", 256))); !strings.Contains(fmt.Sprint(got), "Idempotency-Key") {
		t.Fatalf("a long key located at %v", got)
	}
}

// TestCommentCommandsDeliveredTwice publishes comment commands on JetStream as a gateway
// does, each twice under different message ids, so that the stream keeps both copies and an
// executor handles both: one comment is made, and a late copy of an edit does not undo the
// edit that followed it.
func TestCommentCommandsDeliveredTwice(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	s := newCommentSetup(e)
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(env command.Envelope, msgID string) {
		t.Helper()
		data, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, natsbus.CommandSubject(env.Type), data, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	drained := func() {
		t.Helper()
		poll(t, 10*time.Second, "the command queue to drain", func() bool {
			info, err := js.Stream(ctx, natsbus.StreamCommands)
			return err == nil && info.CachedInfo().State.Msgs == 0
		})
	}
	mk := func(id, typ string, issued time.Time, payload any) command.Envelope {
		env, err := command.New(id, typ, "finance", s.editorID, payload)
		if err != nil {
			t.Fatal(err)
		}
		env.IssuedAt = issued
		return env
	}

	t0 := time.Now().UTC()
	create := mk("twice-create", command.TypeCreateComment, t0, command.CreateComment{TargetType: comment.TargetRun, TargetID: s.run, Body: "only once"})
	publish(create, "copy-1")
	publish(create, "copy-2")
	drained()
	l := e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil))
	if len(l.List) != 1 || l.Header.Get("X-Total-Count") != "1" || l.List[0].(map[string]any)["id"] != comment.IDFor(create.ID) {
		t.Fatalf("a create delivered twice made %s", l.Raw)
	}

	id := comment.IDFor(create.ID)
	edit1 := mk("twice-edit-1", command.TypeUpdateComment, t0.Add(time.Second), command.UpdateComment{CommentID: id, Body: "first edit"})
	edit2 := mk("twice-edit-2", command.TypeUpdateComment, t0.Add(2*time.Second), command.UpdateComment{CommentID: id, Body: "second edit"})
	publish(edit1, "e1-copy-1")
	drained()
	publish(edit2, "e2-copy-1")
	drained()
	publish(edit1, "e1-copy-2") // late: issued before the edit already applied
	drained()
	// Another edit issued before the last one applied but delivered after it (out of order
	// from two gateways) is stale too.
	publish(mk("twice-edit-0", command.TypeUpdateComment, t0.Add(1500*time.Millisecond), command.UpdateComment{CommentID: id, Body: "overtaken"}), "e0")
	drained()
	l = e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil))
	if len(l.List) != 1 || l.List[0].(map[string]any)["body"] != "second edit" {
		t.Fatalf("a late copy of an edit changed the comment: %s", l.Raw)
	}

	del := mk("twice-delete", command.TypeDeleteComment, t0.Add(3*time.Second), command.DeleteComment{CommentID: id, Role: "editor"})
	publish(del, "d-copy-1")
	publish(del, "d-copy-2")
	drained()
	if l = e.qmust(200, e.q("GET", runComments(s.run), s.viewerKey, nil)); len(l.List) != 0 {
		t.Fatalf("comments after a delete delivered twice: %s", l.Raw)
	}
	// Both copies left one outcome, a success, which the command resource shows.
	r := e.must(200, e.call("GET", "/api/commands/"+del.ID, nil))
	if obj(r.Body, "command")["status"] != "succeeded" {
		t.Fatalf("delete command = %s", r.Raw)
	}
}

// TestCommentsLateReply runs a gateway that waits no time for replies: writes answer 202 with
// the command to poll, and the command resource shows the outcome once an executor handled
// it.
func TestCommentsLateReply(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"RUNYARD_COMMAND_WAIT": "1ns"})
	e.newSpace("finance")
	editorID, editorKey := e.newUser("editor")
	e.setRole(adminKey, "finance", editorID, "editor")
	e.must(200, e.call("POST", "/api/pipelines?space=finance", map[string]any{"pipeline": map[string]any{"uuid": "ledger", "blocks": []any{block("a", noop)}}}))
	sr := e.must(200, e.call("POST", "/api/pipelines/ledger/pipeline_schedules?space=finance",
		map[string]any{"pipeline_schedule": map[string]any{"name": "api", "schedule_type": "api", "status": "active"}}))
	sched := obj(sr.Body, "pipeline_schedule")
	tr := e.trigger(num(sched, "id"), sched["token"].(string), nil)
	runID := num(obj(tr.Body, "pipeline_run"), "id")
	if tr.Status == 202 {
		cmd := obj(tr.Body, "command")
		poll(t, 10*time.Second, "the trigger's run", func() bool {
			r := e.must(200, e.call("GET", cmd["url"].(string), nil))
			runID = num(obj(obj(r.Body, "command"), "pipeline_run"), "id")
			return runID != 0
		})
	} else {
		e.must(200, tr)
	}

	// Replies race a timer of a nanosecond: nearly every write is answered 202, but the check
	// only needs one.
	accepted := 0
	for i := 0; i < 5 && accepted == 0; i++ {
		r := e.q("POST", runComments(runID), editorKey, map[string]any{"body": fmt.Sprint("note ", i)})
		if r.Status == 201 {
			continue
		}
		e.qmust(202, r)
		accepted++
		cmd := obj(r.Obj, "command")
		if cmd["type"] != "comment.create" || cmd["status"] != "pending" || !strings.HasPrefix(cmd["comment_id"].(string), "cmt_") {
			t.Fatalf("202 body = %s", r.Raw)
		}
		poll(t, 10*time.Second, "the comment command to succeed", func() bool {
			c := obj(e.must(200, e.call("GET", cmd["url"].(string), nil, as(editorKey)...)).Body, "command")
			if c["status"] == "failed" {
				t.Fatalf("comment command failed: %v", c)
			}
			return c["status"] == "succeeded"
		})
		found := false
		for _, it := range e.qmust(200, e.q("GET", runComments(runID), editorKey, nil)).List {
			found = found || it.(map[string]any)["id"] == cmd["comment_id"]
		}
		if !found {
			t.Fatalf("comment %v of the accepted command is not listed", cmd["comment_id"])
		}
	}
	if accepted == 0 {
		t.Fatal("no write was answered 202")
	}
}

// TestCommentsOnMongo goes through every write once on the MongoDB store.
func TestCommentsOnMongo(t *testing.T) {
	t.Parallel()
	e := startMongo(t, nil)
	e.newSpace("finance")
	runID, taskRunID := e.finishedRun("finance", "ledger")
	c := e.qmust(201, e.q("POST", runComments(runID), adminKey, map[string]any{"body": "on mongo"})).Obj
	e.qmust(201, e.q("POST", taskRunComments(taskRunID), adminKey, map[string]any{"body": "task"}))
	id := c["id"].(string)
	if up := e.qmust(200, e.q("PUT", commentPath(id), adminKey, map[string]any{"body": "edited"})).Obj; up["body"] != "edited" {
		t.Fatalf("edited = %v", up)
	}
	if l := e.qmust(200, e.q("GET", runComments(runID), adminKey, nil)); len(l.List) != 1 || l.List[0].(map[string]any)["body"] != "edited" || l.Header.Get("X-Total-Count") != "1" {
		t.Fatalf("run comments = %s", l.Raw)
	}
	e.qmust(204, e.q("DELETE", commentPath(id), adminKey, nil))
	if l := e.qmust(200, e.q("GET", runComments(runID), adminKey, nil)); len(l.List) != 0 {
		t.Fatalf("run comments after delete = %s", l.Raw)
	}
	if l := e.qmust(200, e.q("GET", taskRunComments(taskRunID), adminKey, nil)); len(l.List) != 1 {
		t.Fatalf("task run comments = %s", l.Raw)
	}
}
