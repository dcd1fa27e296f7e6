package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/potluck-gpu/potluck/internal/download"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Client talks to one hub.
type Client struct {
	Endpoint string       // e.g. DefaultEndpoint; no trailing slash
	Token    string       // HF_TOKEN, for gated and private repositories
	HTTP     *http.Client // nil: a client with sane timeouts
	Agent    string       // User-Agent
}

// NewClient returns a client for endpoint (empty: DefaultEndpoint).
func NewClient(endpoint, token, agent string) *Client {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	return &Client{Endpoint: strings.TrimRight(endpoint, "/"), Token: token, Agent: agent}
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return download.HTTPClient()
}

// RemoteFile is one file of a model on the hub.
type RemoteFile struct {
	Repo   string `json:"repo"`
	Path   string `json:"path"` // in the repository
	Rev    string `json:"rev"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex; the hub publishes one for every large file
	URL    string `json:"url"`    // where to download it
}

// Name is the file as people write it: OWNER/REPO/PATH.
func (f RemoteFile) Name() string { return f.Repo + "/" + f.Path }

// HTTPError is a hub's refusal, with what to do about it.
type HTTPError struct {
	Status int
	Msg    string
}

func (e *HTTPError) Error() string { return e.Msg }

// NotFound says whether the hub has no such repository or file.
func (e *HTTPError) NotFound() bool { return e.Status == http.StatusNotFound }

// NotFound says whether err is the hub saying a repository or file does not
// exist.
func NotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusNotFound
}

func (c *Client) refusal(resp *http.Response, what string) error {
	host := c.Endpoint
	if u, err := url.Parse(c.Endpoint); err == nil {
		host = u.Host
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: not found on %s (404): check the spelling, or that it is public", what, host)}
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := "accept its terms on the hub, then set HF_TOKEN to an access token"
		if c.Token != "" {
			hint = "HF_TOKEN was sent: check that it is valid and that its account accepted the repository's terms"
		}
		return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: %s refused it (%d, gated or private): %s", what, host, resp.StatusCode, hint)}
	case http.StatusTooManyRequests:
		return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: %s says too many requests (429): wait a minute and pull again", what, host)}
	}
	return &HTTPError{resp.StatusCode, fmt.Sprintf("%s: %s answered %s", what, host, resp.Status)}
}

func (c *Client) request(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	c.prepare(req)
	return req, nil
}

// prepare adds the token and the User-Agent to a request for the hub.
func (c *Client) prepare(req *http.Request) {
	if c.Token != "" {
		// Sent to the hub only: Go drops it on a redirect to another host.
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Agent != "" {
		req.Header.Set("User-Agent", c.Agent)
	}
}

// Resolve turns a reference into the files to download: the one named, or
// those of the quantization asked for (several for a split model).
func (c *Client) Resolve(ctx context.Context, ref Ref) ([]RemoteFile, error) {
	files := []string{ref.File}
	if ref.File == "" {
		list, err := c.listFiles(ctx, ref)
		if err != nil {
			return nil, err
		}
		if files, err = pickQuant(ref, list); err != nil {
			return nil, err
		}
	}
	var out []RemoteFile
	for _, f := range files {
		rf, err := c.stat(ctx, ref, f)
		if err != nil {
			return nil, err
		}
		out = append(out, rf)
	}
	return out, nil
}

// listFiles lists a repository's files from /api/models/REPO.
func (c *Client) listFiles(ctx context.Context, ref Ref) ([]string, error) {
	u := c.Endpoint + "/api/models/" + ref.Repo
	if ref.Rev != "" && ref.Rev != "main" {
		u += "/revision/" + url.PathEscape(ref.Rev)
	}
	req, err := c.request(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("hf.co/%s: %w", ref.Repo, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.refusal(resp, "repository "+ref.Repo)
	}
	var info struct {
		Siblings []struct {
			Name string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("repository %s: unreadable file list: %w", ref.Repo, err)
	}
	var out []string
	for _, s := range info.Siblings {
		out = append(out, s.Name)
	}
	return out, nil
}

// pickQuant chooses the GGUF files of ref's quantization: a whole word of
// the file name, the shallowest path first; all shards of a split model.
func pickQuant(ref Ref, list []string) ([]string, error) {
	quant := cmp.Or(ref.Quant, DefaultQuant)
	var ggufs, matches []string
	for _, f := range list {
		lower := strings.ToLower(path.Base(f))
		if !strings.HasSuffix(lower, ".gguf") || strings.Contains(lower, "mmproj") {
			continue
		}
		ggufs = append(ggufs, f)
		if QuantMatches(path.Base(f), quant) {
			matches = append(matches, f)
		}
	}
	if len(ggufs) == 0 {
		return nil, &HTTPError{http.StatusNotFound, fmt.Sprintf("repository %s has no GGUF files: Potluck runs GGUF models; look for a repository of GGUF conversions", ref.Repo)}
	}
	if len(matches) == 0 {
		if ref.Quant == "" && len(ggufs) == 1 {
			return ggufs, nil // one file: take it, whatever its quantization
		}
		return nil, &HTTPError{http.StatusNotFound, fmt.Sprintf("repository %s has no %s file (404); it has: %s", ref.Repo, quant, strings.Join(quantsOf(ggufs), ", "))}
	}
	slices.SortStableFunc(matches, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(a, "/"), strings.Count(b, "/")), cmp.Compare(a, b))
	})
	first := matches[0]
	if m := splitShard.FindStringSubmatch(path.Base(first)); m != nil {
		var shards []string
		prefix := path.Join(path.Dir(first), m[1]) + "-"
		for _, f := range matches {
			if strings.HasPrefix(f, prefix) && splitShard.MatchString(path.Base(f)) {
				shards = append(shards, f)
			}
		}
		slices.Sort(shards)
		n, _ := strconv.Atoi(m[3])
		if len(shards) != n {
			return nil, fmt.Errorf("repository %s: split model %s lists %d of its %d files", ref.Repo, m[1], len(shards), n)
		}
		return shards, nil
	}
	return []string{first}, nil
}

// quantsOf names the quantizations among GGUF file names, for a hint.
func quantsOf(files []string) []string {
	var out []string
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), path.Ext(f))
		if m := splitShard.FindStringSubmatch(path.Base(f)); m != nil {
			name = m[1]
		}
		q := name
		if i := strings.LastIndexAny(name, "-."); i >= 0 {
			q = name[i+1:]
		}
		if !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// stat asks the hub for a file's size and sha256 without downloading it:
// a HEAD on its resolve URL, not following the redirect to the storage,
// carries X-Linked-Size and X-Linked-Etag for large files.
func (c *Client) stat(ctx context.Context, ref Ref, file string) (RemoteFile, error) {
	rf := RemoteFile{Repo: ref.Repo, Path: file, Rev: ref.Rev}
	rf.URL = c.Endpoint + "/" + ref.Repo + "/resolve/" + url.PathEscape(ref.Rev) + "/" + escapePath(file)
	req, err := c.request(ctx, http.MethodHead, rf.URL)
	if err != nil {
		return rf, err
	}
	hc := *c.http()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return rf, fmt.Errorf("%s: %w", rf.Name(), err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := req.URL.Parse(loc); err == nil && !sameFile(u, req.URL) {
				// A renamed repository redirects to its new name:
				// follow that one, not the storage's signed URL.
				if strings.HasPrefix(u.String(), c.Endpoint+"/") && strings.Contains(u.Path, "/resolve/") {
					rf.URL = u.String()
				}
			}
		}
	case resp.StatusCode != http.StatusOK:
		return rf, c.refusal(resp, "file "+rf.Name()+" at "+ref.Rev)
	}
	rf.SHA256 = etagHex(resp.Header.Get("X-Linked-Etag"))
	if rf.SHA256 == "" {
		rf.SHA256 = etagHex(resp.Header.Get("ETag"))
	}
	size := resp.Header.Get("X-Linked-Size")
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	rf.Size, _ = strconv.ParseInt(size, 10, 64)
	return rf, nil
}

func sameFile(a, b *url.URL) bool { return a.Host == b.Host && a.Path == b.Path }

// etagHex is the sha256 in an ETag, if it is one (an LFS file's is).
func etagHex(etag string) string {
	etag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`)
	etag = strings.ToLower(etag)
	if len(etag) != 64 {
		return ""
	}
	for _, c := range etag {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return etag
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}
