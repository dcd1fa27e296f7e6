package runtimes

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

type entry struct {
	name, body, link string
	dir              bool
}

func writeTarGz(t *testing.T, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeZip(t *testing.T, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUnpackLayouts(t *testing.T) {
	t.Run("linux tar.gz: the llama-TAG folder is dropped, links kept", func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "llama-v0.7.0-bin-ubuntu-x64.tar.gz")
		writeTarGz(t, a, []entry{
			{name: "llama-v0.7.0/", dir: true},
			{name: "llama-v0.7.0/llama-server", body: "server"},
			{name: "llama-v0.7.0/libllama.so", link: "libllama.so.0"}, // a chain, its head first
			{name: "llama-v0.7.0/libllama.so.0", link: "libllama.so.0.7.0"},
			{name: "llama-v0.7.0/libllama.so.0.7.0", body: "lib"},
		})
		out := filepath.Join(dir, "out")
		if err := unpack(a, out); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "libllama.so")); err != nil || string(b) != "lib" {
			t.Fatalf("libllama.so through its link: %q, %v", b, err)
		}
		if fi, err := os.Stat(filepath.Join(out, "llama-server")); err != nil || (runtime.GOOS != "windows" && fi.Mode()&0o100 == 0) {
			t.Fatalf("llama-server: %v, %v", fi, err)
		}
	})
	t.Run("windows zip: flat, and made executable", func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "llama-v0.7.0-bin-win-cpu-x64.zip")
		writeZip(t, a, []entry{{name: "llama-server.exe", body: "MZ"}, {name: "ggml-rpc-server.exe", body: "MZ"}, {name: "ggml-cpu-haswell.dll", body: "MZ"}})
		out := filepath.Join(dir, "out")
		if err := unpack(a, out); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"llama-server.exe", "ggml-rpc-server.exe", "ggml-cpu-haswell.dll"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for name, entries := range map[string][]entry{
		"a name with ..":         {{name: "llama-v0.7.0/../../evil", body: "x"}},
		"an absolute link":       {{name: "llama-v0.7.0/llama-server", body: "x"}, {name: "llama-v0.7.0/libx.so", link: "/etc/passwd"}},
		"a link leaving the dir": {{name: "llama-v0.7.0/llama-server", body: "x"}, {name: "llama-v0.7.0/libx.so", link: "../../secret"}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "a.tar.gz")
			writeTarGz(t, a, entries)
			out := filepath.Join(dir, "out")
			err := unpack(a, out)
			if err == nil || !strings.Contains(err.Error(), "outside") {
				t.Fatalf("unpack = %v, want a refusal", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("a file was written outside the folder")
			}
		})
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.zip")
	writeZip(t, a, []entry{{name: `..\..\evil.dll`, body: "MZ"}})
	if err := unpack(a, filepath.Join(dir, "out")); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("a zip with a backslashed ..: %v", err)
	}
}
