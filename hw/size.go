package hw

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Binary size units.
const (
	KiB uint64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// sizeForms is how ParseSize errors tell people what they may write.
const sizeForms = "a number of bytes or a number with a unit, e.g. 8GiB, 8G, 8GB, 8192MiB, 512M, 1.5GiB or 8589934592"

// sizeUnits maps a lower-case unit to its multiplier. All units are binary:
// a person typing "8GB" for a memory share means 8 GiB, the way memory is
// sold and the way llama.cpp and the OS report it.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": KiB, "kb": KiB, "kib": KiB,
	"m": MiB, "mb": MiB, "mib": MiB,
	"g": GiB, "gb": GiB, "gib": GiB,
	"t": TiB, "tb": TiB, "tib": TiB,
}

// ParseSize reads a memory size such as "8GiB", "8G", "8GB", "8192MiB",
// "512M", "1.5GiB" or a plain number of bytes. Units are case-insensitive
// and binary (1G = 1GiB = 1024³ bytes); a space between number and unit is
// allowed. Anything else is an error naming the accepted forms.
func ParseSize(s string) (uint64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size: want %s", sizeForms)
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid size %q: want %s", s, sizeForms)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || (n != 0 && n > math.MaxUint64/mult) {
			return 0, fmt.Errorf("invalid size %q: too large or malformed, want %s", s, sizeForms)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want %s", s, sizeForms)
	}
	v := f * float64(mult)
	if v >= math.MaxUint64 {
		return 0, fmt.Errorf("invalid size %q: too large, want %s", s, sizeForms)
	}
	return uint64(v), nil
}

// FormatSize writes n bytes for people with one decimal and a binary unit:
// "512 B", "1.5 KiB", "12.0 GiB".
func FormatSize(n uint64) string {
	switch {
	case n >= TiB:
		return fmt.Sprintf("%.1f TiB", float64(n)/float64(TiB))
	case n >= GiB:
		return fmt.Sprintf("%.1f GiB", float64(n)/float64(GiB))
	case n >= MiB:
		return fmt.Sprintf("%.1f MiB", float64(n)/float64(MiB))
	case n >= KiB:
		return fmt.Sprintf("%.1f KiB", float64(n)/float64(KiB))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
