package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// env reads a POTLUCK_* variable; only main reads the environment.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envErrors collects the POTLUCK_* values that cannot be read, so that a
// node refuses to start on one rather than ignore it.
type envErrors []error

func (e *envErrors) add(name, value, want string) {
	*e = append(*e, fmt.Errorf("%s=%q: want %s", name, value, want))
}

// err is every bad value in one error, or nil.
func (e envErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return usageError{errors.Join(e...)}
}

func (e *envErrors) int(name string, def int) int {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.add(name, v, "a whole number, 0 or more")
		return def
	}
	return n
}

func (e *envErrors) bool(name string) bool {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.add(name, v, "true or false (also 1 or 0)")
	}
	return b
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
