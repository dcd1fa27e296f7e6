package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Runtime dependencies of the Linux binary. Fyne links libGL and libX11;
// GLFW opens the other X libraries at run time and works without some of
// them, but badly (no cursors, no monitor layout).
var (
	debDepends = []string{
		"libc6 (>= 2.34)", "libgl1", "libx11-6", "libxcursor1", "libxrandr2",
		"libxinerama1", "libxi6", "libxxf86vm1",
	}
	debRecommends = []string{"hicolor-icon-theme"}
	rpmDepends    = []string{
		"libGL.so.1()(64bit)", "libX11.so.6()(64bit)", "libXcursor.so.1()(64bit)",
		"libXrandr.so.2()(64bit)", "libXinerama.so.1()(64bit)", "libXi.so.6()(64bit)",
		"libXxf86vm.so.1()(64bit)",
	}
)

// linuxBuild packages one linux/amd64 binary.
type linuxBuild struct {
	Meta
	Root  string    // repository root
	Bin   string    // the binary
	Llama string    // optional llama.cpp runtime to bundle
	Out   string    // output directory
	Date  time.Time // release date and file times
}

// file is one file an installer puts on the system.
type file struct {
	Dst  string      // installed path, relative to the prefix ("bin/potluck")
	Src  string      // where it is now
	Mode fs.FileMode // 0 for 0644
}

// generated writes the files rendered from Meta under dir, for a prefix
// whose executable is exec, and returns them.
func (b linuxBuild) generated(dir, exec string) ([]file, error) {
	v := newView(b.Meta, exec, b.Date)
	var out []file
	add := func(dst, tmpl string) error {
		src := filepath.Join(dir, filepath.FromSlash(dst))
		out = append(out, file{Dst: dst, Src: src})
		return renderTo(src, tmpl, v)
	}
	if err := add("share/applications/"+b.ID+".desktop", "desktop.tmpl"); err != nil {
		return nil, err
	}
	if err := add("share/metainfo/"+b.ID+".metainfo.xml", "metainfo.xml.tmpl"); err != nil {
		return nil, err
	}
	icon, err := loadPNG(filepath.Join(b.Root, "icons", "app.png"))
	if err != nil {
		return nil, err
	}
	for _, s := range hicolorSizes {
		dst := fmt.Sprintf("share/icons/hicolor/%dx%d/apps/%s.png", s, s, b.ID)
		data, err := encodePNG(scaled(icon, s))
		if err != nil {
			return nil, err
		}
		src := filepath.Join(dir, filepath.FromSlash(dst))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return nil, err
		}
		out = append(out, file{Dst: dst, Src: src})
	}
	return out, nil
}

// docs are the documentation files shipped with every package.
func (b linuxBuild) docs() []file {
	out := []file{{Dst: "share/doc/" + b.Command + "/README.md", Src: filepath.Join(b.Root, "README.md")}}
	if lic := filepath.Join(b.Root, "LICENSE"); exists(lic) {
		out = append(out, file{Dst: "share/doc/" + b.Command + "/copyright", Src: lic})
	}
	return out
}

// nfpm builds the .deb or .rpm and returns its path.
func (b linuxBuild) nfpm(format string) (string, error) {
	stage := filepath.Join(b.Out, "build", "linux-"+format)
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	gen, err := b.generated(stage, "/usr/bin/"+b.Command)
	if err != nil {
		return "", err
	}
	unit := filepath.Join(stage, "systemd", b.Command+".service")
	if err := renderTo(unit, "service.tmpl", newView(b.Meta, "/usr/bin/"+b.Command, b.Date)); err != nil {
		return "", err
	}

	var contents files.Contents
	addFile := func(dst, src string, mode fs.FileMode, typ string) {
		if mode == 0 {
			mode = 0o644
		}
		contents = append(contents, &files.Content{
			Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, MTime: b.Date},
		})
	}
	if b.Llama == "" {
		addFile("/usr/bin/"+b.Command, b.Bin, 0o755, "")
	} else {
		if !isDir(b.Llama) {
			return "", fmt.Errorf("LLAMA_DIR %s is not a directory", b.Llama)
		}
		lib := "/usr/lib/" + b.Command
		addFile(lib+"/"+b.Command, b.Bin, 0o755, "")
		contents = append(contents,
			&files.Content{Source: b.Llama, Destination: lib + "/llama", Type: files.TypeTree},
			&files.Content{Source: lib + "/" + b.Command, Destination: "/usr/bin/" + b.Command, Type: files.TypeSymlink})
	}
	for _, f := range gen {
		addFile("/usr/"+f.Dst, f.Src, f.Mode, "")
	}
	addFile("/usr/lib/systemd/user/"+b.Command+".service", unit, 0, "")
	if format == "rpm" {
		// rpm removes only the directories a package lists.
		dirs := []string{"/usr/share/doc/" + b.Command}
		if b.Llama != "" {
			dirs = append(dirs, "/usr/lib/"+b.Command)
		}
		for _, d := range dirs {
			contents = append(contents, &files.Content{Destination: d, Type: files.TypeDir,
				FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: b.Date}})
		}
	}
	for _, f := range b.docs() {
		// nfpm leaves files of the rpm-only types out of a .deb.
		typ := ""
		if format == "rpm" {
			typ = files.TypeRPMDoc
			if strings.HasSuffix(f.Dst, "/copyright") {
				f.Dst, typ = "share/licenses/"+b.Command+"/LICENSE", files.TypeRPMLicense
			}
		}
		addFile("/usr/"+f.Dst, f.Src, 0, typ)
	}

	info := &nfpm.Info{
		Name:          b.Command,
		Arch:          "amd64",
		Platform:      "linux",
		Version:       b.Version,
		VersionSchema: "none",
		Release:       fmt.Sprint(b.Build),
		Section:       "net",
		Priority:      "optional",
		Maintainer:    b.Maintainer,
		Vendor:        b.Maintainer,
		Homepage:      b.Website,
		License:       b.License,
		MTime:         b.Date,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
			Deb: nfpm.Deb{
				Compression: "xz",
			},
			RPM: nfpm.RPM{
				Summary:     b.Summary,
				Group:       "Applications/Internet",
				Compression: "xz",
				BuildHost:   "localhost",
			},
		},
	}
	if format == "deb" {
		// The first line is the synopsis; nfpm writes blank lines as " .".
		info.Depends, info.Recommends = debDepends, debRecommends
		info.Description = b.Summary + "\n" + wrapParagraphs(b.Description, 76)
	} else {
		info.Depends = rpmDepends
		info.Description = wrapParagraphs(b.Description, 76)
	}
	if b.License == "" {
		info.License = "Unknown"
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	name := pkg.ConventionalFileName(info)
	target := filepath.Join(b.Out, name)
	if err := writeAtomic(target, func(w io.Writer) error { return pkg.Package(info, w) }); err != nil {
		return "", err
	}
	return target, os.RemoveAll(stage)
}

