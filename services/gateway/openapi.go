package gateway

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"go.yaml.in/yaml/v3"
)

// The OpenAPI document of both APIs is written in YAML, which people maintain more easily, and
// served as JSON, which every client and tool reads. openapi_test.go holds it to the routes
// actually served and to the examples of docs/api.md.

//go:embed openapi/openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the document as served, converted once at start-up. The embedded file is part
// of the build and the tests load it, so a document that does not convert is a build defect.
var openAPIJSON = mustYAMLToJSON(openAPIYAML)

func mustYAMLToJSON(doc []byte) []byte {
	out, err := yamlToJSON(doc)
	if err != nil {
		panic(fmt.Sprintf("gateway: embedded openapi.yaml: %v", err))
	}
	return out
}

// yamlToJSON converts a YAML document to JSON. Mapping keys become strings, as JSON needs:
// an unquoted response code (200) is an integer key in YAML.
func yamlToJSON(doc []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	out, err := json.Marshal(stringKeys(v))
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return out, nil
}

func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
		return x
	}
	return v
}

// openAPI answers GET /api/openapi.json, without authentication: the document describes the
// API, not anyone's data.
func (g *Gateway) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPIJSON)
}
