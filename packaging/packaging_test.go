package main

import (
	"bytes"
	"encoding/binary"
	"github.com/potluck-gpu/potluck/internal/symlink"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testMeta(t *testing.T) Meta {
	t.Helper()
	m, err := LoadMeta(filepath.Join("..", "FyneApp.toml"), "description.txt")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadMetaFromFyneApp(t *testing.T) {
	m := testMeta(t)
	if m.Name != "Potluck" || m.Command != "potluck" || m.ID != "io.github.potluck_gpu.potluck" {
		t.Errorf("name/command/id = %q/%q/%q", m.Name, m.Command, m.ID)
	}
	if !versionRE.MatchString(m.Version) || m.Build < 1 {
		t.Errorf("version %q build %d", m.Version, m.Build)
	}
	if m.Summary == "" || len(m.Description) < 1 || len(m.Categories) == 0 {
		t.Errorf("summary %q, %d paragraphs, categories %v", m.Summary, len(m.Description), m.Categories)
	}
	if m.License != "Apache-2.0" {
		t.Errorf("license %q, want Apache-2.0 from LICENSE", m.License)
	}
}

func TestWithVersion(t *testing.T) {
	m := testMeta(t)
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", m.Version, true},
		{"1.2.3", "1.2.3", true},
		{"v2.0.10", "2.0.10", true},
		{"3d117bb-dirty", "", false},
		{"1.2", "", false},
	} {
		got, err := m.WithVersion(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("WithVersion(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got.Version != tc.want {
			t.Errorf("WithVersion(%q) = %q, want %q", tc.in, got.Version, tc.want)
		}
	}
}

func TestWindowsVersion(t *testing.T) {
	m := Meta{Version: "1.20.3", Build: 7}
	if got := m.WindowsVersion(); got != [4]int{1, 20, 3, 7} {
		t.Errorf("WindowsVersion = %v", got)
	}
}

func TestParagraphsAndWrap(t *testing.T) {
	ps := paragraphs("one\ntwo  three\n\n\nfour\r\n")
	if len(ps) != 2 || ps[0] != "one two three" || ps[1] != "four" {
		t.Fatalf("paragraphs = %q", ps)
	}
	got := wrapParagraphs([]string{"aaa bbb ccc ddd", "eee"}, 7)
	if want := "aaa bbb\nccc ddd\n\neee"; got != want {
		t.Errorf("wrapParagraphs = %q, want %q", got, want)
	}
}

func TestTemplates(t *testing.T) {
	m := testMeta(t)
	m.Description = []string{`Tom & Jerry's "app" <3`}
	v := newView(m, "/usr/bin/potluck", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, tc := range []struct {
		tmpl string
		want []string
	}{
		{"desktop.tmpl", []string{"Exec=/usr/bin/potluck\n", "Icon=" + m.ID + "\n", "Categories=Network;\n"}},
		{"metainfo.xml.tmpl", []string{"<id>" + m.ID + "</id>", `date="2026-01-02"`, "Tom &amp; Jerry&#39;s &#34;app&#34; &lt;3"}},
		{"service.tmpl", []string{"ExecStart=/usr/bin/potluck run\n", "WantedBy=default.target"}},
		{"Makefile.tmpl", []string{"ID      := " + m.ID + "\n"}},
		{"potluck.rc.tmpl", []string{"FILEVERSION 0,1,0,1", `"ProductVersion", "` + m.Version + `"`}},
		{"defines.nsh.tmpl", []string{`!define APP_ID "` + m.ID + `"`}},
	} {
		if tc.tmpl == "potluck.rc.tmpl" {
			v.V = [4]int{0, 1, 0, 1}
		}
		out, err := render(tc.tmpl, v)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s lacks %q:\n%s", tc.tmpl, w, out)
			}
		}
	}
}

func TestEscapes(t *testing.T) {
	if got := nsisEscape(`a "$b"`); got != `a $\"$$b$\"` {
		t.Errorf("nsisEscape = %s", got)
	}
	if got := rcEscape(`say "hi"`); got != `say ""hi""` {
		t.Errorf("rcEscape = %s", got)
	}
}

func TestBuildTime(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	if got, _ := buildTime("", now); !got.Equal(now) {
		t.Errorf("no epoch: %v", got)
	}
	if got, _ := buildTime("86400", now); !got.Equal(time.Unix(86400, 0)) {
		t.Errorf("epoch: %v", got)
	}
	if _, err := buildTime("soon", now); err == nil {
		t.Error("bad epoch accepted")
	}
}

// TestICO checks the icon directory against the images it points at.
func TestICO(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 40, 40))
	for i := range src.Pix {
		src.Pix[i] = 0x80
	}
	src.SetNRGBA(0, 0, color.NRGBA{R: 255, A: 255})
	sizes := []int{16, 32, 256}
	ico, err := encodeICO(src, sizes)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint16(ico[0:]) != 0 || le.Uint16(ico[2:]) != 1 || int(le.Uint16(ico[4:])) != len(sizes) {
		t.Fatalf("bad header % x", ico[:6])
	}
	end := 6 + 16*len(sizes)
	for i, s := range sizes {
		e := ico[6+16*i:]
		w, n, off := int(e[0]), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		if w == 0 {
			w = 256
		}
		if w != s || off != end {
			t.Fatalf("entry %d: width %d at %d, want %d at %d", i, w, off, s, end)
		}
		img := ico[off : off+n]
		end += n
		if s >= 64 {
			cfg, err := png.DecodeConfig(bytes.NewReader(img))
			if err != nil || cfg.Width != s {
				t.Errorf("entry %d: PNG %v, %v", i, cfg, err)
			}
			continue
		}
		if int(le.Uint32(img)) != 40 || int(le.Uint32(img[4:])) != s || int(le.Uint32(img[8:])) != 2*s {
			t.Errorf("entry %d: bad BITMAPINFOHEADER % x", i, img[:12])
		}
		if want := 40 + s*s*4 + ((s+31)/32)*4*s; n != want {
			t.Errorf("entry %d: %d bytes, want %d", i, n, want)
		}
	}
	if end != len(ico) {
		t.Errorf("images end at %d, file is %d bytes", end, len(ico))
	}
}

// TestTarball builds a tarball from a fake binary and a llama dir with a
// symlink, and checks the layout the install Makefile expects.
func TestTarball(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "potluck")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	llama := filepath.Join(dir, "llama")
	if err := os.MkdirAll(llama, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(llama, "libggml.so.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !symlink.Works(t.TempDir()) {
		t.Skip("this system makes no symbolic links (Wine, or Windows without Developer Mode): the Linux tarball carries them")
	}
	if err := os.Symlink("libggml.so.0", filepath.Join(llama, "libggml.so")); err != nil {
		t.Fatal(err)
	}
	b := linuxBuild{Meta: testMeta(t), Root: "..", Bin: bin, Llama: llama, Out: filepath.Join(dir, "out"), Date: time.Unix(0, 0)}
	path, err := b.tarball()
	if err != nil {
		t.Fatal(err)
	}
	names, err := tarNames(path)
	if err != nil {
		t.Fatal(err)
	}
	base := "potluck-" + b.Version + "-linux-amd64/"
	for _, want := range []string{
		"Makefile", "README.md", "potluck", "llama/libggml.so -> libggml.so.0",
		"share/applications/" + b.ID + ".desktop", "share/systemd/user/potluck.service",
		"share/icons/hicolor/512x512/apps/" + b.ID + ".png",
	} {
		if !names[base+want] {
			t.Errorf("tarball lacks %s", base+want)
		}
	}
}
