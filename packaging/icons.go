package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"os"

	"golang.org/x/image/draw"
)

// hicolorSizes are the icon sizes installed under share/icons/hicolor.
var hicolorSizes = []int{16, 22, 24, 32, 48, 64, 128, 256, 512}

// icoSizes are the images in the Windows .ico, smallest first.
var icoSizes = []int{16, 24, 32, 48, 64, 128, 256}

// loadPNG decodes a PNG file.
func loadPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// scaled returns src resized to size x size with Catmull-Rom filtering.
func scaled(src image.Image, size int) *image.NRGBA {
	dst := image.NewNRGBA(image.Rect(0, 0, size, size))
	if src.Bounds().Dx() == size && src.Bounds().Dy() == size {
		draw.Copy(dst, image.Point{}, src, src.Bounds(), draw.Src, nil)
		return dst
	}
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	return dst
}

// encodePNG encodes img with the best compression.
func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeICO writes a Windows icon holding src at each of sizes: PNG from
// 64 pixels up (smaller files; Windows Vista and later read them), 32-bit
// DIBs below, which every reader knows.
func encodeICO(src image.Image, sizes []int) ([]byte, error) {
	images := make([][]byte, len(sizes))
	for i, s := range sizes {
		img := scaled(src, s)
		var err error
		if s >= 64 {
			images[i], err = encodePNG(img)
		} else {
			images[i] = dib(img)
		}
		if err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { _ = binary.Write(&b, le, v) }
	w(uint16(0))          // reserved
	w(uint16(1))          // type: icon
	w(uint16(len(sizes))) // count
	offset := 6 + 16*len(sizes)
	for i, s := range sizes {
		dim := uint8(s)
		if s >= 256 {
			dim = 0
		}
		w(dim)      // width
		w(dim)      // height
		w(uint8(0)) // palette size
		w(uint8(0)) // reserved
		w(uint16(1))
		w(uint16(32))
		w(uint32(len(images[i])))
		w(uint32(offset))
		offset += len(images[i])
	}
	for _, img := range images {
		b.Write(img)
	}
	return b.Bytes(), nil
}

// dib is img as an icon bitmap: a BITMAPINFOHEADER of twice the height, the
// BGRA rows bottom-up, then an all-zero AND mask (alpha does the masking).
func dib(img *image.NRGBA) []byte {
	size := img.Bounds().Dx()
	maskRow := ((size + 31) / 32) * 4
	var b bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { _ = binary.Write(&b, le, v) }
	w(uint32(40))
	w(int32(size))
	w(int32(2 * size))
	w(uint16(1))  // planes
	w(uint16(32)) // bits per pixel
	w(uint32(0))  // BI_RGB
	w(uint32(size*size*4 + maskRow*size))
	w(int32(0))
	w(int32(0))
	w(uint32(0))
	w(uint32(0))
	for y := size - 1; y >= 0; y-- {
		for x := 0; x < size; x++ {
			c := img.NRGBAAt(x, y)
			b.Write([]byte{c.B, c.G, c.R, c.A})
		}
	}
	b.Write(make([]byte, maskRow*size))
	return b.Bytes()
}
