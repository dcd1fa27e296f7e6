package hub

import (
	"context"
	"errors"

	"github.com/potluck-gpu/potluck/internal/download"
)

// Progress is one step of a pull, in the shape of Ollama's /api/pull.
type Progress = download.Progress

// PeerBytes is what one peer sent of a file copied from several.
type PeerBytes = download.PeerBytes

// ChecksumError is a download whose bytes do not have the sha256 the hub
// published. The partial file is gone: it cannot be trusted.
type ChecksumError = download.ChecksumError

func short(h string) string { return download.Short(h) }

// ErrNotGGUF is a file whose first bytes are not GGUF's magic.
var ErrNotGGUF = errors.New("not a GGUF file (its first bytes are not \"GGUF\"): Potluck runs GGUF models only")

func (f RemoteFile) file() download.File {
	return download.File{Name: f.Name(), URL: f.URL, Size: f.Size, SHA256: f.SHA256}
}

// PartialPath is where the download of f to dest is kept until it is
// complete and checked: beside dest, hidden, named by f's sha256 so that only
// the same file resumes it.
func PartialPath(dest string, f RemoteFile) string { return download.PartialPath(dest, f.file()) }

// Download fetches f to dest, resuming a partial download left by an
// earlier attempt, and checks its size and sha256 before renaming it into
// place. A cut connection resumes where it stopped; a corrupt download is
// deleted and fetched once more. progress, if not nil, is called often.
func (c *Client) Download(ctx context.Context, f RemoteFile, dest string, progress func(Progress)) error {
	return download.Download(ctx, f.file(), dest, download.Options{
		HTTP:     c.http(),
		Prepare:  c.prepare,
		Refusal:  c.refusal,
		Check:    checkGGUF,
		From:     "hub",
		Progress: progress,
	})
}

func checkGGUF(head []byte) error {
	if len(head) < 4 || string(head[:4]) != "GGUF" {
		return ErrNotGGUF
	}
	return nil
}

// HTTPStatus lets the downloader tell a hub's refusal that may pass (a 5xx,
// a 429) from one that will not.
func (e *HTTPError) HTTPStatus() int { return e.Status }

var _ download.HTTPStatus = (*HTTPError)(nil)
