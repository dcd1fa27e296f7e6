package hub

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/internal/size"
)

// Progress is one step of a pull, in the shape of Ollama's /api/pull.
type Progress struct {
	Status    string `json:"status"`
	Digest    string `json:"digest,omitempty"` // "sha256:HEX" of the file being fetched
	Total     int64  `json:"total,omitempty"`
	Completed int64  `json:"completed,omitempty"`
	// File is the file being fetched: OWNER/REPO/PATH.
	File string `json:"file,omitempty"`
	// From says where the bytes come from: "hub", or peers' names.
	From string `json:"from,omitempty"`
}

// ChecksumError is a download whose bytes do not have the sha256 the hub
// published. The partial file is gone: it cannot be trusted.
type ChecksumError struct {
	File      string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: the download is corrupt (sha256 %s, want %s); it was deleted", e.File, short(e.Got), short(e.Want))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// ErrNotGGUF is a file whose first bytes are not GGUF's magic.
var ErrNotGGUF = errors.New("not a GGUF file (its first bytes are not \"GGUF\"): Potluck runs GGUF models only")

// PartialPath is where the download of f to dest is kept until it is
// complete and checked: beside dest, hidden, named by f's sha256 so that only
// the same file resumes it.
func PartialPath(dest string, f RemoteFile) string {
	id := short(f.SHA256)
	if id == "" {
		id = strconv.FormatInt(f.Size, 10)
	}
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+"."+id+".partial")
}

// maxAttempts bounds how often one file's download resumes after a cut.
const maxAttempts = 6

// Download fetches f to dest, resuming a partial download left by an
// earlier attempt, and checks its size and sha256 before renaming it into
// place. A cut connection resumes where it stopped; a corrupt download is
// deleted and fetched once more. progress, if not nil, is called often.
func (c *Client) Download(ctx context.Context, f RemoteFile, dest string, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	corrupt := 0
	for attempt, wait := 1, time.Second; ; attempt++ {
		err := c.fetch(ctx, f, dest, progress)
		var ce *ChecksumError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ce):
			if corrupt++; corrupt > 1 {
				return err
			}
			progress(Progress{Status: "the download was corrupt: fetching it again", File: f.Name()})
			continue
		case !retryable(err) || attempt >= maxAttempts:
			return err
		}
		progress(Progress{Status: fmt.Sprintf("interrupted (%v): resuming", err), File: f.Name()})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// retryable says whether a failed fetch may succeed when resumed.
func retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusTooManyRequests
	}
	var de diskError
	return !errors.As(err, &de) && !errors.Is(err, ErrNotGGUF)
}

// diskError is a failure to write the partial file: a full disk, no
// permission. Retrying cannot help.
type diskError struct{ err error }

func (e diskError) Error() string { return e.err.Error() }
func (e diskError) Unwrap() error { return e.err }

func writeFailure(part string, have int64, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return diskError{fmt.Errorf("the disk is full: free some space and pull again; the %s downloaded so far are kept in %s and the pull resumes from there", size.Format(uint64(have)), part)}
	}
	return diskError{fmt.Errorf("writing %s: %w", part, err)}
}

// fetch makes one attempt at f: it resumes the partial file, appends what
// the hub sends, and installs the file once it is whole and checked.
func (c *Client) fetch(ctx context.Context, f RemoteFile, dest string, progress func(Progress)) error {
	part := PartialPath(dest, f)
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return diskError{err}
	}
	defer out.Close()
	h := sha256.New()
	have, err := resumeHash(out, h, f.Size)
	if err != nil {
		return diskError{err}
	}
	digest := ""
	if f.SHA256 != "" {
		digest = "sha256:" + f.SHA256
	}
	status := "pulling " + short(f.SHA256)
	if f.SHA256 == "" {
		status = "pulling " + filepath.Base(f.Path)
	}
	report := func(done int64) {
		progress(Progress{Status: status, Digest: digest, Total: f.Size, Completed: done, File: f.Name(), From: "hub"})
	}

	if f.Size == 0 || have < f.Size {
		req, err := c.request(ctx, http.MethodGet, f.URL)
		if err != nil {
			return err
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := c.http().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0:
		case resp.StatusCode == http.StatusOK:
			if have > 0 { // the server ignored the range: start over
				if err := restart(out, h); err != nil {
					return diskError{err}
				}
				have = 0
			}
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
			if err := restart(out, h); err != nil {
				return diskError{err}
			}
			return fmt.Errorf("%s: the hub refused to resume at byte %d: starting over", f.Name(), have)
		default:
			return c.refusal(resp, "file "+f.Name())
		}
		body := bufio.NewReaderSize(resp.Body, 1<<20)
		if have == 0 {
			magic, err := body.Peek(4)
			if err != nil && len(magic) < 4 {
				return fmt.Errorf("%s: %w", f.Name(), cmpErr(err, io.ErrUnexpectedEOF))
			}
			if string(magic) != "GGUF" {
				os.Remove(part)
				return fmt.Errorf("%s: %w", f.Name(), ErrNotGGUF)
			}
		}
		report(have)
		last := time.Now()
		buf := make([]byte, 1<<20)
		for {
			n, rerr := body.Read(buf)
			if n > 0 {
				if _, err := out.Write(buf[:n]); err != nil {
					return writeFailure(part, have, err)
				}
				h.Write(buf[:n])
				have += int64(n)
				if time.Since(last) >= 100*time.Millisecond {
					report(have)
					last = time.Now()
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				report(have)
				return fmt.Errorf("%s: cut after %s: %w", f.Name(), size.Format(uint64(have)), rerr)
			}
		}
		report(have)
	}
	if f.Size > 0 && have != f.Size {
		if have > f.Size {
			_ = restart(out, h)
		}
		return fmt.Errorf("%s: got %d of %d bytes", f.Name(), have, f.Size)
	}
	progress(Progress{Status: "verifying sha256 digest", Digest: digest, File: f.Name()})
	got := hex.EncodeToString(h.Sum(nil))
	if f.SHA256 != "" && got != f.SHA256 {
		out.Close()
		os.Remove(part)
		return &ChecksumError{File: f.Name(), Want: f.SHA256, Got: got}
	}
	if err := out.Sync(); err != nil {
		return writeFailure(part, have, err)
	}
	if err := out.Close(); err != nil {
		return writeFailure(part, have, err)
	}
	if err := os.Rename(part, dest); err != nil {
		return diskError{err}
	}
	return nil
}

func cmpErr(err, def error) error {
	if err == nil || err == io.EOF {
		return def
	}
	return err
}

// resumeHash feeds what the partial file holds to h and leaves the file's
// offset at its end. A partial longer than the file can be is discarded.
func resumeHash(f *os.File, h hash.Hash, size int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if size > 0 && fi.Size() > size {
		return 0, restart(f, h)
	}
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// restart empties the partial file.
func restart(f *os.File, h hash.Hash) error {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}
