package airflowtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// spec is an OpenAPI document (3.0 for Airflow 2, 3.1 for Airflow 3) and the small JSON
// Schema validator the fake's answers are checked with. It implements the keywords the two
// specs use on responses: $ref, type (a name or a list), nullable, enum, const, properties,
// required, additionalProperties, items, allOf, anyOf, oneOf, format (date-time, datetime,
// uuid) and minimum. Validation is strict: an object may only carry the properties its
// schema declares, unless the schema allows additional ones, so the fake cannot invent
// fields.
type spec struct {
	doc    map[string]any
	prefix string // the path prefix the spec's paths lack ("/api/v1" for v1)
}

func loadSpec(t *testing.T, file, prefix string) *spec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &spec{doc: normalizeYAML(doc).(map[string]any), prefix: prefix}
}

// normalizeYAML turns YAML mappings with non-string keys (status codes) into string-keyed maps.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	}
	return v
}

func (s *spec) resolve(ref string) map[string]any {
	cur := any(s.doc)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[part]
	}
	return cur.(map[string]any)
}

func (s *spec) deref(m map[string]any) map[string]any {
	for {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m = s.resolve(ref)
	}
}

// responseSchema finds the schema of the answer with status to method on the spec path
// template; ok is false when the spec does not document that status.
func (s *spec) responseSchema(t *testing.T, method, template string, status int) (map[string]any, bool) {
	t.Helper()
	paths := s.doc["paths"].(map[string]any)
	p, found := paths[strings.TrimPrefix(template, s.prefix)]
	if !found {
		p, found = paths[template]
	}
	if !found {
		t.Fatalf("spec has no path %s", template)
	}
	op, found := p.(map[string]any)[strings.ToLower(method)]
	if !found {
		t.Fatalf("spec has no %s %s", method, template)
	}
	responses := op.(map[string]any)["responses"].(map[string]any)
	r, found := responses[fmt.Sprint(status)]
	if !found {
		r, found = responses["default"]
	}
	if !found {
		return nil, false
	}
	resp := s.deref(r.(map[string]any))
	content, _ := resp["content"].(map[string]any)
	for _, ct := range []string{"application/json", "application/problem+json"} {
		if c, ok := content[ct].(map[string]any); ok {
			return c["schema"].(map[string]any), true
		}
	}
	return map[string]any{}, true
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validate returns the problems of value against schema; strict forbids undeclared
// properties (off for the branches of an allOf, whose properties are checked together).
func (s *spec) validate(schema map[string]any, value any, at string, strict bool) []string {
	if ref, ok := schema["$ref"].(string); ok {
		if value == nil && schema["nullable"] == true {
			return nil
		}
		return s.validate(s.resolve(ref), value, at, strict)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	types := typesOf(schema)
	if value == nil {
		if schema["nullable"] == true || types["null"] || enumHas(schema, nil) || len(schema) == 0 {
			return nil
		}
		if branches := anyBranches(schema); len(branches) > 0 {
			for _, b := range branches {
				if len(s.validate(b, nil, at, strict)) == 0 {
					return nil
				}
			}
			return []string{at + ": null matches no branch"}
		}
		if len(types) == 0 && schema["enum"] == nil && schema["allOf"] == nil {
			return nil // an untyped schema ("input" of a validation error) takes anything
		}
		return []string{at + ": null where the schema is not nullable"}
	}
	if e, ok := schema["enum"].([]any); ok && !enumHas(schema, value) {
		fail("%v is not one of %v", value, e)
	}
	if c, ok := schema["const"]; ok && !reflect.DeepEqual(jsonValue(c), value) {
		fail("%v is not the constant %v", value, c)
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, b := range all {
			errs = append(errs, s.validate(b.(map[string]any), value, at, false)...)
		}
	}
	if branches := anyBranches(schema); len(branches) > 0 {
		var branchErrs []string
		matched := false
		for _, b := range branches {
			be := s.validate(b, value, at, strict)
			if len(be) == 0 {
				matched = true
				break
			}
			branchErrs = append(branchErrs, be...)
		}
		if !matched {
			fail("matches no anyOf/oneOf branch: %s", strings.Join(branchErrs, " | "))
		}
	}
	if len(types) > 0 && !typeMatches(types, value) {
		fail("%s is not of type %v", kind(value), keys(types))
		return errs
	}
	switch x := value.(type) {
	case string:
		switch schema["format"] {
		case "date-time", "datetime":
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				fail("%q is not an RFC 3339 date-time", x)
			}
		case "uuid":
			if !uuidRE.MatchString(x) {
				fail("%q is not a uuid", x)
			}
		}
	case json.Number:
		if m, ok := schema["minimum"]; ok {
			if f, _ := x.Float64(); f < toFloat(m) {
				fail("%s is below the minimum %v", x, m)
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range x {
				errs = append(errs, s.validate(items, e, fmt.Sprintf("%s[%d]", at, i), true)...)
			}
		}
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					fail("required property %q is missing", r)
				}
			}
		}
		for k, e := range x {
			if p, ok := props[k]; ok {
				errs = append(errs, s.validate(p.(map[string]any), e, at+"."+k, true)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("property %q is not allowed", k)
				}
			case map[string]any:
				errs = append(errs, s.validate(ap, e, at+"."+k, true)...)
			case nil:
				if strict && !s.declares(schema, k) && (props != nil || schema["allOf"] != nil) {
					fail("property %q is not declared by the schema", k)
				}
			}
		}
	}
	return errs
}

