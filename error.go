package strata

import (
	"errors"
	"fmt"
)

// ErrorCode classifies a failure independently of transport. The HTTP layer
// maps each code to one status in one place.
type ErrorCode string

// Error codes, kept deliberately few: every adapter translates its own
// driver errors into one of these at its boundary.
const (
	EInvalid      ErrorCode = "invalid"      // bad input: 400
	EUnauthorized ErrorCode = "unauthorized" // missing or bad credentials: 401
	EForbidden    ErrorCode = "forbidden"    // authenticated but not allowed: 403
	ENotFound     ErrorCode = "not_found"    // missing, or hidden by a rule: 404
	EConflict     ErrorCode = "conflict"     // concurrent change lost: 409
	ETooLarge     ErrorCode = "too_large"    // body over its limit: 413
	ETooMany      ErrorCode = "too_many"     // rate limited: 429
	EUnavailable  ErrorCode = "unavailable"  // overloaded or draining: 503
	EInternal     ErrorCode = "internal"     // a bug or a broken dependency: 500
)

// Error is the one domain error. Message is safe to show to callers; Data
// holds per-field details in PocketBase's shape (field name → *FieldError or
// a nested map for nested input such as batch requests).
type Error struct {
	Code    ErrorCode
	Message string
	Data    map[string]any
	Err     error // the cause, never shown to callers
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ValidationError returns an EInvalid error carrying per-field details.
func ValidationError(message string, data map[string]any) *Error {
	return &Error{Code: EInvalid, Message: message, Data: data}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, EInternal
// for any other non-nil error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// FieldError is one entry of an Error's Data: a stable code, a sentence for
// people and the template values the sentence was built from.
type FieldError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Params  map[string]any `json:"params,omitempty"`
}

// NewFieldError builds a FieldError.
func NewFieldError(code, message string, params map[string]any) *FieldError {
	return &FieldError{Code: code, Message: message, Params: params}
}

func (e *FieldError) Error() string { return e.Code + ": " + e.Message }
