package icons

import (
	"bytes"
	"image/png"
	"testing"
)

func TestTrayIcons(t *testing.T) {
	for _, s := range States {
		for _, v := range []Variant{Light, Dark} {
			for _, size := range Sizes {
				b := Tray(s, v, size)
				img, err := png.Decode(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("%s %s %d: %v", s, v, size, err)
				}
				if got := img.Bounds().Dx(); got != size || img.Bounds().Dy() != size {
					t.Errorf("%s %s %d: image is %v", s, v, size, img.Bounds())
				}
			}
		}
	}
}

func TestTraySizeChoice(t *testing.T) {
	for _, tc := range []struct{ ask, want int }{{0, 22}, {22, 22}, {23, 32}, {48, 64}, {256, 64}} {
		img, err := png.Decode(bytes.NewReader(Tray(Sharing, Dark, tc.ask)))
		if err != nil {
			t.Fatal(err)
		}
		if got := img.Bounds().Dx(); got != tc.want {
			t.Errorf("Tray(…, %d) is %d px, want %d", tc.ask, got, tc.want)
		}
	}
	if !bytes.Equal(Tray("nonsense", "nonsense", 32), Tray(Idle, Light, 32)) {
		t.Error("an unknown state should fall back to idle on light")
	}
}

func TestApp(t *testing.T) {
	img, err := png.Decode(bytes.NewReader(App()))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 512 || img.Bounds().Dy() != 512 {
		t.Errorf("app icon is %v, want 512x512", img.Bounds())
	}
}
