package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
)

// tarNames lists a .tar.gz: each entry's name, and "name -> target" for links.
func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeSymlink {
			names[h.Name+" -> "+h.Linkname] = true
		} else {
			names[h.Name] = true
		}
	}
}
