package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// qres is an answer of the Qarion-compatible API, whose lists are bare arrays.
type qres struct {
	Status int
	Raw    []byte
	Header http.Header
	Obj    map[string]any
	List   []any
}

// q calls the Qarion-compatible API with key as a bearer token (an empty key sends none),
// adding headers given as name, value pairs.
func (e *env) q(method, path, key string, body any, headers ...string) qres {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := qres{Status: res.StatusCode, Raw: raw, Header: res.Header}
	switch {
	case len(raw) == 0:
	case raw[0] == '[':
		err = json.Unmarshal(raw, &out.List)
	default:
		err = json.Unmarshal(raw, &out.Obj)
	}
	if err != nil {
		e.t.Fatalf("%s %s: body is not JSON: %s", method, path, raw)
	}
	return out
}

func (e *env) qmust(status int, r qres) qres {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// detail checks a Qarion error answer: its status and a detail string containing want.
func (e *env) detail(r qres, status int, want string) {
	e.t.Helper()
	d, ok := r.Obj["detail"].(string)
	if r.Status != status || !ok || !strings.Contains(d, want) {
		e.t.Fatalf("got %d %s, want %d with a detail containing %q", r.Status, r.Raw, status, want)
	}
}

// locs returns the loc of every entry of a 422 answer, as JSON.
func (e *env) locs(r qres) []string {
	e.t.Helper()
	if r.Status != 422 {
		e.t.Fatalf("status %d, want 422: %s", r.Status, r.Raw)
	}
	entries, ok := r.Obj["detail"].([]any)
	if !ok || len(entries) == 0 {
		e.t.Fatalf("422 without a detail list: %s", r.Raw)
	}
	var out []string
	for _, en := range entries {
		m := en.(map[string]any)
		if m["type"] != "value_error" || m["msg"] == "" {
			e.t.Fatalf("422 entry not in FastAPI's shape: %s", r.Raw)
		}
		loc, _ := json.Marshal(m["loc"])
		out = append(out, string(loc))
	}
	return out
}

// newUser creates a user as the admin and a key for it; it returns the user's id and key.
func (e *env) newUser(username string) (string, string) {
	e.t.Helper()
	u := e.qmust(201, e.q("POST", "/api/v1.0/users", adminKey, map[string]any{"username": username, "name": strings.ToUpper(username)}))
	id := u.Obj["id"].(string)
	k := e.qmust(201, e.q("POST", "/api/v1.0/users/"+id+"/api-keys", adminKey, map[string]any{"name": username + "'s key"}))
	return id, k.Obj["key"].(string)
}

func (e *env) newSpace(slug string) {
	e.t.Helper()
	e.qmust(201, e.q("POST", "/api/v1.0/spaces", adminKey, map[string]any{"slug": slug, "name": "Space " + slug}))
}

// setRole makes userID a member of space with role, acting with the key by.
func (e *env) setRole(by, space, userID, role string) {
	e.t.Helper()
	r := e.qmust(200, e.q("PUT", "/api/v1.0/spaces/"+space+"/members/"+userID, by, map[string]any{"role": role}))
	if r.Obj["role"] != role || r.Obj["user_id"] != userID || r.Obj["space"] != space {
		e.t.Fatalf("membership = %s", r.Raw)
	}
}

// as is the header pair that makes a Mage-compatible call with key instead of the admin's.
func as(key string) []string { return []string{"Authorization", "Bearer " + key} }

func TestAccessUsersAndKeys(t *testing.T) {
	t.Parallel()
	e := start(t, nil)

	// The bootstrap key belongs to the global admin user.
	me := e.qmust(200, e.q("GET", "/api/v1.0/users/me", adminKey, nil))
	if me.Obj["username"] != "admin" || me.Obj["admin"] != true || me.Obj["id"] != "usr_admin" {
		t.Fatalf("the admin key's user = %s", me.Raw)
	}
	// X-API-KEY works too; no key or a wrong one is a 401 in Qarion's shape.
	e.must(200, e.call("GET", "/api/v1.0/users/me", nil, "no-auth", "", "X-API-KEY", adminKey))
	e.detail(e.q("GET", "/api/v1.0/users/me", "", nil), 401, "API key is required")
	e.detail(e.q("GET", "/api/v1.0/users/me", "nope", nil), 401, "not valid")
	e.detail(e.q("GET", "/api/v1.0/nothing", adminKey, nil), 404, "Not Found")

	aliceID, aliceKey := e.newUser("alice")
	bobID, _ := e.newUser("bob")
	if !strings.HasPrefix(aliceID, "usr_") || !strings.HasPrefix(aliceKey, "ryk_") {
		t.Fatalf("user id %q, key %q", aliceID, aliceKey)
	}
	e.detail(e.q("POST", "/api/v1.0/users", adminKey, map[string]any{"username": "alice"}), 409, "alice")
	if got := e.locs(e.q("POST", "/api/v1.0/users", adminKey, map[string]any{"username": "Not Valid"})); fmt.Sprint(got) != `[["body","username"]]` {
		t.Fatalf("bad username located at %v", got)
	}
	if got := e.locs(e.q("POST", "/api/v1.0/users", adminKey, map[string]any{"username": "carol", "admin": "yes"})); fmt.Sprint(got) != `[["body","admin"]]` {
		t.Fatalf("a string admin flag located at %v", got)
	}

	// Only global admins create users and spaces.
	e.detail(e.q("POST", "/api/v1.0/users", aliceKey, map[string]any{"username": "mallory"}), 403, "global admin")
	e.detail(e.q("POST", "/api/v1.0/spaces", aliceKey, map[string]any{"slug": "mine", "name": "Mine"}), 403, "global admin")

	// A user reads itself and manages its own keys, not another user's.
	r := e.qmust(200, e.q("GET", "/api/v1.0/users/me", aliceKey, nil))
	if r.Obj["id"] != aliceID || r.Obj["admin"] != false || r.Obj["name"] != "ALICE" {
		t.Fatalf("alice reads herself as %s", r.Raw)
	}
	e.qmust(200, e.q("GET", "/api/v1.0/users/"+aliceID, aliceKey, nil))
	e.detail(e.q("GET", "/api/v1.0/users/"+bobID, aliceKey, nil), 403, "user itself")
	e.detail(e.q("POST", "/api/v1.0/users/"+bobID+"/api-keys", aliceKey, map[string]any{"name": "stolen"}), 403, "user itself")
	e.detail(e.q("GET", "/api/v1.0/users/"+bobID+"/api-keys", aliceKey, nil), 403, "user itself")
	e.detail(e.q("GET", "/api/v1.0/users/usr_nobody", adminKey, nil), 404, "usr_nobody")
	if got := e.locs(e.q("POST", "/api/v1.0/users/me/api-keys", aliceKey, map[string]any{"name": ""})); fmt.Sprint(got) != `[["body","name"]]` {
		t.Fatalf("empty key name located at %v", got)
	}

	second := e.qmust(201, e.q("POST", "/api/v1.0/users/me/api-keys", aliceKey, map[string]any{"name": "ci"}))
	secondKey, secondID := second.Obj["key"].(string), second.Obj["id"].(string)
	if !strings.HasPrefix(secondID, "key_") || second.Obj["name"] != "ci" || second.Obj["created_at"] == nil {
		t.Fatalf("created key = %s", second.Raw)
	}
	e.qmust(200, e.q("GET", "/api/v1.0/users/me", secondKey, nil))
	keys := e.qmust(200, e.q("GET", "/api/v1.0/users/"+aliceID+"/api-keys", aliceKey, nil))
	if len(keys.List) != 2 || keys.Header.Get("X-Total-Count") != "2" || bytes.Contains(keys.Raw, []byte(`"key"`)) || bytes.Contains(keys.Raw, []byte(aliceKey)) {
		t.Fatalf("key list = %s", keys.Raw)
	}
	first := keys.List[0].(map[string]any)
	if first["name"] != "alice's key" || first["last_used_at"] == nil {
		t.Fatalf("first key = %v (used, so it has a last use)", first)
	}

	// A revoked key stops at once, though the gateway had it cached.
	e.qmust(204, e.q("DELETE", "/api/v1.0/users/me/api-keys/"+secondID, aliceKey, nil))
	e.detail(e.q("GET", "/api/v1.0/users/me", secondKey, nil), 401, "not valid")
	e.must(401, e.call("GET", "/api/pipelines", nil, as(secondKey)...))
	e.detail(e.q("DELETE", "/api/v1.0/users/me/api-keys/"+secondID, aliceKey, nil), 404, secondID)
	// An admin revokes anyone's key; the revoked user is then locked out.
	aliceKeyID := first["id"].(string)
	e.qmust(204, e.q("DELETE", "/api/v1.0/users/"+aliceID+"/api-keys/"+aliceKeyID, adminKey, nil))
	e.detail(e.q("GET", "/api/v1.0/users/me", aliceKey, nil), 401, "not valid")
}

func TestAccessMembershipsGuardTheMageAPI(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.newSpace("finance")
	saID, saKey := e.newUser("space-admin")
	viewerID, viewerKey := e.newUser("viewer")
	editorID, editorKey := e.newUser("editor")
	_, outsiderKey := e.newUser("outsider")

	e.setRole(adminKey, "finance", saID, "admin")
	// A space admin manages members; an editor or a viewer cannot.
	e.setRole(saKey, "finance", viewerID, "viewer")
	e.setRole(saKey, "finance", editorID, "editor")
	e.detail(e.q("PUT", "/api/v1.0/spaces/finance/members/"+editorID, viewerKey, map[string]any{"role": "admin"}), 403, "admin role")
	e.detail(e.q("PUT", "/api/v1.0/spaces/finance/members/"+viewerID, editorKey, map[string]any{"role": "editor"}), 403, "admin role")
	e.detail(e.q("DELETE", "/api/v1.0/spaces/finance/members/"+viewerID, editorKey, nil), 403, "admin role")
	if got := e.locs(e.q("PUT", "/api/v1.0/spaces/finance/members/"+editorID, saKey, map[string]any{"role": "owner"})); fmt.Sprint(got) != `[["body","role"]]` {
		t.Fatalf("bad role located at %v", got)
	}
	e.detail(e.q("PUT", "/api/v1.0/spaces/finance/members/usr_ghost", saKey, map[string]any{"role": "viewer"}), 404, "usr_ghost")

	members := e.qmust(200, e.q("GET", "/api/v1.0/spaces/finance/members", viewerKey, nil))
	if len(members.List) != 3 || members.Header.Get("X-Total-Count") != "3" {
		t.Fatalf("members = %s", members.Raw)
	}
	sp := e.qmust(200, e.q("GET", "/api/v1.0/spaces/finance", viewerKey, nil))
	if sp.Obj["slug"] != "finance" || sp.Obj["role"] != "viewer" || num(sp.Obj, "member_count") != 3 || !bytes.Contains(sp.Raw, []byte(`"username":"editor"`)) {
		t.Fatalf("space as a viewer = %s", sp.Raw)
	}
	mine := e.qmust(200, e.q("GET", "/api/v1.0/spaces", viewerKey, nil))
	if len(mine.List) != 1 || mine.List[0].(map[string]any)["slug"] != "finance" || mine.List[0].(map[string]any)["role"] != "viewer" {
		t.Fatalf("the viewer's spaces = %s", mine.Raw)
	}
	if all := e.qmust(200, e.q("GET", "/api/v1.0/spaces", adminKey, nil)); len(all.List) != 2 { // default and finance
		t.Fatalf("a global admin's spaces = %s", all.Raw)
	}

	// The Mage-compatible API in that space: the admin sets up a pipeline and a schedule.
	e.must(200, e.call("POST", "/api/pipelines?space=finance", map[string]any{"pipeline": map[string]any{"uuid": "ledger", "blocks": []any{block("a", noop)}}}))
	sr := e.must(200, e.call("POST", "/api/pipelines/ledger/pipeline_schedules?space=finance",
		map[string]any{"pipeline_schedule": map[string]any{"name": "api", "schedule_type": "api", "status": "active"}}))
	sched := obj(sr.Body, "pipeline_schedule")
	schedPath := fmt.Sprintf("/api/pipeline_schedules/%d", num(sched, "id"))

	// A viewer reads but may not write.
	e.must(200, e.call("GET", "/api/pipelines?space=finance", nil, as(viewerKey)...))
	e.must(200, e.call("GET", "/api/pipelines/ledger?space=finance", nil, as(viewerKey)...))
	e.must(200, e.call("GET", schedPath, nil, as(viewerKey)...))
	e.must(200, e.call("GET", schedPath+"/pipeline_runs", nil, as(viewerKey)...))
	for _, w := range []struct{ method, path string }{
		{"POST", "/api/pipelines?space=finance"},
		{"PUT", "/api/pipelines/ledger?space=finance"},
		{"DELETE", "/api/pipelines/ledger?space=finance"},
		{"PUT", schedPath},
		{"DELETE", schedPath},
		{"POST", schedPath + "/pipeline_runs"},
		{"POST", "/api/pipelines/ledger/backfills?space=finance"},
	} {
		r := e.call(w.method, w.path, map[string]any{"pipeline": map[string]any{"uuid": "x"}}, as(viewerKey)...)
		if r.Status != 403 || obj(r.Body, "error")["type"] != "forbidden" || !strings.Contains(r.Raw, "editor role") {
			t.Fatalf("viewer %s %s: %d %s, want 403 forbidden", w.method, w.path, r.Status, r.Raw)
		}
	}

	// An editor writes: a pipeline, a schedule change, a manual run.
	e.must(200, e.call("POST", "/api/pipelines?space=finance", map[string]any{"pipeline": map[string]any{"uuid": "journal", "blocks": []any{block("a", noop)}}}, as(editorKey)...))
	e.must(200, e.call("PUT", schedPath, map[string]any{"pipeline_schedule": map[string]any{"description": "edited"}}, as(editorKey)...))
	run := obj(e.must(200, e.call("POST", schedPath+"/pipeline_runs", map[string]any{}, as(editorKey)...)).Body, "pipeline_run")
	runPath := fmt.Sprintf("/api/pipeline_runs/%d", num(run, "id"))
	e.waitRun(num(run, "id"))
	e.must(200, e.call("GET", runPath, nil, as(viewerKey)...))

	// The token trigger needs no key and no membership.
	e.must(200, e.trigger(num(sched, "id"), sched["token"].(string), nil))

	// A non-member gets the 404 of a missing record, byte for byte: the same request before
	// and after the record exists.
	before := e.call("GET", "/api/pipelines?space=treasury", nil, as(outsiderKey)...)
	e.newSpace("treasury")
	after := e.call("GET", "/api/pipelines?space=treasury", nil, as(outsiderKey)...)
	if before.Status != 404 || after.Status != 404 || before.Raw != after.Raw {
		t.Fatalf("a missing space answered %d %s, a space of others %d %s", before.Status, before.Raw, after.Status, after.Raw)
	}
	for _, path := range []string{schedPath, runPath, runPath + "/block_runs", "/api/pipelines/ledger?space=finance", "/api/pipeline_runs?space=finance"} {
		e.must(404, e.call("GET", path, nil, as(outsiderKey)...))
	}
	e.must(404, e.call("PUT", runPath, map[string]any{"pipeline_run": map[string]any{"status": "cancelled"}}, as(outsiderKey)...))
	hidden := e.call("GET", schedPath, nil, as(outsiderKey)...)
	e.must(200, e.call("DELETE", schedPath, nil, as(editorKey)...))
	gone := e.call("GET", schedPath, nil, as(outsiderKey)...)
	if hidden.Status != 404 || !bytes.Equal([]byte(hidden.Raw), []byte(gone.Raw)) {
		t.Fatalf("a schedule of others answered %s, a deleted one %s", hidden.Raw, gone.Raw)
	}
	// Members of one space see nothing of the default space they do not belong to.
	e.must(404, e.call("GET", "/api/pipelines", nil, as(viewerKey)...))

	// Role changes take effect at once on this gateway.
	e.setRole(saKey, "finance", editorID, "viewer")
	e.must(403, e.call("POST", "/api/pipelines?space=finance", map[string]any{"pipeline": map[string]any{"uuid": "late"}}, as(editorKey)...))
	e.qmust(204, e.q("DELETE", "/api/v1.0/spaces/finance/members/"+viewerID, saKey, nil))
	e.must(404, e.call("GET", "/api/pipelines?space=finance", nil, as(viewerKey)...))
	e.detail(e.q("DELETE", "/api/v1.0/spaces/finance/members/"+viewerID, saKey, nil), 404, "not a member")
}

func TestAccessSpaceNotFoundIsTheSameForNonMembers(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	_, key := e.newUser("someone")
	memberID, memberKey := e.newUser("member")
	paths := []string{
		"/api/v1.0/spaces/audit",
		"/api/v1.0/spaces/audit/members",
		"/api/v1.0/spaces/audit/teams",
	}
	var before [][]byte
	for _, p := range paths {
		r := e.q("GET", p, key, nil)
		e.detail(r, 404, "space audit not found")
		before = append(before, r.Raw)
	}
	e.newSpace("audit")
	e.setRole(adminKey, "audit", memberID, "viewer")
	for i, p := range paths {
		e.qmust(200, e.q("GET", p, memberKey, nil))
		if r := e.q("GET", p, key, nil); !bytes.Equal(r.Raw, before[i]) || r.Status != 404 {
			t.Fatalf("GET %s: a non-member got %d %s, a missing space %s", p, r.Status, r.Raw, before[i])
		}
	}
	e.detail(e.q("GET", "/api/v1.0/spaces/Not_A_Slug", adminKey, nil), 404, "not found")
}

func TestAccessSpaceCreationAndPagination(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, s := range []string{"alpha", "bravo", "charlie", "delta", "echo"} {
		e.newSpace(s)
	}
	e.detail(e.q("POST", "/api/v1.0/spaces", adminKey, map[string]any{"slug": "alpha", "name": "Again"}), 409, "alpha")
	if got := e.locs(e.q("POST", "/api/v1.0/spaces", adminKey, map[string]any{"slug": "Bad Slug"})); fmt.Sprint(got) != `[["body","slug"] ["body","name"]]` {
		t.Fatalf("bad space located at %v", got)
	}
	if got := e.locs(e.q("POST", "/api/v1.0/spaces", adminKey, map[string]any{"slug": 7, "name": "x"})); fmt.Sprint(got) != `[["body","slug"]]` {
		t.Fatalf("a number slug located at %v", got)
	}
	e.detail(e.q("POST", "/api/v1.0/spaces", adminKey, "{not json"), 400, "not valid JSON")

	// Six spaces (with default), by slug: alpha bravo charlie default delta echo.
	r := e.qmust(200, e.q("GET", "/api/v1.0/spaces?page=2&size=2", adminKey, nil))
	if len(r.List) != 2 || r.List[0].(map[string]any)["slug"] != "charlie" || r.List[1].(map[string]any)["slug"] != "default" {
		t.Fatalf("page 2 = %s", r.Raw)
	}
	for h, want := range map[string]string{"X-Total-Count": "6", "X-Page": "2", "X-Page-Size": "2", "X-Total-Pages": "3"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	link := r.Header.Get("Link")
	for _, want := range []string{`page=3&size=2>; rel="next"`, `page=1&size=2>; rel="prev"`, `page=1&size=2>; rel="first"`, `page=3&size=2>; rel="last"`, e.base + "/api/v1.0/spaces?"} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
	last := e.qmust(200, e.q("GET", "/api/v1.0/spaces?page=3&size=2", adminKey, nil))
	if len(last.List) != 2 || strings.Contains(last.Header.Get("Link"), `rel="next"`) {
		t.Fatalf("last page = %s, Link %q", last.Raw, last.Header.Get("Link"))
	}
	past := e.qmust(200, e.q("GET", "/api/v1.0/spaces?page=9&size=2", adminKey, nil))
	if string(past.Raw) != "[]" || past.Header.Get("X-Total-Count") != "6" {
		t.Fatalf("past the last page = %s", past.Raw)
	}
	all := e.qmust(200, e.q("GET", "/api/v1.0/spaces", adminKey, nil))
	if len(all.List) != 6 || all.Header.Get("X-Page-Size") != "100" || all.Header.Get("X-Total-Pages") != "1" {
		t.Fatalf("default page = %d items, size %q", len(all.List), all.Header.Get("X-Page-Size"))
	}
	for _, c := range []struct{ query, loc string }{
		{"page=0", `[["query","page"]]`},
		{"page=x", `[["query","page"]]`},
		{"size=0", `[["query","size"]]`},
		{"size=1001", `[["query","size"]]`},
		{"page=-1&size=abc", `[["query","page"] ["query","size"]]`},
	} {
		if got := e.locs(e.q("GET", "/api/v1.0/spaces?"+c.query, adminKey, nil)); fmt.Sprint(got) != c.loc {
			t.Errorf("%s located at %v, want %s", c.query, got, c.loc)
		}
	}
}

func TestAccessTeamsAndWatches(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.newSpace("growth")
	viewerID, viewerKey := e.newUser("viewer")
	editorID, editorKey := e.newUser("editor")
	_, outsiderKey := e.newUser("outsider")
	e.setRole(adminKey, "growth", viewerID, "viewer")
	e.setRole(adminKey, "growth", editorID, "editor")

	base := "/api/v1.0/spaces/growth/teams"
	team := e.qmust(201, e.q("POST", base, editorKey, map[string]any{"name": "Platform", "description": "runs the platform"}))
	id := team.Obj["id"].(string)
	if !strings.HasPrefix(id, "team_") || team.Obj["space"] != "growth" || team.Obj["description"] != "runs the platform" {
		t.Fatalf("created team = %s", team.Raw)
	}
	e.qmust(201, e.q("POST", base, editorKey, map[string]any{"name": "Analytics"}))
	e.detail(e.q("POST", base, editorKey, map[string]any{"name": "Platform"}), 409, "Platform")
	e.detail(e.q("POST", base, viewerKey, map[string]any{"name": "Viewers"}), 403, "editor role")
	if got := e.locs(e.q("POST", base, editorKey, map[string]any{"name": "  "})); fmt.Sprint(got) != `[["body","name"]]` {
		t.Fatalf("blank team name located at %v", got)
	}

	list := e.qmust(200, e.q("GET", base, viewerKey, nil))
	if len(list.List) != 2 || list.List[0].(map[string]any)["name"] != "Analytics" || list.Header.Get("X-Total-Count") != "2" {
		t.Fatalf("teams = %s", list.Raw)
	}
	e.qmust(200, e.q("GET", base+"/"+id, viewerKey, nil))
	e.detail(e.q("GET", base+"/team_nope", viewerKey, nil), 404, "team_nope")
	e.detail(e.q("GET", base, outsiderKey, nil), 404, "space growth not found")

	up := e.qmust(200, e.q("PATCH", base+"/"+id, editorKey, map[string]any{"name": "Core platform"}))
	if up.Obj["name"] != "Core platform" || up.Obj["description"] != "runs the platform" {
		t.Fatalf("patched team = %s", up.Raw)
	}
	e.detail(e.q("PATCH", base+"/"+id, editorKey, map[string]any{"name": "Analytics"}), 409, "Analytics")
	e.detail(e.q("PATCH", base+"/"+id, viewerKey, map[string]any{"name": "Mine"}), 403, "editor role")
	if got := e.locs(e.q("PATCH", base+"/"+id, editorKey, map[string]any{"name": strings.Repeat("n", 201)})); fmt.Sprint(got) != `[["body","name"]]` {
		t.Fatalf("long team name located at %v", got)
	}
	e.detail(e.q("DELETE", base+"/"+id, viewerKey, nil), 403, "editor role")
	e.qmust(204, e.q("DELETE", base+"/"+id, editorKey, nil))
	e.detail(e.q("GET", base+"/"+id, viewerKey, nil), 404, id)
	e.detail(e.q("DELETE", base+"/"+id, editorKey, nil), 404, id)

	// Watching: a viewer is enough; the pipeline must exist in the space.
	e.must(200, e.call("POST", "/api/pipelines?space=growth", map[string]any{"pipeline": map[string]any{"uuid": "signups", "blocks": []any{block("a", noop)}}}, as(editorKey)...))
	watch := "/api/v1.0/spaces/growth/orchestration/pipelines/signups/watch"
	if r := e.qmust(200, e.q("PUT", watch, viewerKey, nil)); r.Obj["watched"] != true {
		t.Fatalf("watch = %s", r.Raw)
	}
	e.qmust(200, e.q("PUT", watch, viewerKey, nil)) // again: still watched
	if r := e.qmust(200, e.q("DELETE", watch, viewerKey, nil)); r.Obj["watched"] != false {
		t.Fatalf("unwatch = %s", r.Raw)
	}
	e.qmust(200, e.q("DELETE", watch, viewerKey, nil))
	e.detail(e.q("PUT", "/api/v1.0/spaces/growth/orchestration/pipelines/ghost/watch", viewerKey, nil), 404, "ghost")
	e.detail(e.q("PUT", watch, outsiderKey, nil), 404, "space growth not found")
}
