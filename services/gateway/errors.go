package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/runyard/runyard/libs/validation"
)

// apiError is an error the client is meant to see, with its HTTP status and Mage error type.
type apiError struct {
	Status  int
	Type    string
	Message string
	Errors  validation.Errors
}

func (e *apiError) Error() string { return e.Message }

func errNotFound(format string, args ...any) error {
	return &apiError{Status: http.StatusNotFound, Type: "record_not_found", Message: fmt.Sprintf(format, args...)}
}

func errBadRequest(format string, args ...any) error {
	return &apiError{Status: http.StatusBadRequest, Type: "api_resource_error", Message: fmt.Sprintf(format, args...)}
}

func errConflict(format string, args ...any) error {
	return &apiError{Status: http.StatusConflict, Type: "record_invalid", Message: fmt.Sprintf(format, args...)}
}

func errUnauthorized(typ, format string, args ...any) error {
	return &apiError{Status: http.StatusUnauthorized, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// errorBody is Mage's error envelope, sent with the real HTTP status (Mage itself answers 200).
type errorBody struct {
	Error struct {
		Code    int                     `json:"code"`
		Message string                  `json:"message"`
		Type    string                  `json:"type"`
		Errors  []validation.FieldError `json:"errors"`
	} `json:"error"`
}

// handleError is the one place errors become responses; unexpected ones are logged once here
// and never shown to the client. Routes under /api/v1.0 answer in Qarion's shape instead.
func (g *Gateway) handleError(c *fiber.Ctx, err error) error {
	if isQarionPath(c.Path()) {
		return g.handleQarionError(c, err)
	}
	var (
		ae  *apiError
		ve  validation.Errors
		fe  *fiber.Error
		out = &apiError{Status: http.StatusInternalServerError, Type: "internal_error", Message: "internal error"}
	)
	switch {
	case errors.As(err, &ae):
		out = ae
	case errors.As(err, &ve):
		out = &apiError{Status: http.StatusBadRequest, Type: "record_invalid", Message: ve.Error(), Errors: ve}
	case errors.As(err, &fe):
		out = &apiError{Status: fe.Code, Type: "api_resource_error", Message: fe.Message}
		if fe.Code == http.StatusRequestEntityTooLarge {
			out.Message = fmt.Sprintf("request body is larger than %d bytes", g.cfg.MaxBodyBytes)
		}
	default:
		g.log.Error().Err(err).Str("method", c.Method()).Str("path", c.Path()).Msg("request failed")
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Type = out.Status, out.Message, out.Type
	body.Error.Errors = out.Errors
	if body.Error.Errors == nil {
		body.Error.Errors = []validation.FieldError{}
	}
	return c.Status(out.Status).JSON(body)
}

// decodeBody decodes a JSON request body into v, turning decoder errors into messages that
// name the offending field.
func decodeBody(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(strings.TrimSpace(string(body))) == 0 {
		return errBadRequest("request body is empty: expected a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errBadRequest("request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return validation.New(field, "must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return errBadRequest("request body is not valid JSON: %v (at byte %d)", se, se.Offset)
	}
	var fe validation.Errors
	if errors.As(err, &fe) {
		return fe
	}
	return errBadRequest("request body is not valid JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "ptr", "interface":
		return "a value of another type"
	}
	return "a number"
}
