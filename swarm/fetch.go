package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source is a peer that has the file.
type Source struct {
	Name string
	// Base is the URL its Server answers at, e.g. "http://127.0.0.1:PORT"
	// of a tunnel to it; it may dial.
	Base func(ctx context.Context) (string, error)
}

// Progress is how far a fetch got.
type Progress struct {
	Total, Completed int64
	// From names the sources that sent chunks so far.
	From []string
	// Peers is every source of the fetch, in the order given, with the
	// bytes of checked chunks it sent so far; what an earlier fetch left
	// is in Completed only.
	Peers []PeerSent
	// Dropped says which source was dropped and why, when one just was.
	Dropped string
}

// PeerSent is what one source sent.
type PeerSent struct {
	Name  string
	Bytes int64
}

// PartialPath is where a fetch of sha to dest is kept until it is whole.
func PartialPath(dest, sha string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+"."+short(sha)+".partial")
}

// maxTries bounds how often one source may fail on a chunk before it is
// dropped.
const maxTries = 3

// Fetch copies the file with sha256 sha and size bytes from sources into
// dest: chunks from every source at once, each checked against the
// manifest; a source that sends a wrong chunk, or keeps failing, is
// dropped and its chunks go to the others. What was fetched before is kept
// in a partial file and reused.
func Fetch(ctx context.Context, hc *http.Client, sources []Source, sha string, size int64, dest string, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if len(sources) == 0 {
		return errors.New("no peer has the file")
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	var whys []string
	for attempt := 0; attempt < 2 && len(sources) > 0; attempt++ {
		m, from, err := fetchManifest(ctx, hc, sources, sha, size)
		if err != nil {
			return err
		}
		err = fetchChunks(ctx, hc, sources, m, dest, progress)
		var bad *wrongFileError
		if !errors.As(err, &bad) {
			return err
		}
		// Chunks matched a manifest that does not match the file: the
		// manifest's source lied. Try once more without it.
		whys = append(whys, err.Error())
		sources = slices.DeleteFunc(sources, func(s Source) bool { return s.Name == from })
	}
	return fmt.Errorf("peers sent a wrong file: %s", strings.Join(whys, "; "))
}

type wrongFileError struct{ got string }

func (e *wrongFileError) Error() string { return "the copy has sha256 " + short(e.got) }

// fetchManifest gets the manifest from the first source that has a good
// one.
func fetchManifest(ctx context.Context, hc *http.Client, sources []Source, sha string, size int64) (Manifest, string, error) {
	var whys []string
	for _, s := range sources {
		m, err := getManifest(ctx, hc, s, sha)
		if err == nil {
			err = m.check(sha, size)
		}
		if err == nil {
			return m, s.Name, nil
		}
		if ctx.Err() != nil {
			return Manifest{}, "", ctx.Err()
		}
		whys = append(whys, s.Name+": "+err.Error())
	}
	return Manifest{}, "", fmt.Errorf("no peer gave the file's manifest: %s", strings.Join(whys, "; "))
}

func getManifest(ctx context.Context, hc *http.Client, s Source, sha string) (Manifest, error) {
	base, err := s.Base(ctx)
	if err != nil {
		return Manifest{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/files/"+sha+"/manifest", nil)
	if err != nil {
		return Manifest{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Manifest{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Manifest{}, fmt.Errorf("manifest: %s", resp.Status)
	}
	var m Manifest
	err = json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&m)
	return m, err
}

// fetchChunks fills the partial file from the sources and installs it.
func fetchChunks(ctx context.Context, hc *http.Client, sources []Source, m Manifest, dest string, progress func(Progress)) error {
	part := PartialPath(dest, m.SHA256)
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(m.Size); err != nil {
		return fmt.Errorf("making room for %d bytes: %w", m.Size, err)
	}
	// What an earlier fetch left: every chunk that already checks out.
	queue := make(chan int, len(m.Chunks))
	var done atomic.Int64
	for i := range m.Chunks {
		if ok, _ := chunkOK(f, m, i); ok {
			done.Add(chunkLen(m, i))
		} else {
			queue <- i
		}
	}
	remaining := atomic.Int64{}
	remaining.Store(int64(len(queue)))
	sent := make([]atomic.Int64, len(sources))

	var (
		mu       sync.Mutex
		from     []string
		dropped  []string
		last     time.Time
		allDone  = make(chan struct{})
		wg       sync.WaitGroup
		closeAll sync.Once
	)
	report := func(force bool, drop string) {
		mu.Lock()
		defer mu.Unlock()
		if !force && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		peers := make([]PeerSent, len(sources))
		for k, s := range sources {
			peers[k] = PeerSent{Name: s.Name, Bytes: sent[k].Load()}
		}
		progress(Progress{Total: m.Size, Completed: done.Load(), From: slices.Clone(from), Dropped: drop, Peers: peers})
	}
	report(true, "")
	if remaining.Load() == 0 {
		closeAll.Do(func() { close(allDone) })
	}
	for k, s := range sources {
		wg.Go(func() {
			fails := 0
			buf := make([]byte, m.Chunk)
			for {
				var i int
				select {
				case <-ctx.Done():
					return
				case <-allDone:
					return
				case i = <-queue:
				}
				n, err := getChunk(ctx, hc, s, m, i, buf)
				if err == nil {
					if sum := sha256.Sum256(buf[:n]); hex.EncodeToString(sum[:]) != m.Chunks[i] {
						queue <- i
						why := fmt.Sprintf("%s sent a wrong chunk %d: dropped", s.Name, i)
						mu.Lock()
						dropped = append(dropped, why)
						mu.Unlock()
						report(true, why)
						return
					}
					if _, err := f.WriteAt(buf[:n], int64(i)*m.Chunk); err != nil {
						queue <- i
						mu.Lock()
						dropped = append(dropped, "writing: "+err.Error())
						mu.Unlock()
						return
					}
					mu.Lock() // report sees done and sent agree
					done.Add(int64(n))
					sent[k].Add(int64(n))
					if !slices.Contains(from, s.Name) {
						from = append(from, s.Name)
					}
					mu.Unlock()
					report(false, "")
					if remaining.Add(-1) == 0 {
						closeAll.Do(func() { close(allDone) })
					}
					fails = 0
					continue
				}
				queue <- i
				if ctx.Err() != nil {
					return
				}
				if fails++; fails >= maxTries {
					why := fmt.Sprintf("%s failed %d times (%v): dropped", s.Name, fails, err)
					mu.Lock()
					dropped = append(dropped, why)
					mu.Unlock()
					report(true, why)
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(fails) * 200 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if remaining.Load() > 0 {
		return fmt.Errorf("no peer could send the rest (%d of %d bytes kept for a retry): %s",
			done.Load(), m.Size, strings.Join(dropped, "; "))
	}
	report(true, "")
	got, err := fileSHA(f)
	if err != nil {
		return err
	}
	if got != m.SHA256 {
		f.Close()
		os.Remove(part)
		return &wrongFileError{got: got}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(part, dest)
}

func chunkLen(m Manifest, i int) int64 {
	return min(m.Chunk, m.Size-int64(i)*m.Chunk)
}

// chunkOK says whether chunk i of the partial file is already right.
func chunkOK(f *os.File, m Manifest, i int) (bool, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, int64(i)*m.Chunk, chunkLen(m, i))); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == m.Chunks[i], nil
}

// getChunk reads chunk i from s into buf.
func getChunk(ctx context.Context, hc *http.Client, s Source, m Manifest, i int, buf []byte) (int, error) {
	base, err := s.Base(ctx)
	if err != nil {
		return 0, err
	}
	want := chunkLen(m, i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/files/"+m.SHA256, nil)
	if err != nil {
		return 0, err
	}
	start := int64(i) * m.Chunk
	req.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+want-1, 10))
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent && !(resp.StatusCode == http.StatusOK && want == m.Size) {
		return 0, fmt.Errorf("chunk %d: %s", i, resp.Status)
	}
	n, err := io.ReadFull(resp.Body, buf[:want])
	if err != nil {
		return 0, fmt.Errorf("chunk %d: %w", i, err)
	}
	return n, nil
}

func fileSHA(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
