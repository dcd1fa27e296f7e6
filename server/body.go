package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"
)

// adminMaxBody is the most the node API reads of a request body: its
// requests are a few short fields.
const adminMaxBody = 1 << 20

// readAtMost reads the request body, up to limit bytes; false when it
// answered an error: a 413 past the limit, in the shape of the client's
// API.
func readAtMost(c *gin.Context, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(c, http.StatusRequestEntityTooLarge, "invalid_request_error",
				fmt.Sprintf("request body is larger than %s, the most this endpoint reads: send less", sizeWords(limit)))
			return nil, false
		}
		apiError(c, http.StatusBadRequest, "invalid_request_error", "could not read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// decodeJSON decodes body into v; false when it answered a 400 that says,
// in plain words, what is wrong with it.
func decodeJSON(c *gin.Context, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		apiError(c, http.StatusBadRequest, "invalid_request_error", jsonProblem(body, err))
		return false
	}
	return true
}

// sizeWords writes a byte count as a person reads it: 8 MiB, 4 KiB, 100
// bytes.
func sizeWords(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// jsonProblem says what is wrong with a body that encoding/json could
// not decode, naming the field and the types in JSON's words, never Go's:
// "max_tokens: expected an integer, got a string", or "request body is
// not valid JSON (at byte 17): …".
func jsonProblem(body []byte, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(strings.TrimSpace(string(body))) == 0:
		return "request body is empty: send a JSON object"
	case errors.As(err, &syntax):
		return fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		got := gotWords(typ.Value)
		if typ.Field == "" {
			return fmt.Sprintf("request body must be %s, got %s", typeWords(typ.Type), got)
		}
		return fmt.Sprintf("%s: expected %s, got %s", typ.Field, typeWords(typ.Type), got)
	}
	// Errors of the types' own decoders (keep_alive's) are written for
	// people already.
	return err.Error()
}

// gotWords names the JSON value encoding/json describes as v ("string",
// "number", "number 1.5", "bool", "array", "object").
func gotWords(v string) string {
	switch {
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "bool":
		return "true or false"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	}
	return v
}

// typeWords names, in JSON's words, the values a Go type takes.
func typeWords(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer of 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		switch e.Kind() {
		case reflect.String:
			return "an array of strings"
		case reflect.Map, reflect.Struct:
			return "an array of objects"
		}
		return "an array"
	}
	return "another value"
}
