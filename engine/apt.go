package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The apt side of provisioning Debian's packages: the machine's mirror, and
// a private apt configuration for sid that downloads without installing.

// systemAptSources lists the machine's own apt source files.
func systemAptSources() []string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	return files
}

var debianSuite = regexp.MustCompile(`^(sid|unstable|testing|stable|oldstable|bullseye|bookworm|trixie|forky|duke)(-updates|-backports)?$`)

// DebianMirror returns the first Debian archive URI (not the security
// archive) named by the given apt source files, in either the one-line or
// the deb822 format. Provisioning uses the mirror this machine already uses.
func DebianMirror(files []string) (string, error) {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uris []string
		if strings.HasSuffix(f, ".sources") {
			uris = deb822URIs(data)
		} else {
			uris = oneLineURIs(data)
		}
		if len(uris) > 0 {
			return strings.TrimRight(uris[0], "/"), nil
		}
	}
	return "", fmt.Errorf("%w: no Debian archive found in the apt sources (%s)", ErrUnsupportedPlatform, strings.Join(files, ", "))
}

func oneLineURIs(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") { // options
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) > 0 {
				fields = fields[1:]
			}
		}
		if len(fields) >= 2 && debianSuite.MatchString(fields[1]) {
			out = append(out, fields[0])
		}
	}
	return out
}

func deb822URIs(data []byte) []string {
	var out []string
	for _, stanza := range strings.Split(string(data), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || fields["enabled"] == "no" {
			continue
		}
		suites := strings.Fields(fields["suites"])
		if !slices.ContainsFunc(suites, debianSuite.MatchString) {
			continue
		}
		if u := strings.Fields(fields["uris"]); len(u) > 0 {
			out = append(out, u[0])
		}
	}
	return out
}

// aptDirs is a private apt configuration for one suite, kept apart from the
// system's lists and caches.
type aptDirs struct {
	root, mirror string
	components   []string // archive components; "main" when empty
}

func (a aptDirs) comps() []string {
	if len(a.components) == 0 {
		return []string{"main"}
	}
	return a.components
}

func (a aptDirs) init() error {
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.root, d), 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(a.root, "sources.list"), []byte(a.sourcesLine()), 0o644)
}

// sourcesLine is the private sources.list: sid, signatures checked against
// Debian's keyring, and only the components the packages need.
func (a aptDirs) sourcesLine() string {
	return fmt.Sprintf("deb [signed-by=%s] %s %s %s\n", debianKeyring, a.mirror, provisionSuite, strings.Join(a.comps(), " "))
}

func (a aptDirs) opts() []string {
	o := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.root, "sources.list"),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(a.root, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.root, "cache"),
		"-o", "Dir::State::status=/dev/null",
		// sid's Release may be past its Valid-Until for this clock; signatures are still checked.
		"-o", "Acquire::Check-Valid-Until=false",
		"-o", "Debug::NoLocking=1",
		"-q",
	}
	if os.Geteuid() == 0 {
		o = append(o, "-o", "APT::Sandbox::User=root")
	}
	return o
}

// hasIndex says whether every component's package index has been fetched.
func (a aptDirs) hasIndex() bool {
	for _, c := range a.comps() {
		m, _ := filepath.Glob(filepath.Join(a.root, "lists", "*_dists_"+provisionSuite+"_"+c+"_binary-amd64_Packages*"))
		if len(m) == 0 {
			return false
		}
	}
	return true
}

func (a aptDirs) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", append(a.opts(), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("apt-get %s: %w: %s", args[0], err, lastLines(stderr.String(), 4))
	}
	return out, nil
}

func (a aptDirs) update(ctx context.Context) error {
	_, err := a.run(ctx, a.root, "update")
	return err
}

type debURI struct {
	URI, File, SHA256 string
}

var printURILine = regexp.MustCompile(`^'([^']+)'\s+(\S+)\s+\d+\s+SHA256:([0-9a-f]{64})$`)

func (a aptDirs) printURIs(ctx context.Context, pkgs []string) ([]debURI, error) {
	out, err := a.run(ctx, a.root, append([]string{"--print-uris", "download"}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	uris := ParsePrintURIs(string(out))
	if len(uris) != len(pkgs) {
		return nil, fmt.Errorf("apt-get --print-uris named %d of %d packages", len(uris), len(pkgs))
	}
	return uris, nil
}

// ParsePrintURIs parses `apt-get --print-uris download` output.
func ParsePrintURIs(out string) []debURI {
	var uris []debURI
	for _, line := range strings.Split(out, "\n") {
		if m := printURILine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			uris = append(uris, debURI{URI: m[1], File: m[2], SHA256: m[3]})
		}
	}
	return uris
}

// download fetches the packages not already present with the right hash.
// apt-get does the transfer (so the machine's apt proxy settings apply); the
// hash is checked again here before a file is used.
func (a aptDirs) download(ctx context.Context, debs string, uris []debURI, progress func(string, ...any)) error {
	var missing []string
	for _, u := range uris {
		if err := checkSHA256(filepath.Join(debs, u.File), u.SHA256); err != nil {
			missing = append(missing, strings.SplitN(u.File, "_", 2)[0])
		}
	}
	if len(missing) > 0 {
		progress("Downloading %d packages: %s", len(missing), strings.Join(missing, " "))
		if _, err := a.run(ctx, debs, append([]string{"download"}, missing...)...); err != nil {
			return err
		}
	}
	for _, u := range uris {
		if err := checkSHA256(filepath.Join(debs, u.File), u.SHA256); err != nil {
			return err
		}
	}
	return nil
}
