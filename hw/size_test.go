package hw

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "8GiB", want: 8 * GiB},
		{in: "8G", want: 8 * GiB},
		{in: "8GB", want: 8 * GiB},
		{in: "8gb", want: 8 * GiB},
		{in: "8 GiB", want: 8 * GiB},
		{in: " 8G ", want: 8 * GiB},
		{in: "8192MiB", want: 8 * GiB},
		{in: "512M", want: 512 * MiB},
		{in: "512mb", want: 512 * MiB},
		{in: "1.5GiB", want: 3 * GiB / 2},
		{in: "64K", want: 64 * KiB},
		{in: "2T", want: 2 * TiB},
		{in: "1073741824", want: GiB},
		{in: "1024B", want: KiB},
		{in: "0", want: 0},
		{in: "", wantErr: true},
		{in: "GiB", wantErr: true},
		{in: "8 gigs", wantErr: true},
		{in: "-8G", wantErr: true},
		{in: "8GiB8", wantErr: true},
		{in: "1.2.3G", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
		{in: "20000000T", wantErr: true},
		{in: "8PiB", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), "8GiB") || !strings.Contains(err.Error(), "8192MiB") {
				t.Errorf("ParseSize(%q) error %q does not name the accepted forms", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0 B"},
		{512, "512 B"},
		{1536, "1.5 KiB"},
		{512 * MiB, "512.0 MiB"},
		{12 * GiB, "12.0 GiB"},
		{25276502016, "23.5 GiB"},
		{3 * TiB / 2, "1.5 TiB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseFormatRoundTrip(t *testing.T) {
	for _, n := range []uint64{KiB, 3 * MiB, 12 * GiB, 2 * TiB} {
		s := strings.ReplaceAll(FormatSize(n), " ", "")
		got, err := ParseSize(s)
		if err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}
