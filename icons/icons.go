// Package icons holds Potluck's tray and app icons as embedded PNGs: a
// cooking pot, with a coloured dot for the tray states (none when idle, green
// while sharing, blue while busy, red on an error), in a dark glyph for light
// panels and a light glyph for dark ones, at the usual tray sizes. gen.go
// draws them.
package icons

import (
	"embed"
	"fmt"
)

//go:generate go run gen.go

//go:embed app.png tray-*.png
var files embed.FS

// State is what the tray icon says about the node.
type State string

const (
	Idle    State = "idle"    // in no mesh, or not sharing
	Sharing State = "sharing" // offering memory or serving, nothing running
	Busy    State = "busy"    // joining, or requests in flight
	Error   State = "error"   // something needs attention
)

// States lists every State.
var States = []State{Idle, Sharing, Busy, Error}

// Variant is the panel the icon sits on.
type Variant string

const (
	Light Variant = "light" // a dark glyph for light panels
	Dark  Variant = "dark"  // a light glyph for dark panels
)

// Sizes are the pixel sizes of the tray icons, smallest first.
var Sizes = []int{22, 32, 44, 64}

// Tray returns the PNG of the tray icon for s on v, in the smallest size
// that is at least size pixels (the largest when none is). An unknown
// state or variant falls back to Idle on Light.
func Tray(s State, v Variant, size int) []byte {
	px := Sizes[len(Sizes)-1]
	for _, sz := range Sizes {
		if sz >= size {
			px = sz
			break
		}
	}
	if b, err := files.ReadFile(fmt.Sprintf("tray-%s-%s-%d.png", s, v, px)); err == nil {
		return b
	}
	b, _ := files.ReadFile(fmt.Sprintf("tray-%s-%s-%d.png", Idle, Light, px))
	return b
}

// TrayName is a file name for the tray icon Tray returns, for toolkits that
// cache images by name.
func TrayName(s State, v Variant, size int) string {
	return fmt.Sprintf("potluck-%s-%s-%d.png", s, v, size)
}

// App returns the 512-pixel PNG app icon.
func App() []byte {
	b, _ := files.ReadFile("app.png")
	return b
}
