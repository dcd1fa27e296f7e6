// Package download fetches large files over HTTP the way a careful
// downloader does: into a hidden partial file beside the destination that a
// later attempt resumes with a Range request, with the size and sha256
// checked before the file is renamed into place, retries with backoff after
// a cut, and progress reported as it goes. Model pulls and llama.cpp
// release archives both use it.
package download

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

// Progress is one step of a download, in the shape of Ollama's /api/pull.
type Progress struct {
	Status    string `json:"status"`
	Digest    string `json:"digest,omitempty"` // "sha256:HEX" of the file being fetched
	Total     int64  `json:"total,omitempty"`
	Completed int64  `json:"completed,omitempty"`
	// File is the file being fetched, as people name it.
	File string `json:"file,omitempty"`
	// From says where the bytes come from: "hub", "releases", or peers'
	// names.
	From string `json:"from,omitempty"`
	// Peers, for a file copied from peers, is every peer asked for it
	// and what each has sent so far, of Total.
	Peers []PeerBytes `json:"peers,omitempty"`
}

// PeerBytes is what one peer sent of a file copied from several.
type PeerBytes struct {
	Name      string `json:"name"`
	Completed int64  `json:"completed"`
}

// File is one file to fetch.
type File struct {
	Name   string // as people name it, for messages and progress
	URL    string
	Size   int64  // 0: unknown
	SHA256 string // hex; empty: not checked
}

// Options say how to talk to the server.
type Options struct {
	HTTP *http.Client // nil: one with sane timeouts
	// Prepare adds headers (a token, a User-Agent) to every request.
	Prepare func(*http.Request)
	// Refusal turns a response that is not 200 or 206 into the error a
	// person reads; nil: the status line.
	Refusal func(resp *http.Response, what string) error
	// Check, if set, looks at the first bytes of a new download (up to
	// 64) and refuses a file that is not what it should be: its error
	// ends the download without a retry.
	Check func(head []byte) error
	// From is Progress.From for the bytes this server sends.
	From string
	// Progress, if set, is called often.
	Progress func(Progress)
}

// ChecksumError is a download whose bytes do not have the sha256 that was
// published for it. The partial file is gone: it cannot be trusted.
type ChecksumError struct {
	File      string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: the download is corrupt (sha256 %s, want %s); it was deleted", e.File, Short(e.Got), Short(e.Want))
}

// Short is the first 12 digits of a hex digest, as messages show it.
func Short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// HTTPStatus is implemented by errors that carry the server's HTTP status,
// so that Download knows whether retrying can help.
type HTTPStatus interface{ HTTPStatus() int }

// PartialPath is where the download of f to dest is kept until it is
// complete and checked: beside dest, hidden, named by f's sha256 so that only
// the same file resumes it.
func PartialPath(dest string, f File) string {
	id := Short(f.SHA256)
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
// deleted and fetched once more. Cancelling ctx stops it and keeps the
// partial file for the next attempt.
func Download(ctx context.Context, f File, dest string, o Options) error {
	if o.Progress == nil {
		o.Progress = func(Progress) {}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	corrupt := 0
	for attempt, wait := 1, time.Second; ; attempt++ {
		err := fetch(ctx, f, dest, o)
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
			o.Progress(Progress{Status: "the download was corrupt: fetching it again", File: f.Name})
			continue
		case !retryable(err) || attempt >= maxAttempts:
			return err
		}
		o.Progress(Progress{Status: fmt.Sprintf("interrupted (%v): resuming", err), File: f.Name})
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
	var hs HTTPStatus
	if errors.As(err, &hs) {
		s := hs.HTTPStatus()
		return s >= 500 || s == http.StatusTooManyRequests
	}
	var de diskError
	var ce contentError
	return !errors.As(err, &de) && !errors.As(err, &ce)
}

// diskError is a failure to write the partial file: a full disk, no
// permission. Retrying cannot help.
type diskError struct{ err error }

func (e diskError) Error() string { return e.err.Error() }
func (e diskError) Unwrap() error { return e.err }

// contentError is a file that Options.Check refused.
type contentError struct{ err error }

func (e contentError) Error() string { return e.err.Error() }
func (e contentError) Unwrap() error { return e.err }

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) HTTPStatus() int { return e.status }

func writeFailure(part string, have int64, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return diskError{fmt.Errorf("the disk is full: free some space and try again; the %s downloaded so far are kept in %s and the download resumes from there", size.Format(uint64(have)), part)}
	}
	return diskError{fmt.Errorf("writing %s: %w", part, err)}
}

func (o Options) client() *http.Client {
	if o.HTTP != nil {
		return o.HTTP
	}
	return HTTPClient()
}

// HTTPClient is a client with sane timeouts for servers of large files:
// the default transport (proxies from the environment), and a minute at
// most to the first byte of an answer, however long the body takes.
func HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

func (o Options) refusal(resp *http.Response, what string) error {
	if o.Refusal != nil {
		return o.Refusal(resp, what)
	}
	return &statusError{resp.StatusCode, fmt.Sprintf("%s: %s answered %s", what, resp.Request.URL.Host, resp.Status)}
}

// fetch makes one attempt at f: it resumes the partial file, appends what
// the server sends, and installs the file once it is whole and checked.
func fetch(ctx context.Context, f File, dest string, o Options) error {
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
	status := "pulling " + Short(f.SHA256)
	if f.SHA256 == "" {
		status = "pulling " + filepath.Base(f.Name)
	}
	report := func(done int64) {
		o.Progress(Progress{Status: status, Digest: digest, Total: f.Size, Completed: done, File: f.Name, From: o.From})
	}

	if f.Size == 0 || have < f.Size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
		if err != nil {
			return err
		}
		if o.Prepare != nil {
			o.Prepare(req)
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := o.client().Do(req)
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
			return fmt.Errorf("%s: the server refused to resume at byte %d: starting over", f.Name, have)
		default:
			return o.refusal(resp, "file "+f.Name)
		}
		body := bufio.NewReaderSize(resp.Body, 1<<20)
		if have == 0 && o.Check != nil {
			head, err := body.Peek(64)
			if len(head) == 0 || (err != nil && err != io.EOF && err != bufio.ErrBufferFull) {
				return fmt.Errorf("%s: %w", f.Name, cmpErr(err, io.ErrUnexpectedEOF))
			}
			if err := o.Check(head); err != nil {
				out.Close()
				os.Remove(part)
				return contentError{fmt.Errorf("%s: %w", f.Name, err)}
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
				return fmt.Errorf("%s: cut after %s: %w", f.Name, size.Format(uint64(have)), rerr)
			}
		}
		report(have)
	}
	if f.Size > 0 && have != f.Size {
		if have > f.Size {
			_ = restart(out, h)
		}
		return fmt.Errorf("%s: got %d of %d bytes", f.Name, have, f.Size)
	}
	o.Progress(Progress{Status: "verifying sha256 digest", Digest: digest, File: f.Name, From: o.From})
	got := hex.EncodeToString(h.Sum(nil))
	if f.SHA256 != "" && got != f.SHA256 {
		out.Close()
		os.Remove(part)
		return &ChecksumError{File: f.Name, Want: f.SHA256, Got: got}
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
	return io.Copy(h, f)
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
