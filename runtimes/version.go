// Package runtimes owns the llama.cpp builds on this machine. It provisions
// llama.cpp's official release archives for Windows, macOS and Linux (and
// Debian's packages where Debian carries the version wanted), checks each
// archive's sha256 before unpacking it, keeps the builds side by side, one
// folder per version and backend, and chooses the build that suits the
// machine's GPUs. One Potluck release runs one llama.cpp version
// everywhere, DefaultVersion, so that every machine in a pool speaks the
// same RPC protocol and splits work across operating systems.
package runtimes

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultVersion is the llama.cpp release this Potluck runs on every
// machine: the version `potluck engine install` and a node's first run
// provision. Raising it is this one line; TestDefaultVersion checks the
// value and that every platform has its archives under it.
const DefaultVersion = "0.7.0"

// VersionDebian asks for whatever version Debian's sid carries, from its
// packages (Linux x86-64 with apt only): the runtime CUDA needs on Linux.
const VersionDebian = "debian"

var releaseRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$|^b[0-9]+$`)

// ParseVersion accepts a llama.cpp version as people write it ("0.7.0",
// "v0.7.0", or a build tag "b6123") and returns it without the "v".
func ParseVersion(s string) (string, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if v == VersionDebian {
		return v, nil
	}
	if !versionRE.MatchString(v) {
		return "", fmt.Errorf("llama.cpp version %q: want a release such as %s (or v%s), or %q for Debian's", s, DefaultVersion, DefaultVersion, VersionDebian)
	}
	return v, nil
}

// Tag is the release tag of a version: "v0.7.0" for 0.7.0, the tag itself
// for a build tag such as b6123.
func Tag(version string) string {
	if strings.HasPrefix(version, "b") {
		return version
	}
	return "v" + version
}

// Older says whether release a (such as "0.6.2") comes before release b.
// Build tags ("b6123") and Debian's own versions compare with no release:
// Older is false for them.
func Older(a, b string) bool {
	return releaseRE.MatchString(a) && releaseRE.MatchString(b) && compareVersions(a, b) < 0
}

// OutdatedAdvice says why a build older than DefaultVersion matters and
// what to do, for a warning.
func OutdatedAdvice(running string) string {
	return fmt.Sprintf("this machine runs llama.cpp %s, older than %s, the version this Potluck runs and keeps patched "+
		"(llama.cpp fixes security bugs in its RPC server and model reader): `potluck engine install`, "+
		"and drop --llama-version, POTLUCK_LLAMA_VERSION or POTLUCK_LLAMA_DIR if one names the older build", running, DefaultVersion)
}
