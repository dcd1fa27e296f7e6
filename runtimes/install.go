package runtimes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/internal/download"
	"github.com/potluck-gpu/potluck/internal/size"
)

// Progress is one step of an install, for the terminal, the tray and the
// web page: a download's bytes, or a line of what happens.
type Progress = download.Progress

// InstallOptions say what to install.
type InstallOptions struct {
	// Version is the llama.cpp version: "" for DefaultVersion, or
	// VersionDebian for whatever Debian's sid carries.
	Version string
	// Backend is one of Backends; "" or "auto" chooses from Hardware
	// (ChooseFor).
	Backend  string
	Hardware *hw.Report
	// Releases is the releases API; nil: DefaultReleases. A URL the user
	// gave (ReleasesGiven) is preferred to Debian's packages.
	Releases      *Client
	ReleasesGiven bool
	// Debian configures Debian's packages (Linux x86-64 with apt): the
	// mirror, apt sources and os-release; Dir, Backends, Version and
	// Progress are set by Install.
	Debian engine.InstallOptions
	// Progress, if set, hears of every step; Fetching, if set, hears
	// which build is about to be downloaded and its size.
	Progress func(Progress)
	Fetching func(backend string, bytes int64)
}

func (o InstallOptions) say(format string, a ...any) {
	if o.Progress != nil {
		o.Progress(Progress{Status: fmt.Sprintf(format, a...)})
	}
}

// Installed is the result of an install: the build, how its backend was
// chosen, and whether anything was fetched.
type Installed struct {
	Build   Build
	Choice  Choice
	Fetched bool
}

// Install provisions llama.cpp Version with the backend for this machine:
// from Debian's packages where the machine has apt and sid carries exactly
// that version (and always for CUDA on Linux), otherwise from the official
// release archives, each checked against the sha256 the releases API
// publishes before anything is unpacked. A build already installed is
// used as it is. Nothing half-installed is ever left: a build appears in
// the store whole or not at all.
func (s Store) Install(ctx context.Context, o InstallOptions) (Installed, error) {
	version := DefaultVersion
	if o.Version != "" {
		v, err := ParseVersion(o.Version)
		if err != nil {
			return Installed{}, err
		}
		version = v
	}
	p := s.platform()
	choice := Choice{Backend: o.Backend, Why: "asked for with --backend " + o.Backend}
	if o.Backend == "" || o.Backend == "auto" {
		choice = ChooseFor(p, o.Hardware)
	} else if !validBackend(o.Backend) {
		return Installed{}, fmt.Errorf("unknown llama.cpp backend %q: want auto, %s", o.Backend, strings.Join(Backends, ", "))
	}
	res := Installed{Choice: choice}

	debianOK := p.OS == "linux" && p.Arch == "amd64" && hasApt()
	useDebian := version == VersionDebian || (choice.Backend == BackendCUDA && p.OS == "linux") || (debianOK && !o.ReleasesGiven)
	if useDebian && debianOK {
		if b, ok := s.Find(version, choice.Backend); ok && b.Source == SourceDebian {
			res.Build = b
			return res, nil
		}
		b, err := s.installDebian(ctx, version, choice.Backend, o)
		var ve *engine.DebianVersionError
		switch {
		case err == nil:
			res.Build, res.Fetched = b, true
			return res, nil
		case version == VersionDebian || choice.Backend == BackendCUDA:
			return res, err
		case errors.As(err, &ve):
			o.say("Debian carries llama.cpp %s, not %s: using the release archive", ve.Have, version)
		case ctx.Err() != nil:
			return res, ctx.Err()
		default:
			o.say("Debian's packages: %v; using the release archive", err)
		}
	} else if version == VersionDebian {
		return res, fmt.Errorf("%w: Debian's llama.cpp packages need Linux x86-64 with apt; use a release version such as %s", engine.ErrUnsupportedPlatform, DefaultVersion)
	}
	if choice.Backend == BackendCUDA && p.OS == "linux" {
		choice = Choice{BackendVulkan, choice.Why + "; CUDA on Linux comes only from Debian's packages, which this system cannot use: Vulkan"}
		res.Choice = choice
	}
	if b, ok := s.Find(version, choice.Backend); ok {
		res.Build = b
		return res, nil
	}
	b, err := s.installRelease(ctx, version, choice.Backend, o)
	if err != nil {
		return res, err
	}
	res.Build, res.Fetched = b, true
	return res, nil
}

func validBackend(b string) bool {
	for _, x := range Backends {
		if x == b {
			return true
		}
	}
	return false
}

func hasApt() bool {
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false
		}
	}
	return true
}

func (s Store) installDebian(ctx context.Context, version, backend string, o InstallOptions) (Build, error) {
	d := o.Debian
	d.Dir = s.debianDir()
	if version != VersionDebian {
		d.Version = version
	}
	switch {
	case backend == BackendCPU && o.Backend == BackendCPU:
		d.Backends = []string{engine.ProvisionCPU}
	case backend == BackendCPU:
		// Debian's Vulkan backend is 4.5 MB beside the CPU's, and a
		// machine without a Vulkan driver just lists no Vulkan device.
		d.Backends = []string{engine.ProvisionVulkan}
	case backend == BackendCUDA:
		d.Backends = []string{engine.ProvisionCUDA}
	default:
		d.Backends = []string{engine.ProvisionVulkan}
	}
	d.Progress = func(format string, a ...any) { o.say(format, a...) }
	if _, err := engine.Install(ctx, d); err != nil {
		return Build{}, err
	}
	for _, b := range s.Installed() {
		if b.Source == SourceDebian {
			return b, nil
		}
	}
	return Build{}, fmt.Errorf("Debian's llama.cpp was unpacked in %s but cannot be found there", d.Dir)
}