// tarball builds NAME-VERSION-linux-amd64.tar.gz: the binary, the desktop
// files with @BINDIR@ for the install Makefile to fill in, and that Makefile.
func (b linuxBuild) tarball() (string, error) {
	base := fmt.Sprintf("%s-%s-linux-amd64", b.Command, b.Version)
	stage := filepath.Join(b.Out, "build", "linux-tar")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	gen, err := b.generated(stage, "@BINDIR@/"+b.Command)
	if err != nil {
		return "", err
	}
	v := newView(b.Meta, "@BINDIR@/"+b.Command, b.Date)
	unit := filepath.Join(stage, "share", "systemd", "user", b.Command+".service")
	if err := renderTo(unit, "service.tmpl", v); err != nil {
		return "", err
	}
	mk := filepath.Join(stage, "Makefile")
	if err := renderTo(mk, "Makefile.tmpl", v); err != nil {
		return "", err
	}
	entries := []file{
		{Dst: "Makefile", Src: mk},
		{Dst: "README.md", Src: filepath.Join(b.Root, "README.md")},
		{Dst: b.Command, Src: b.Bin, Mode: 0o755},
		{Dst: "share/systemd/user/" + b.Command + ".service", Src: unit},
	}
	entries = append(entries, gen...)
	if lic := filepath.Join(b.Root, "LICENSE"); exists(lic) {
		entries = append(entries, file{Dst: "LICENSE", Src: lic})
	}
	if b.Llama != "" && !isDir(b.Llama) {
		return "", fmt.Errorf("LLAMA_DIR %s is not a directory", b.Llama)
	}
	target := filepath.Join(b.Out, base+".tar.gz")
	err = writeAtomic(target, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		t := tarWriter{tw: tw, mtime: b.Date, dirs: map[string]bool{}}
		for _, e := range entries {
			if err := t.file(path.Join(base, e.Dst), e.Src, e.Mode); err != nil {
				return err
			}
		}
		if b.Llama != "" {
			if err := t.tree(path.Join(base, "llama"), b.Llama); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return "", err
	}
	return target, os.RemoveAll(stage)
}

// tarWriter adds files to a tar with root ownership and one time, and
// their parent directories once each.
type tarWriter struct {
	tw    *tar.Writer
	mtime time.Time
	dirs  map[string]bool
}

func (t tarWriter) dir(name string) error {
	if name == "." || name == "/" || t.dirs[name] {
		return nil
	}
	if err := t.dir(path.Dir(name)); err != nil {
		return err
	}
	t.dirs[name] = true
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: t.mtime, Format: tar.FormatPAX})
}

func (t tarWriter) file(name, src string, mode fs.FileMode) error {
	if mode == 0 {
		mode = 0o644
	}
	if err := t.dir(path.Dir(name)); err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode), Size: st.Size(), ModTime: t.mtime, Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(t.tw, f)
	return err
}

// tree adds the directory src as name, keeping executable bits and symlinks.
func (t tarWriter) tree(name, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := path.Join(name, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return t.dir(dst)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := t.dir(path.Dir(dst)); err != nil {
				return err
			}
			return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: dst, Linkname: link, Mode: 0o777, ModTime: t.mtime, Format: tar.FormatPAX})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return t.file(dst, p, mode)
		}
		return fmt.Errorf("%s: not a file, directory or symlink", p)
	})
}

// writeAtomic writes path through a temporary file renamed into place.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// wrapParagraphs fills each paragraph to width columns, with a blank line
// between paragraphs.
func wrapParagraphs(paras []string, width int) string {
	var b strings.Builder
	for i, p := range paras {
		if i > 0 {
			b.WriteString("\n\n")
		}
		n := 0
		for j, w := range strings.Fields(p) {
			switch {
			case j == 0:
			case n+1+len(w) > width:
				b.WriteByte('\n')
				n = 0
			default:
				b.WriteByte(' ')
				n++
			}
			b.WriteString(w)
			n += len(w)
		}
	}
	return b.String()
}
