package runtimes

import (
	"slices"
	"strings"
	"testing"
)

func TestAssets(t *testing.T) {
	tests := []struct {
		p       Platform
		backend string
		want    []string
		err     string
	}{
		{Platform{"windows", "amd64"}, BackendCPU, []string{"llama-v0.7.0-bin-win-cpu-x64.zip"}, ""},
		{Platform{"windows", "amd64"}, BackendVulkan, []string{"llama-v0.7.0-bin-win-vulkan-x64.zip"}, ""},
		{Platform{"windows", "amd64"}, BackendCUDA, []string{"llama-v0.7.0-bin-win-cuda-12.4-x64.zip", "cudart-llama-bin-win-cuda-12.4-x64.zip"}, ""},
		{Platform{"windows", "amd64"}, BackendHIP, []string{"llama-v0.7.0-bin-win-hip-radeon-x64.zip"}, ""},
		{Platform{"windows", "arm64"}, BackendCPU, []string{"llama-v0.7.0-bin-win-cpu-arm64.zip"}, ""},
		{Platform{"windows", "arm64"}, BackendVulkan, nil, "no vulkan build for windows/arm64 (it has: cpu)"},
		{Platform{"darwin", "arm64"}, BackendMetal, []string{"llama-v0.7.0-bin-macos-arm64.tar.gz"}, ""},
		{Platform{"darwin", "amd64"}, BackendCPU, []string{"llama-v0.7.0-bin-macos-x64.tar.gz"}, ""},
		{Platform{"linux", "amd64"}, BackendVulkan, []string{"llama-v0.7.0-bin-ubuntu-vulkan-x64.tar.gz"}, ""},
		{Platform{"linux", "amd64"}, BackendCPU, []string{"llama-v0.7.0-bin-ubuntu-x64.tar.gz"}, ""},
		{Platform{"linux", "arm64"}, BackendVulkan, []string{"llama-v0.7.0-bin-ubuntu-vulkan-arm64.tar.gz"}, ""},
		{Platform{"linux", "amd64"}, BackendCUDA, nil, "CUDA comes from Debian's packages"},
		{Platform{"freebsd", "amd64"}, BackendCPU, nil, "no cpu build for freebsd/amd64"},
	}
	for _, tt := range tests {
		got, err := Assets("0.7.0", tt.p, tt.backend)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Assets(%s, %s) error = %v, want one saying %q", tt.p, tt.backend, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Assets(%s, %s) = %q, %v; want %q", tt.p, tt.backend, got, err, tt.want)
		}
	}
	if got, _ := Assets("b6123", Platform{"windows", "amd64"}, BackendCPU); got[0] != "llama-b6123-bin-win-cpu-x64.zip" {
		t.Errorf("a build tag names its archives itself: %q", got)
	}
}

// TestDefaultVersion guards the one line that moves the whole pool to
// another llama.cpp: it must be a release, and every platform Potluck
// ships for must have its archives under it.
func TestDefaultVersion(t *testing.T) {
	v, err := ParseVersion(DefaultVersion)
	if err != nil || v != DefaultVersion || v == VersionDebian {
		t.Fatalf("DefaultVersion %q is not a release version: %v", DefaultVersion, err)
	}
	for _, pb := range []struct {
		p Platform
		b string
	}{{Platform{"windows", "amd64"}, BackendCPU}, {Platform{"windows", "amd64"}, BackendVulkan}, {Platform{"windows", "amd64"}, BackendCUDA},
		{Platform{"darwin", "arm64"}, BackendMetal}, {Platform{"linux", "amd64"}, BackendVulkan}, {Platform{"linux", "amd64"}, BackendCPU}} {
		names, err := Assets(DefaultVersion, pb.p, pb.b)
		if err != nil || !strings.Contains(names[0], "-"+Tag(DefaultVersion)+"-bin-") {
			t.Errorf("%s %s under %s: %q, %v", pb.p, pb.b, DefaultVersion, names, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{"0.7.0": "0.7.0", "v0.5.0": "0.5.0", " 1.2.3 ": "1.2.3", "b6123": "b6123", "debian": "debian"} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "latest", "0.7", "v0.7.0-rc1", "../0.7.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted it", bad)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"0.5.0", "0.7.0", "0.9.1", "0.10.0", "1.0.0"}
	for i := 1; i < len(ordered); i++ {
		if compareVersions(ordered[i-1], ordered[i]) >= 0 || compareVersions(ordered[i], ordered[i-1]) <= 0 {
			t.Errorf("%s should come before %s", ordered[i-1], ordered[i])
		}
	}
}

func TestOlder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"0.6.2", "0.7.0", true},
		{"0.7.0", "0.7.0", false},
		{"0.10.0", "0.9.1", false},
		{"0.9.1", "0.10.0", true},
		{"b6123", "0.7.0", false},
		{"", "0.7.0", false},
		{"debian", "0.7.0", false},
	} {
		if got := Older(c.a, c.b); got != c.want {
			t.Errorf("Older(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