// ArchiveError is a release archive Potluck will not install: no sha256
// published for it, or bytes that do not match it.
type ArchiveError struct {
	Asset string
	Why   string
}

func (e *ArchiveError) Error() string {
	return fmt.Sprintf("llama.cpp archive %s refused: %s; nothing was installed", e.Asset, e.Why)
}

func (s Store) installRelease(ctx context.Context, version, backend string, o InstallOptions) (Build, error) {
	p := s.platform()
	names, err := Assets(version, p, backend)
	if err != nil {
		return Build{}, err
	}
	client := o.Releases
	if client == nil {
		if client, err = NewClient("", ""); err != nil {
			return Build{}, err
		}
	}
	o.say("Looking up llama.cpp %s on %s", Tag(version), client.host())
	rel, err := client.Release(ctx, version)
	if err != nil {
		if NotFound(err) {
			return Build{}, fmt.Errorf("llama.cpp has no release %s on %s: check the version (Potluck runs %s)", Tag(version), client.host(), DefaultVersion)
		}
		return Build{}, err
	}
	var assets []Asset
	for _, name := range names {
		i := -1
		for j, a := range rel.Assets {
			if a.Name == name {
				i = j
			}
		}
		if i < 0 {
			return Build{}, fmt.Errorf("llama.cpp %s has no archive %s on %s (a %s build for %s)", Tag(version), name, client.host(), backend, p)
		}
		a := rel.Assets[i]
		if a.SHA256() == "" {
			why := "the releases service published no sha256 digest for it, and Potluck installs no archive it cannot check"
			if a.Digest != "" {
				why = fmt.Sprintf("its digest %q is not a sha256 Potluck can check", a.Digest)
			}
			return Build{}, &ArchiveError{Asset: name, Why: why}
		}
		assets = append(assets, a)
	}
	var total int64
	for _, a := range assets {
		total += a.Size
	}
	if o.Fetching != nil {
		o.Fetching(backend, total)
	}
	o.say("Getting llama.cpp %s (%s, %s)", version, BackendLabel(backend), size.Format(uint64(total)))
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return Build{}, err
	}
	downloads := filepath.Join(s.Dir, "downloads")
	var files []string
	var before int64 // bytes of the archives already fetched
	for _, a := range assets {
		dest := filepath.Join(downloads, a.Name)
		progress := func(p Progress) {
			if o.Progress == nil {
				return
			}
			if p.Total > 0 { // the whole build's bytes, not one archive's
				p.Total, p.Completed = total, before+p.Completed
			}
			o.Progress(p)
		}
		err := download.Download(ctx, download.File{Name: a.Name, URL: a.URL, Size: a.Size, SHA256: a.SHA256()}, dest, download.Options{
			HTTP:     client.http(),
			Prepare:  client.prepare,
			Refusal:  client.refusal,
			From:     "releases",
			Progress: progress,
		})
		var ce *download.ChecksumError
		if errors.As(err, &ce) {
			return Build{}, &ArchiveError{Asset: a.Name, Why: fmt.Sprintf("its sha256 is %s, but the releases service published %s: the download is corrupt or was tampered with", download.Short(ce.Got), download.Short(ce.Want))}
		}
		if err != nil {
			return Build{}, err
		}
		files = append(files, dest)
		before += a.Size
	}

	o.say("Unpacking llama.cpp %s (%s)", version, backend)
	final := filepath.Join(s.Dir, Tag(version)+"-"+backend)
	tmp, err := os.MkdirTemp(s.Dir, ".unpack-")
	if err != nil {
		return Build{}, err
	}
	defer os.RemoveAll(tmp)
	b := Build{Version: version, Backend: backend, Source: SourceRelease, Assets: map[string]string{}, Bytes: total, InstalledAt: time.Now().UTC()}
	for i, f := range files {
		if err := unpack(f, tmp); err != nil {
			return Build{}, err
		}
		b.Assets[assets[i].Name] = assets[i].SHA256()
	}
	exe := ""
	if p.OS == "windows" {
		exe = ".exe"
	}
	if _, err := os.Stat(filepath.Join(tmp, "llama-server"+exe)); err != nil {
		return Build{}, fmt.Errorf("llama.cpp archive %s holds no llama-server%s at its top: not a llama.cpp build", names[0], exe)
	}
	if err := writeBuildManifest(tmp, b); err != nil {
		return Build{}, err
	}
	old := final + ".old"
	os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Build{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return Build{}, err
	}
	os.RemoveAll(old)
	for _, f := range files {
		os.Remove(f) // unpacked and recorded: the archive only takes space
	}
	b.Dir = final
	return b, nil
}

// BackendLabel is a backend's name as people write it: "Vulkan", "CUDA".
func BackendLabel(b string) string {
	switch b {
	case BackendCUDA:
		return "CUDA"
	case BackendCPU:
		return "CPU"
	case BackendHIP:
		return "HIP"
	case BackendDebian:
		return "Debian"
	}
	if b == "" {
		return b
	}
	return strings.ToUpper(b[:1]) + b[1:]
}

// BackendDebian is Build.Backend of a build from Debian's packages.
const BackendDebian = SourceDebian
