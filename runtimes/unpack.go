package runtimes

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxUnpacked bounds what one archive may unpack to: more is not llama.cpp.
const maxUnpacked = 16 << 30

// unpack extracts a release archive (.zip or .tar.gz) into dir. The one
// folder a tar.gz wraps everything in (llama-v0.7.0/) is dropped, so every
// build's files sit at the top of its folder. A name that would land
// outside dir, or a link pointing outside it, fails the whole archive.
func unpack(archive, dir string) error {
	switch {
	case strings.HasSuffix(archive, ".zip"):
		return unzip(archive, dir)
	case strings.HasSuffix(archive, ".tar.gz"), strings.HasSuffix(archive, ".tgz"):
		return untar(archive, dir)
	}
	return fmt.Errorf("%s: not a .zip or .tar.gz archive", filepath.Base(archive))
}

// entryPath turns an archive's entry name into a path under dir, dropping
// top (the archive's own folder) when the name starts with it.
func entryPath(dir, name, top string) (string, error) {
	name = strings.ReplaceAll(name, `\`, "/")
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if top != "" && (clean == top || strings.HasPrefix(clean, top+"/")) {
		clean = strings.TrimPrefix(strings.TrimPrefix(clean, top), "/")
	}
	if clean == "" || clean == "." {
		return "", nil
	}
	if !fs.ValidPath(clean) {
		return "", fmt.Errorf("the archive holds %q, which would land outside its folder", name)
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}

// topFolder is the one folder every name starts with, or "".
func topFolder(names []string) string {
	top := ""
	for _, n := range names {
		n = strings.TrimPrefix(strings.ReplaceAll(n, `\`, "/"), "./")
		first, rest, nested := strings.Cut(n, "/")
		if first == "" || first == "." {
			continue
		}
		if !nested && rest == "" && !strings.HasSuffix(n, "/") {
			return "" // a file at the top
		}
		if top != "" && first != top {
			return ""
		}
		top = first
	}
	return top
}

func unzip(archive, dir string) error {
	zr, err := zip.OpenReader(archive)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	top := topFolder(names)
	var total uint64
	var links []*zip.File
	for _, f := range zr.File {
		dst, err := entryPath(dir, f.Name, top)
		if err != nil || dst == "" {
			if err != nil {
				return err
			}
			continue
		}
		if total += f.UncompressedSize64; total > maxUnpacked {
			return fmt.Errorf("%s unpacks to more than %d GiB: not a llama.cpp build", filepath.Base(archive), maxUnpacked>>30)
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			links = append(links, f)
		default:
			rc, err := f.Open()
			if err != nil {
				return err
			}
			err = writeFile(dst, rc, zipPerm(mode), int64(f.UncompressedSize64))
			rc.Close()
			if err != nil {
				return fmt.Errorf("%s: %s: %w", filepath.Base(archive), f.Name, err)
			}
		}
	}
	var pending []pendingLink
	for _, f := range links {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		target, err := io.ReadAll(io.LimitReader(rc, 4096))
		rc.Close()
		if err != nil {
			return err
		}
		dst, _ := entryPath(dir, f.Name, top)
		pending = append(pending, pendingLink{dst, string(target)})
	}
	if err := makeLinks(dir, pending); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	return nil
}

// zipPerm gives files from a zip made on Windows (no Unix modes) the
// execute bit, as llama.cpp's binaries need it.
func zipPerm(mode fs.FileMode) fs.FileMode {
	if mode.Perm()&0o700 == 0 {
		return 0o755
	}
	return mode.Perm() | 0o600
}

func untar(archive, dir string) error {
	names, err := tarNames(archive)
	if err != nil {
		return err
	}
	top := topFolder(names)
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	tr := tar.NewReader(gz)
	var total int64
	var links []pendingLink
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
		dst, err := entryPath(dir, h.Name, top)
		if err != nil {
			return err
		}
		if dst == "" {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if total += h.Size; total > maxUnpacked {
				return fmt.Errorf("%s unpacks to more than %d GiB: not a llama.cpp build", filepath.Base(archive), maxUnpacked>>30)
			}
			if err := writeFile(dst, tr, fs.FileMode(h.Mode).Perm()|0o600, h.Size); err != nil {
				return fmt.Errorf("%s: %s: %w", filepath.Base(archive), h.Name, err)
			}
		case tar.TypeSymlink:
			links = append(links, pendingLink{dst, h.Linkname})
		case tar.TypeLink:
			target, err := entryPath(dir, h.Linkname, top)
			if err != nil || target == "" {
				return fmt.Errorf("%s: a hard link to %q: %v", filepath.Base(archive), h.Linkname, err)
			}
			rel, _ := filepath.Rel(filepath.Dir(dst), target)
			links = append(links, pendingLink{dst, filepath.ToSlash(rel)})
		}
	}
	if err := makeLinks(dir, links); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	return nil
}

func tarNames(archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
		names = append(names, h.Name)
	}
}

func writeFile(dst string, r io.Reader, perm fs.FileMode, size int64) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(r, size+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("holds %d bytes, its header says %d", n, size)
	}
	return err
}

// pendingLink is a symbolic link of an archive, made once its files are.
type pendingLink struct{ dst, target string }

// makeLinks makes the archive's symbolic links, each of whose targets must
// stay inside dir. Where a link cannot be followed (Windows without the
// privilege to make links, or Wine, which reports them made), it becomes a
// copy of its target: chains of links (libx.so -> libx.so.0 -> libx.so.0.1)
// are copied from their end.
func makeLinks(dir string, links []pendingLink) error {
	for _, l := range links {
		if filepath.IsAbs(l.target) || strings.HasPrefix(l.target, "/") {
			return fmt.Errorf("a link to %q, outside the archive", l.target)
		}
		if rel, err := filepath.Rel(dir, l.resolved()); err != nil || !filepath.IsLocal(rel) {
			return fmt.Errorf("a link to %q, outside the archive", l.target)
		}
		if err := os.MkdirAll(filepath.Dir(l.dst), 0o755); err != nil {
			return err
		}
		os.Remove(l.dst)
		_ = os.Symlink(filepath.FromSlash(l.target), l.dst) // checked below
	}
	for left := links; len(left) > 0; {
		var next []pendingLink
		for _, l := range left {
			if _, err := os.Stat(l.dst); err == nil {
				continue
			}
			fi, err := os.Stat(l.resolved())
			if err != nil || !fi.Mode().IsRegular() {
				next = append(next, l) // its target may be a link copied later
				continue
			}
			if err := copyFile(l.resolved(), l.dst, fi); err != nil {
				return err
			}
		}
		if len(next) == len(left) {
			return fmt.Errorf("a link to %q, which is not in the archive", next[0].target)
		}
		left = next
	}
	return nil
}

func (l pendingLink) resolved() string {
	return filepath.Join(filepath.Dir(l.dst), filepath.FromSlash(l.target))
}

func copyFile(src, dst string, fi os.FileInfo) error {
	os.Remove(dst)
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeFile(dst, f, fi.Mode().Perm(), fi.Size())
}
