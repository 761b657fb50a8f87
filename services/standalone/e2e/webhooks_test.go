package e2e_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookReceiver is a webhook endpoint on loopback that checks each request's signature with
// the recipe of docs/events.md and keeps the events it was sent.
type hookReceiver struct {
	*httptest.Server
	t      testing.TB
	mu     sync.Mutex
	secret string
	events []map[string]any
	bad    []string
}

func newHookReceiver(t testing.TB) *hookReceiver {
	r := &hookReceiver{t: t}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ts := req.Header.Get("X-Runyard-Timestamp")
		r.mu.Lock()
		defer r.mu.Unlock()
		mac := hmac.New(sha256.New, []byte(r.secret))
		mac.Write([]byte(ts + "." + string(body)))
		if got, want := req.Header.Get("X-Runyard-Signature"), "v1="+hex.EncodeToString(mac.Sum(nil)); got != want {
			r.bad = append(r.bad, fmt.Sprintf("signature %q, want %q", got, want))
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			r.bad = append(r.bad, "body is not JSON: "+string(body))
		}
		if req.Header.Get("X-Runyard-Event") != ev["type"] {
			r.bad = append(r.bad, fmt.Sprintf("X-Runyard-Event %q for a %v event", req.Header.Get("X-Runyard-Event"), ev["type"]))
		}
		r.events = append(r.events, ev)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("bad deliveries: %v", r.bad)
	}
	return slices.Clone(r.events)
}

// runStatuses lists the statuses of the pipeline_run.status_changed events received for run id.
func runStatuses(evs []map[string]any, id int64) []string {
	var out []string
	for _, ev := range evs {
		pr := obj(ev, "pipeline_run")
		if ev["type"] == "pipeline_run.status_changed" && num(pr, "id") == id {
			out = append(out, pr["status"].(string))
		}
	}
	return out
}

func TestWebhooksDeliverRunEvents(t *testing.T) {
	t.Parallel()
	testWebhooksDeliverRunEvents(t, start(t, map[string]string{"RUNYARD_CONNECTOR_ALLOW_PRIVATE": "true"}))
}

func TestWebhooksDeliverRunEventsMongo(t *testing.T) {
	t.Parallel()
	testWebhooksDeliverRunEvents(t, startMongo(t, map[string]string{"RUNYARD_CONNECTOR_ALLOW_PRIVATE": "true"}))
}

func testWebhooksDeliverRunEvents(t *testing.T, e *env) {
	e.newSpace("finance")
	runsOnly, all, other := newHookReceiver(t), newHookReceiver(t), newHookReceiver(t)

	base := "/api/v1.0/spaces/default/webhooks"
	create := func(space string, r *hookReceiver, body map[string]any) string {
		t.Helper()
		body["url"] = r.URL + "/runyard"
		res := e.qmust(201, e.q("POST", "/api/v1.0/spaces/"+space+"/webhooks", adminKey, body))
		r.mu.Lock()
		r.secret = res.Obj["secret"].(string)
		r.mu.Unlock()
		return res.Obj["id"].(string)
	}
	runsID := create("default", runsOnly, map[string]any{"event_types": []string{"pipeline_run.status_changed"}, "pipeline_ids": []string{"ledger"}})
	create("default", all, map[string]any{})
	create("finance", other, map[string]any{})

	ledger, ledgerToken := e.pipelineWithSchedule("ledger", block("a", noop))
	journal, journalToken := e.pipelineWithSchedule("journal", block("a", noop))
	e.must(200, e.call("POST", "/api/pipelines?space=finance", map[string]any{"pipeline": map[string]any{"uuid": "ledger", "blocks": []any{block("a", noop)}}}))
	sr := e.must(200, e.call("POST", "/api/pipelines/ledger/pipeline_schedules?space=finance",
		map[string]any{"pipeline_schedule": map[string]any{"name": "api", "schedule_type": "api", "status": "active"}}))
	sched := obj(sr.Body, "pipeline_schedule")

	runOf := func(r response) int64 { return num(obj(r.Body, "pipeline_run"), "id") }
	ledgerRun := runOf(e.must(200, e.trigger(ledger, ledgerToken, nil)))
	journalRun := runOf(e.must(200, e.trigger(journal, journalToken, nil)))
	financeRun := runOf(e.must(200, e.trigger(num(sched, "id"), sched["token"].(string), nil)))
	for _, id := range []int64{ledgerRun, journalRun, financeRun} {
		if pr := e.waitRun(id); pr["status"] != "completed" {
			t.Fatalf("run %d %v", id, pr["status"])
		}
	}

	// Each receiver gets its runs' completion; the order of events is not guaranteed.
	poll(t, 20*time.Second, "completion events delivered", func() bool {
		return slices.Contains(runStatuses(runsOnly.received(), ledgerRun), "completed") &&
			slices.Contains(runStatuses(all.received(), ledgerRun), "completed") &&
			slices.Contains(runStatuses(all.received(), journalRun), "completed") &&
			slices.Contains(runStatuses(other.received(), financeRun), "completed")
	})
	for _, ev := range runsOnly.received() {
		if ev["type"] != "pipeline_run.status_changed" || obj(ev, "pipeline_run")["pipeline_uuid"] != "ledger" || ev["space"] != "default" {
			t.Fatalf("filtered webhook got %v", ev)
		}
	}
	kinds := map[string]bool{}
	for _, ev := range all.received() {
		kinds[ev["type"].(string)] = true
		if ev["space"] != "default" {
			t.Fatalf("space default's webhook got an event of %v", ev["space"])
		}
	}
	if !kinds["block_run.status_changed"] || !kinds["pipeline_run.status_changed"] {
		t.Fatalf("unfiltered webhook got only %v", kinds)
	}
	for _, ev := range other.received() {
		if ev["space"] != "finance" {
			t.Fatalf("space finance's webhook got an event of %v", ev["space"])
		}
	}

	// The delivery log shows what was sent, each event once.
	log := e.qmust(200, e.q("GET", base+"/"+runsID+"/deliveries?size=100", adminKey, nil))
	seen := map[string]bool{}
	for _, item := range log.List {
		d := item.(map[string]any)
		if d["event_type"] != "pipeline_run.status_changed" || seen[d["event_id"].(string)] {
			t.Fatalf("delivery log = %s", log.Raw)
		}
		seen[d["event_id"].(string)] = true
		if d["status"] == "succeeded" && (num(d, "response_code") != 200 || d["delivered_at"] == nil || num(d, "attempts") != 1) {
			t.Fatalf("succeeded delivery = %v", d)
		}
	}
	if len(log.List) == 0 || log.Header.Get("X-Total-Count") != fmt.Sprint(len(log.List)) {
		t.Fatalf("delivery log = %d entries, headers %v", len(log.List), log.Header)
	}
}

