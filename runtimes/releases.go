package runtimes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/potluck-gpu/potluck/internal/download"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultReleases is the releases API of llama.cpp's repository. A mirror
// with the same API shape (POTLUCK_LLAMA_RELEASES, --releases) replaces it.
const DefaultReleases = "https://api.github.com/repos/ggml-org/llama.cpp"

// Release is one release as the releases API describes it.
type Release struct {
	Tag    string  `json:"tag_name"`
	Assets []Asset `json:"assets"`
}

// Asset is one archive of a release.
type Asset struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Digest is the API's checksum of the asset, "sha256:HEX". The
	// releases publish no checksum file; this is what Potluck checks.
	Digest string `json:"digest"`
	URL    string `json:"browser_download_url"`
}

// SHA256 returns the asset's sha256 in hex, or "" when the API gave none
// that Potluck can check.
func (a Asset) SHA256() string {
	h, ok := strings.CutPrefix(a.Digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
		return ""
	}
	return strings.ToLower(h)
}

// Client reads a releases API.
type Client struct {
	Base  string       // e.g. DefaultReleases; no trailing slash
	HTTP  *http.Client // nil: one with sane timeouts
	Agent string       // User-Agent
}

// NewClient returns a client of the releases API at base (empty:
// DefaultReleases). It must be HTTPS, or plain HTTP on this machine's
// loopback (a local mirror): the digests it gives are what every archive is
// checked against.
func NewClient(base, agent string) (*Client, error) {
	if base == "" {
		base = DefaultReleases
	}
	base = strings.TrimRight(base, "/")
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("releases URL %q: want the https:// URL of a releases API, such as %s", base, DefaultReleases)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("releases URL %q: the archives' checksums come from it, so it must be https:// (plain http:// only on this machine's loopback)", base)
	}
	return &Client{Base: base, Agent: agent}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return download.HTTPClient()
}

func (c *Client) prepare(req *http.Request) {
	if c.Agent != "" {
		req.Header.Set("User-Agent", c.Agent)
	}
}

// Release reads the release of version: GET BASE/releases/tags/TAG.
func (c *Client) Release(ctx context.Context, version string) (Release, error) {
	tag := Tag(version)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/releases/tags/"+url.PathEscape(tag), nil)
	if err != nil {
		return Release{}, err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	c.prepare(req)
	resp, err := c.http().Do(req)
	if err != nil {
		return Release{}, &UnreachableError{Base: c.Base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Release{}, c.refusal(resp, "llama.cpp release "+tag)
	}
	var r Release
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&r); err != nil {
		return Release{}, fmt.Errorf("llama.cpp release %s: %s sent an unreadable answer: %w", tag, c.host(), err)
	}
	if r.Tag != "" && r.Tag != tag {
		return Release{}, fmt.Errorf("llama.cpp release %s: %s answered with release %s", tag, c.host(), r.Tag)
	}
	return r, nil
}

func (c *Client) host() string {
	if u, err := url.Parse(c.Base); err == nil {
		return u.Host
	}
	return c.Base
}

// HTTPError is a refusal by the releases service or its download host.
type HTTPError struct {
	Status int
	Msg    string
}

func (e *HTTPError) Error() string   { return e.Msg }
func (e *HTTPError) HTTPStatus() int { return e.Status }

func (c *Client) refusal(resp *http.Response, what string) error {
	host := resp.Request.URL.Host
	switch resp.StatusCode {
	case http.StatusNotFound:
		return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: not found on %s (404)", what, host)}
	case http.StatusForbidden, http.StatusTooManyRequests:
		return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: %s refused (%s), most likely its limit of requests from this address: wait an hour, or set POTLUCK_LLAMA_RELEASES to a mirror", what, host, resp.Status)}
	}
	return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: %s answered %s", what, host, resp.Status)}
}

// UnreachableError is a releases service that could not be reached at all:
// no network, a proxy needed, a name that does not resolve.
type UnreachableError struct {
	Base string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s (%v): behind a proxy, set HTTPS_PROXY; without internet access, point POTLUCK_LLAMA_RELEASES at a mirror, or unpack llama.cpp into a folder and set POTLUCK_LLAMA_DIR to it", e.Base, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NotFound says whether err is the service saying there is no such release
// or asset.
func NotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusNotFound
}
