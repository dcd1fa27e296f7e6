//go:build linux

package tray

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// capture takes a PNG of a window, or of the screen when id is "".
func (d *xdesk) capture(t *testing.T, id string) []byte {
	t.Helper()
	if id == "" {
		id = "root"
	}
	cmd := exec.Command("import", "-window", id, "png:-")
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("import -window %s: %v", id, err)
	}
	return out
}

func (d *xdesk) screen(t *testing.T) []byte { return d.capture(t, "") }

// settled waits until a capture differs from before (when given), is not
// blank and is the same twice running: drawing is done.
func (d *xdesk) settled(t *testing.T, id string, before []byte) []byte {
	t.Helper()
	var last, cur []byte
	poll(t, 30*time.Second, "the screen to settle", func() bool {
		last, cur = cur, d.capture(t, id)
		return !bytes.Equal(cur, before) && bytes.Equal(cur, last) && !blank(cur)
	})
	return cur
}

// cropChange crops after to what differs from before, with the top-left
// corner (where the tray icon is) and a margin.
func cropChange(t *testing.T, before, after []byte) []byte {
	t.Helper()
	a, err1 := png.Decode(bytes.NewReader(before))
	b, err2 := png.Decode(bytes.NewReader(after))
	if err1 != nil || err2 != nil {
		t.Fatalf("decoding screenshots: %v, %v", err1, err2)
	}
	r := b.Bounds()
	box := image.Rect(0, 0, 40, 40)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	box = image.Rect(box.Min.X, box.Min.Y, box.Max.X+24, box.Max.Y+24).Intersect(r)
	sub := b.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(box)
	var out bytes.Buffer
	if err := png.Encode(&out, sub); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// blank reports whether a PNG has a single colour.
func blank(b []byte) bool {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return true
	}
	r := img.Bounds()
	first := img.At(r.Min.X, r.Min.Y)
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}

func (d *xdesk) save(t *testing.T, name string, png []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", name)
}