func TestWebhooksManagement(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.newSpace("growth")
	adminID, spaceAdminKey := e.newUser("owner")
	editorID, editorKey := e.newUser("editor")
	_, outsiderKey := e.newUser("outsider")
	e.setRole(adminKey, "growth", adminID, "admin")
	e.setRole(adminKey, "growth", editorID, "editor")
	base := "/api/v1.0/spaces/growth/webhooks"
	valid := map[string]any{"url": "https://hooks.example.com/runyard", "event_types": []string{"pipeline_run.status_changed", "sync.failed"},
		"pipeline_ids": []string{"signups"}, "description": "alerts"}

	// Admins only: an editor is refused, a non-member is told the space does not exist,
	// exactly as for a missing space.
	e.detail(e.q("POST", base, editorKey, valid), 403, "admin role")
	e.detail(e.q("GET", base, editorKey, nil), 403, "admin role")
	missing := e.q("GET", "/api/v1.0/spaces/nowhere/webhooks", outsiderKey, nil)
	for _, p := range []string{base, "/api/v1.0/spaces/nowhere/webhooks"} {
		r := e.q("GET", p, outsiderKey, nil)
		e.detail(r, 404, "not found")
		if p == base && !bytes.Equal(r.Raw, bytes.ReplaceAll(missing.Raw, []byte("nowhere"), []byte("growth"))) {
			t.Fatalf("non-member answer %s differs from a missing space's %s", r.Raw, missing.Raw)
		}
	}
	e.detail(e.q("POST", base, outsiderKey, valid), 404, "space growth not found")

	// Creation shows the generated secret once.
	created := e.qmust(201, e.q("POST", base, spaceAdminKey, valid))
	id, _ := created.Obj["id"].(string)
	secret, _ := created.Obj["secret"].(string)
	if !strings.HasPrefix(id, "whk_") || !strings.HasPrefix(secret, "whsec_") || created.Obj["active"] != true ||
		created.Obj["space"] != "growth" || created.Obj["description"] != "alerts" || len(created.Obj["event_types"].([]any)) != 2 {
		t.Fatalf("created = %s", created.Raw)
	}
	chosen := e.qmust(201, e.q("POST", base, adminKey, map[string]any{"url": "http://hooks.example.com/two", "secret": "my-own-secret-0123456789", "active": false}))
	if chosen.Obj["secret"] != "my-own-secret-0123456789" || chosen.Obj["active"] != false || len(chosen.Obj["event_types"].([]any)) != 0 {
		t.Fatalf("created with a secret = %s", chosen.Raw)
	}
	got := e.qmust(200, e.q("GET", base+"/"+id, spaceAdminKey, nil))
	list := e.qmust(200, e.q("GET", base+"?size=1", spaceAdminKey, nil))
	for _, raw := range [][]byte{got.Raw, list.Raw} {
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(`"secret"`)) || bytes.Contains(raw, []byte("my-own-secret")) {
			t.Fatalf("a secret is shown after creation: %s", raw)
		}
	}
	if len(list.List) != 1 || list.Header.Get("X-Total-Count") != "2" || list.Header.Get("X-Total-Pages") != "2" {
		t.Fatalf("list = %s %v", list.Raw, list.Header)
	}
	second := e.qmust(200, e.q("GET", base+"?size=1&page=2", spaceAdminKey, nil))
	if len(second.List) != 1 || bytes.Contains(second.Raw, []byte(`"secret"`)) {
		t.Fatalf("second page = %s", second.Raw)
	}
	// Oldest first; the two may share a millisecond, which their ids then order.
	pages := []string{list.List[0].(map[string]any)["id"].(string), second.List[0].(map[string]any)["id"].(string)}
	if slices.Sort(pages); !slices.Equal(pages, sortedPair(id, chosen.Obj["id"].(string))) {
		t.Fatalf("pages hold %v, want %s and %s", pages, id, chosen.Obj["id"])
	}

	// Patch: fields given change, the others stay; a new secret is not echoed.
	up := e.qmust(200, e.q("PATCH", base+"/"+id, spaceAdminKey, map[string]any{"active": false, "pipeline_ids": []string{}, "secret": "rotated-secret-0123456789"}))
	if up.Obj["active"] != false || len(up.Obj["pipeline_ids"].([]any)) != 0 || up.Obj["url"] != valid["url"] || up.Obj["description"] != "alerts" || bytes.Contains(up.Raw, []byte("rotated")) {
		t.Fatalf("patched = %s", up.Raw)
	}
	e.detail(e.q("PATCH", base+"/"+id, editorKey, map[string]any{"active": true}), 403, "admin role")
	e.detail(e.q("PATCH", base+"/whk_missing", spaceAdminKey, map[string]any{"active": true}), 404, "whk_missing")
	e.detail(e.q("GET", base+"/"+id, outsiderKey, nil), 404, "space growth not found")
	e.qmust(200, e.q("GET", base+"/"+id+"/deliveries", spaceAdminKey, nil))
	e.detail(e.q("GET", base+"/"+id+"/deliveries", editorKey, nil), 403, "admin role")
	e.detail(e.q("GET", base+"/whk_missing/deliveries", spaceAdminKey, nil), 404, "whk_missing")
	// Another space's webhook is not found through this one.
	e.qmust(201, e.q("POST", "/api/v1.0/spaces", adminKey, map[string]any{"slug": "sales", "name": "Sales"}))
	e.detail(e.q("GET", "/api/v1.0/spaces/sales/webhooks/"+id, adminKey, nil), 404, id)

	// Bad bodies: 422 naming each field.
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"description": "no url"}, `[["body","url"]]`},
		{map[string]any{"url": "ftp://hooks.example.com/"}, `[["body","url"]]`},
		{map[string]any{"url": "https://user:pw@hooks.example.com/"}, `[["body","url"]]`},
		{map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}, `[["body","url"]]`},
		{map[string]any{"url": "http://metadata.google.internal/"}, `[["body","url"]]`},
		{map[string]any{"url": "http://127.0.0.1:9/hook"}, `[["body","url"]]`}, // loopback is not allowed here
		{map[string]any{"url": "https://h.example.com/", "event_types": []string{"pipeline_run.status_changed", "nope"}}, `[["body","event_types",1]]`},
		{map[string]any{"url": "https://h.example.com/", "pipeline_ids": []string{""}}, `[["body","pipeline_ids",0]]`},
		{map[string]any{"url": "https://h.example.com/", "secret": "short"}, `[["body","secret"]]`},
		{map[string]any{"url": "https://h.example.com/", "active": "yes"}, `[["body","active"]]`},
		{map[string]any{"url": "https://h.example.com/", "event_types": "sync.failed"}, `[["body","event_types"]]`},
		{map[string]any{"url": "https://h.example.com/", "description": strings.Repeat("d", 1001)}, `[["body","description"]]`},
	} {
		if got := fmt.Sprint(e.locs(e.q("POST", base, spaceAdminKey, tc.body))); got != tc.want {
			t.Errorf("POST %v: locs %s, want %s", tc.body, got, tc.want)
		}
	}
	if got := fmt.Sprint(e.locs(e.q("PATCH", base+"/"+id, spaceAdminKey, map[string]any{"url": "gopher://x/"}))); got != `[["body","url"]]` {
		t.Errorf("PATCH bad url: locs %s", got)
	}
	if got := fmt.Sprint(e.locs(e.q("GET", base+"?page=0", spaceAdminKey, nil))); got != `[["query","page"]]` {
		t.Errorf("bad page: locs %s", got)
	}
	if r := e.qmust(200, e.q("GET", base+"/"+id, spaceAdminKey, nil)); r.Obj["url"] != valid["url"] {
		t.Fatalf("a refused PATCH changed the webhook: %s", r.Raw)
	}

	e.detail(e.q("DELETE", base+"/"+id, editorKey, nil), 403, "admin role")
	e.qmust(204, e.q("DELETE", base+"/"+id, spaceAdminKey, nil))
	e.detail(e.q("GET", base+"/"+id, spaceAdminKey, nil), 404, id)
	e.detail(e.q("DELETE", base+"/"+id, spaceAdminKey, nil), 404, id)
}

func sortedPair(a, b string) []string {
	if b < a {
		a, b = b, a
	}
	return []string{a, b}
}
