package nodestate

import "fmt"

// InvalidTokenError is a pasted token that is not an invite token.
type InvalidTokenError struct{ Err error }

func (e *InvalidTokenError) Error() string {
	return "that is not a valid invite token: " + e.Err.Error()
}

func (e *InvalidTokenError) Unwrap() error { return e.Err }

// InvalidInput marks the error as the client's (HTTP 400).
func (e *InvalidTokenError) InvalidInput() bool { return true }

// InputError is a bad value from the user, phrased for them.
type InputError struct {
	Field, Value, Msg string
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
}

// InvalidInput marks the error as the client's (HTTP 400).
func (e *InputError) InvalidInput() bool { return true }
