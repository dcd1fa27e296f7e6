package hub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Dest is where f is kept in a store: STORE/OWNER/REPO/PATH.
func Dest(store string, f RemoteFile) (string, error) {
	rel := filepath.FromSlash(f.Repo + "/" + f.Path)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s: not a plain path in its repository", f.Name())
	}
	return filepath.Join(store, rel), nil
}

// Pull resolves ref and downloads its files into store, skipping those
// already there whole. It returns the files, the first shard first, and
// where they are.
func (c *Client) Pull(ctx context.Context, ref Ref, store string, progress func(Progress)) ([]RemoteFile, []string, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	progress(Progress{Status: "pulling manifest", File: ref.String()})
	files, err := c.Resolve(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	var paths []string
	for _, f := range files {
		dest, err := Dest(store, f)
		if err != nil {
			return nil, nil, err
		}
		if fi, err := os.Stat(dest); err == nil && f.Size > 0 && fi.Size() == f.Size {
			progress(Progress{Status: "pulling " + short(f.SHA256), Digest: digestOf(f), Total: f.Size, Completed: f.Size, File: f.Name(), From: "here"})
		} else if err := c.Download(ctx, f, dest, progress); err != nil {
			return nil, nil, err
		}
		paths = append(paths, dest)
	}
	return files, paths, nil
}

func digestOf(f RemoteFile) string {
	if f.SHA256 == "" {
		return ""
	}
	return "sha256:" + f.SHA256
}
