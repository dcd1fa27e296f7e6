package ledger

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatTokens writes a token count the short way: 950, 12.3 k, 1.2 M.
func FormatTokens(v float64) string {
	short := func(x float64) string { return strings.TrimSuffix(strconv.FormatFloat(x, 'f', 1, 64), ".0") }
	switch {
	case v >= 1e6:
		return short(v/1e6) + " M"
	case v >= 1e3:
		return short(v/1e3) + " k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// ParseTokens reads a token count: 500k, 1.5M, 20000.
func ParseTokens(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1e3, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = 1e6, strings.TrimSuffix(t, "m")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || v*mult > 1e15 {
		return 0, fmt.Errorf("%q is not a number of tokens (e.g. 500k, 2M, 20000)", s)
	}
	return uint64(v * mult), nil
}
