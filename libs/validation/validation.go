// Package validation provides the typed error every Runyard component returns for bad input,
// so that transports can answer 4xx with the exact field that was wrong.
package validation

import (
	"fmt"
	"strings"
)

// FieldError says what is wrong with one field. Field is a dotted path into the request body
// as the client wrote it, e.g. "pipeline.blocks[2].upstream_blocks".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Errors is a list of field errors; a non-empty Errors is an error.
type Errors []FieldError

// Add appends a field error.
func (e *Errors) Add(field, format string, args ...any) {
	*e = append(*e, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e as an error, or nil when it holds nothing.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// New returns an error about a single field.
func New(field, format string, args ...any) error {
	return Errors{{Field: field, Message: fmt.Sprintf(format, args...)}}
}
