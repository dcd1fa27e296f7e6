//go:build ignore

// Gen draws Potluck's icons: a cooking pot with a lid, plus a coloured dot
// for the tray states, and the app icon on a warm rounded square.
//
//	go generate ./icons
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

// shape is a signed distance function on the unit square: negative inside.
type shape func(x, y float64) float64

func roundRect(x0, y0, x1, y1, r float64) shape {
	cx, cy := (x0+x1)/2, (y0+y1)/2
	hx, hy := (x1-x0)/2-r, (y1-y0)/2-r
	return func(x, y float64) float64 {
		dx := math.Abs(x-cx) - hx
		dy := math.Abs(y-cy) - hy
		out := math.Hypot(math.Max(dx, 0), math.Max(dy, 0))
		return out + math.Min(math.Max(dx, dy), 0) - r
	}
}

func circle(cx, cy, r float64) shape {
	return func(x, y float64) float64 { return math.Hypot(x-cx, y-cy) - r }
}

// dome is the upper half of an ellipse whose flat side lies at y = base.
func dome(cx, base, rx, ry float64) shape {
	return func(x, y float64) float64 {
		e := math.Hypot((x-cx)/rx, (y-base)/ry) - 1
		d := e * math.Min(rx, ry)
		return math.Max(d, y-base)
	}
}

// body is the pot: straight sides, a rounded bottom.
func body(x0, y0, x1, y1, r float64) shape {
	top := roundRect(x0, y0, x1, y1, 0.02)
	bottom := roundRect(x0, y0-r, x1, y1, r)
	return func(x, y float64) float64 { return math.Max(top(x, y), bottom(x, y)) }
}

func union(ss ...shape) shape {
	return func(x, y float64) float64 {
		d := math.Inf(1)
		for _, s := range ss {
			d = math.Min(d, s(x, y))
		}
		return d
	}
}

func pot() shape {
	return union(
		body(0.17, 0.45, 0.83, 0.86, 0.16),
		roundRect(0.09, 0.40, 0.91, 0.48, 0.035),
		roundRect(0.03, 0.50, 0.20, 0.58, 0.035),
		roundRect(0.80, 0.50, 0.97, 0.58, 0.035),
		dome(0.5, 0.365, 0.33, 0.17),
		circle(0.5, 0.17, 0.055),
	)
}

type layer struct {
	s   shape
	col color.NRGBA
}

// render paints layers in order, 4x4 supersampled; a layer with a zero
// colour erases what is under it.
func render(size int, layers []layer) *image.NRGBA {
	const ss = 4
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) / float64(size)
					y := (float64(py) + (float64(sy)+0.5)/ss) / float64(size)
					var cr, cg, cb, ca float64
					for _, l := range layers {
						if l.s(x, y) > 0 {
							continue
						}
						cr, cg, cb, ca = float64(l.col.R), float64(l.col.G), float64(l.col.B), float64(l.col.A)
					}
					r += cr * ca
					g += cg * ca
					b += cb * ca
					a += ca
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(r / a), G: uint8(g / a), B: uint8(b / a), A: uint8(a / (ss * ss)),
			})
		}
	}
	return img
}

func save(name string, img image.Image) {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func main() {
	glyphs := map[string]color.NRGBA{
		"light": {0x2b, 0x2b, 0x2b, 0xff}, // for light panels
		"dark":  {0xf2, 0xf2, 0xf2, 0xff}, // for dark panels
	}
	dots := map[string]color.NRGBA{
		"idle":    {},
		"sharing": {0x2e, 0xb8, 0x72, 0xff},
		"busy":    {0x3b, 0x82, 0xf6, 0xff},
		"error":   {0xe5, 0x48, 0x4d, 0xff},
	}
	erase := color.NRGBA{}
	for variant, glyph := range glyphs {
		for state, dot := range dots {
			layers := []layer{{pot(), glyph}}
			if dot.A != 0 {
				layers = append(layers,
					layer{circle(0.77, 0.77, 0.25), erase},
					layer{circle(0.77, 0.77, 0.19), dot})
			}
			for _, size := range []int{22, 32, 44, 64} {
				save(fmt.Sprintf("tray-%s-%s-%d.png", state, variant, size), render(size, layers))
			}
		}
	}

	// The app icon: a white pot on an orange rounded square.
	bg := roundRect(0.04, 0.04, 0.96, 0.96, 0.2)
	inner := func(x, y float64) float64 { return pot()((x-0.18)/0.64, (y-0.16)/0.64) * 0.64 }
	save("app.png", render(512, []layer{
		{bg, color.NRGBA{0xee, 0x7a, 0x24, 0xff}},
		{inner, color.NRGBA{0xff, 0xfb, 0xf5, 0xff}},
	}))
}