// declares reports whether schema or one of its allOf branches declares property k.
func (s *spec) declares(schema map[string]any, k string) bool {
	schema = s.deref(schema)
	if props, ok := schema["properties"].(map[string]any); ok {
		if _, ok := props[k]; ok {
			return true
		}
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, b := range all {
			if s.declares(b.(map[string]any), k) {
				return true
			}
		}
	}
	return false
}

func anyBranches(schema map[string]any) []map[string]any {
	var out []map[string]any
	for _, kw := range []string{"anyOf", "oneOf"} {
		if bs, ok := schema[kw].([]any); ok {
			for _, b := range bs {
				out = append(out, b.(map[string]any))
			}
		}
	}
	return out
}

func typesOf(schema map[string]any) map[string]bool {
	out := map[string]bool{}
	switch t := schema["type"].(type) {
	case string:
		out[t] = true
	case []any:
		for _, e := range t {
			out[e.(string)] = true
		}
	}
	if len(out) == 0 && schema["properties"] != nil {
		out["object"] = true
	}
	return out
}

func typeMatches(types map[string]bool, v any) bool {
	switch x := v.(type) {
	case string:
		return types["string"]
	case bool:
		return types["boolean"]
	case json.Number:
		if types["number"] {
			return true
		}
		return types["integer"] && !strings.ContainsAny(x.String(), ".eE")
	case []any:
		return types["array"]
	case map[string]any:
		return types["object"]
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func enumHas(schema map[string]any, v any) bool {
	e, ok := schema["enum"].([]any)
	if !ok {
		return false
	}
	for _, x := range e {
		if reflect.DeepEqual(jsonValue(x), v) {
			return true
		}
	}
	return false
}

// jsonValue converts a YAML scalar to what decoding JSON with UseNumber gives.
func jsonValue(v any) any {
	switch x := v.(type) {
	case int:
		return json.Number(fmt.Sprint(x))
	case float64:
		return json.Number(fmt.Sprint(x))
	}
	return v
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return v
}

// TestValidatorCatchesMistakes makes sure the validator can fail: a wrong type, a missing
// required property, an invented property, a bad enum value and a bad timestamp are each
// reported.
func TestValidatorCatchesMistakes(t *testing.T) {
	t.Parallel()
	v2 := loadSpec(t, "airflow3-v2.yaml", "")
	v1 := loadSpec(t, "airflow2-v1.yaml", "/api/v1")
	good := `{"version": "3.2.0", "git_version": null}`
	sch, _ := v2.responseSchema(t, "GET", "/api/v2/version", 200)
	if errs := v2.validate(sch, decodeJSON(t, []byte(good)), "$", true); len(errs) > 0 {
		t.Fatalf("a valid answer is refused: %v", errs)
	}
	for name, c := range map[string]struct {
		s    *spec
		path string
		body string
	}{
		"wrong type":        {v2, "/api/v2/version", `{"version": 3, "git_version": null}`},
		"missing required":  {v2, "/api/v2/version", `{"version": "3.2.0"}`},
		"invented property": {v2, "/api/v2/version", `{"version": "3.2.0", "git_version": null, "build": "x"}`},
		"v1 invented":       {v1, "/api/v1/version", `{"version": "2.10.5", "commit": "x"}`},
	} {
		sch, _ := c.s.responseSchema(t, "GET", c.path, 200)
		if errs := c.s.validate(sch, decodeJSON(t, []byte(c.body)), "$", true); len(errs) == 0 {
			t.Errorf("%s: %s accepted", name, c.body)
		}
	}
	runSchema := v2.resolve("#/components/schemas/DAGRunResponse")
	badRun := map[string]any{}
	for _, k := range runSchema["required"].([]any) {
		badRun[k.(string)] = nil
	}
	badRun["state"] = "exploded"
	badRun["run_after"] = "yesterday"
	errs := v2.validate(runSchema, decodeJSON(t, mustJSON(t, badRun)), "$", true)
	joined := strings.Join(errs, "\n")
	for _, want := range []string{"$.state", "$.run_after", "$.dag_run_id"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no problem reported at %s; got:\n%s", want, joined)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
