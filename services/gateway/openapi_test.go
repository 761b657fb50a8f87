package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/rs/zerolog"
)

// loadOpenAPI loads and validates the served document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIJSON)
	if err != nil {
		t.Fatalf("load openapi document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi document is not valid: %v", err)
	}
	return doc
}

// routeParam matches Fiber's path parameters (":slug"), which OpenAPI writes "{slug}".
var routeParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// servedRoutes lists "METHOD /path" of every route g answers. Middleware (Fiber's USE entries)
// is no route, and HEAD is the twin Fiber registers for every GET.
func servedRoutes(g *Gateway) []string {
	var out []string
	for _, r := range g.app.GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue
		}
		out = append(out, r.Method+" "+routeParam.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func documentedRoutes(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	g := New(Config{DefaultSpace: "default"}, nil, nil, zerolog.Nop())
	served, documented := servedRoutes(g), documentedRoutes(doc)
	if len(served) == 0 {
		t.Fatal("the gateway lists no routes")
	}
	var missing, stale []string
	for _, r := range served {
		if !slices.Contains(documented, r) {
			missing = append(missing, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			stale = append(stale, r)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routes served but not in services/gateway/openapi/openapi.yaml:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(stale) > 0 {
		t.Errorf("operations in services/gateway/openapi/openapi.yaml that no route serves:\n  %s", strings.Join(stale, "\n  "))
	}
}

// TestOpenAPIOperations holds every operation to the conventions of its surface: an id and a
// tag, the Qarion-compatible ones authenticated by bearer key, the public ones by nothing.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	public := []string{"GET /healthz", "GET /readyz", "GET /api/openapi.json", "POST /api/pipeline_schedules/{id}/pipeline_runs/{token}"}
	ids := map[string]string{}
	for _, r := range documentedRoutes(doc) {
		method, path, _ := strings.Cut(r, " ")
		op := doc.Paths.Value(path).GetOperation(method)
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", r)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %s is also %s's", r, op.OperationID, other)
		}
		ids[op.OperationID] = r
		if len(op.Tags) == 0 {
			t.Errorf("%s: no tag", r)
		}
		switch {
		case slices.Contains(public, r):
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s: served without authentication, so its security must be []", r)
			}
		case isQarionPath(path):
			if op.Security == nil || !requires(*op.Security, "qarionBearer") || requires(*op.Security, "apiKeyQuery") {
				t.Errorf("%s: a Qarion-compatible route takes a bearer key, never api_key", r)
			}
			if !strings.HasPrefix(op.Tags[0], "qarion: ") {
				t.Errorf("%s: tag %q is not a Qarion one", r, op.Tags[0])
			}
		case strings.HasPrefix(path, "/api/"):
			if len(op.Tags) > 0 && !strings.HasPrefix(op.Tags[0], "mage: ") {
				t.Errorf("%s: tag %q is not a Mage one", r, op.Tags[0])
			}
		}
	}
}

func requires(reqs openapi3.SecurityRequirements, scheme string) bool {
	for _, r := range reqs {
		if _, ok := r[scheme]; ok {
			return true
		}
	}
	return false
}

func TestOpenAPIServedWithoutKey(t *testing.T) {
	t.Parallel()
	g := New(Config{DefaultSpace: "default"}, nil, nil, zerolog.Nop())
	resp, err := g.app.Test(httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("served document does not load: %v", err)
	}
	if doc.Paths.Value("/api/openapi.json") == nil {
		t.Error("the served document does not describe itself")
	}
}

// A JSON example in docs/api.md is labelled on the line right before its fence:
//
//	<!-- openapi: POST /api/v1.0/spaces request -->
//	<!-- openapi: POST /api/v1.0/spaces response 201 -->
//	<!-- openapi: schema MageError -->
//
// naming the request body or the response of an operation (its path as the document writes
// it), or a schema of components/schemas.
var exampleLabel = regexp.MustCompile(`^<!-- openapi: (?:schema ([A-Za-z0-9_]+)|([A-Z]+) (/\S*) (request|response (\d{3}))) -->$`)

type docExample struct {
	line  int // of the opening fence
	label string
	body  string
}

// readExamples returns the JSON examples of Markdown text, and what is wrong with its labels:
// an unlabelled JSON example, a label on something else.
func readExamples(name, text string) (examples []docExample, problems []string) {
	var (
		prev    string
		inFence bool
		isJSON  bool
		cur     docExample
		body    strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !inFence && strings.HasPrefix(line, "```"):
			inFence = true
			isJSON = strings.TrimSpace(strings.TrimPrefix(line, "```")) == "json"
			cur = docExample{line: n, label: prev}
			body.Reset()
			switch {
			case isJSON && !exampleLabel.MatchString(prev):
				problems = append(problems, fmt.Sprintf("%s:%d: JSON example without a label on the line before its fence, e.g. <!-- openapi: POST /api/v1.0/spaces response 201 -->", name, n))
			case !isJSON && strings.HasPrefix(prev, "<!-- openapi:"):
				problems = append(problems, fmt.Sprintf("%s:%d: label on an example that is not ```json", name, n))
			}
		case inFence && line == "```":
			inFence = false
			if isJSON && exampleLabel.MatchString(cur.label) {
				cur.body = body.String()
				examples = append(examples, cur)
			}
		case inFence:
			body.WriteString(sc.Text())
			body.WriteByte('\n')
		case strings.HasPrefix(prev, "<!-- openapi:"):
			problems = append(problems, fmt.Sprintf("%s:%d: label %q is not followed by a ```json example", name, n-1, prev))
		}
		prev = line
	}
	if inFence {
		problems = append(problems, fmt.Sprintf("%s: unclosed code fence", name))
	}
	return examples, problems
}

func TestAPIDocExamplesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	const name = "../../docs/api.md"
	text, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	examples, problems := readExamples(name, string(text))
	for _, p := range problems {
		t.Error(p)
	}
	if len(examples) == 0 {
		t.Fatalf("%s has no labelled JSON example", name)
	}
	for _, ex := range examples {
		where := fmt.Sprintf("%s:%d (%s)", name, ex.line, ex.label)
		var v any
		if err := json.Unmarshal([]byte(ex.body), &v); err != nil {
			t.Errorf("%s: not JSON: %v", where, err)
			continue
		}
		if err := validateExample(doc, ex, v); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
}

func validateExample(doc *openapi3.T, ex docExample, v any) error {
	m := exampleLabel.FindStringSubmatch(ex.label)
	if schema := m[1]; schema != "" {
		ref := doc.Components.Schemas[schema]
		if ref == nil {
			return fmt.Errorf("no schema %s in components/schemas", schema)
		}
		return ref.Value.VisitJSON(v, openapi3.MultiErrors())
	}
	method, path, kind, status := m[2], m[3], m[4], m[5]
	item := doc.Paths.Value(path)
	if item == nil {
		return fmt.Errorf("no path %s in the document", path)
	}
	op := item.GetOperation(method)
	if op == nil {
		return fmt.Errorf("no operation %s %s in the document", method, path)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(ex.body))
	req.Header.Set("Content-Type", "application/json")
	input := &openapi3filter.RequestValidationInput{
		Request: req,
		Route:   &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
		Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
	}
	if kind == "request" {
		if op.RequestBody == nil {
			return fmt.Errorf("%s %s takes no request body", method, path)
		}
		return openapi3filter.ValidateRequestBody(context.Background(), input, op.RequestBody.Value)
	}
	code, err := strconv.Atoi(status)
	if err != nil {
		return fmt.Errorf("status %q: %w", status, err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 code,
		Header:                 http.Header{"Content-Type": []string{"application/json"}},
		Options:                input.Options,
	}
	out.SetBodyBytes(bytes.TrimSpace([]byte(ex.body)))
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// TestExampleLabels keeps the example reader and validator honest: they must reject what
// they should.
func TestExampleLabels(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		label string
		ok    bool
	}{
		{"<!-- openapi: POST /api/v1.0/spaces request -->", true},
		{"<!-- openapi: GET /api/pipelines/{uuid} response 200 -->", true},
		{"<!-- openapi: schema MageError -->", true},
		{"<!-- openapi: POST /api/v1.0/spaces -->", false},
		{"<!-- openapi: post /api/v1.0/spaces request -->", false},
		{"<!-- openapi: GET /api/pipelines response ok -->", false},
	} {
		if got := exampleLabel.MatchString(c.label); got != c.ok {
			t.Errorf("%q: match %v, want %v", c.label, got, c.ok)
		}
	}

	md := "intro\n\n```sh\ncurl x\n```\n\n```json\n{}\n```\n\n<!-- openapi: schema Health -->\n\ntext\n" +
		"<!-- openapi: schema Health -->\n```json\n{\"status\": \"ok\"}\n```\n"
	examples, problems := readExamples("t.md", md)
	if len(examples) != 1 || examples[0].body != "{\"status\": \"ok\"}\n" {
		t.Errorf("examples %+v, want the one labelled", examples)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "t.md:7: JSON example without a label") ||
		!strings.Contains(problems[1], "t.md:11: label") {
		t.Errorf("problems %q, want the unlabelled example (line 7) and the dangling label (line 11)", problems)
	}

	doc := loadOpenAPI(t)
	for _, bad := range []docExample{
		{label: "<!-- openapi: POST /api/v1.0/spaces request -->", body: `{"slug": "A"}`},
		{label: "<!-- openapi: POST /api/v1.0/spaces response 201 -->", body: `{"slug": "a1", "name": "A"}`},
		{label: "<!-- openapi: GET /api/v1.0/spaces response 418 -->", body: `[]`},
		{label: "<!-- openapi: schema MageError -->", body: `{"error": {"code": 400}}`},
	} {
		var v any
		if err := json.Unmarshal([]byte(bad.body), &v); err != nil {
			t.Fatal(err)
		}
		if err := validateExample(doc, bad, v); err == nil {
			t.Errorf("%s %s passed validation", bad.label, bad.body)
		}
	}
}
