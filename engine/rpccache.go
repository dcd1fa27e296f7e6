package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	gguf "github.com/gpustack/gguf-parser-go"
)

// RPCHashThreshold is the size above which llama.cpp's RPC client sends a
// tensor's hash first (HASH_THRESHOLD in ggml-rpc.cpp, 10 MiB): a worker
// whose cache holds the tensor loads it from there, and the bytes never
// cross the network.
const RPCHashThreshold = 10 << 20

// RPCCacheDir is where rpc-server keeps its tensor cache when it runs with
// --cache and XDG_CACHE_HOME=base, as WorkerSupervisorSpec starts it.
func RPCCacheDir(base string) string { return filepath.Join(base, "llama.cpp", "rpc") }

// SeedStats is what SeedRPCCache did.
type SeedStats struct {
	Tensors int   // tensors the cache now holds for the model
	Written int64 // bytes written (tensors that were not there yet)
	Skipped int64 // bytes of tensors already there
}

// SeedRPCCache puts into dir every tensor of the GGUF file at path (one
// shard of a split model) that llama.cpp's RPC client sends as a hash: its
// bytes, in a file named by their 64-bit FNV-1a hash as 16 hex digits, the
// way rpc-server names what it caches. A head that then loads the model
// onto this worker sends hashes instead of those weights. The input
// embeddings are left out: they stay with the head.
func SeedRPCCache(ctx context.Context, path, dir string) (SeedStats, error) {
	var st SeedStats
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return st, err
	}
	err := seedFile(ctx, path, dir, &st)
	return st, err
}

func seedFile(ctx context.Context, path, dir string, st *SeedStats) error {
	if err := vetFile(path); err != nil {
		return err
	}
	gf, err := gguf.ParseGGUFFile(path, gguf.SkipLargeMetadata())
	if err != nil {
		return ggufError(path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	base := gf.TensorDataStartOffset
	for _, ti := range gf.TensorInfos {
		size := int64(ti.Bytes())
		if size <= RPCHashThreshold || ti.Name == "token_embd.weight" {
			continue // small, or the input embeddings, which stay with the head
		}
		start := base + int64(ti.Offset)
		if start < 0 || start+size > fi.Size() {
			return fmt.Errorf("model %s: tensor %q lies past the end of the file", path, ti.Name)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		h := fnv.New64a()
		if _, err := io.Copy(h, io.NewSectionReader(f, start, size)); err != nil {
			return err
		}
		name := filepath.Join(dir, fmt.Sprintf("%016x", h.Sum64()))
		st.Tensors++
		if have, err := os.Stat(name); err == nil && have.Size() == size {
			st.Skipped += size
			continue
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := copyRange(f, start, size, name); err != nil {
			return err
		}
		st.Written += size
	}
	return nil
}

// copyRange writes size bytes of f from start to name, via a temporary
// file, so that rpc-server never reads half a tensor.
func copyRange(f *os.File, start, size int64, name string) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, io.NewSectionReader(f, start, size)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// ParseRPCCacheName reads a cache file's name: its hash; ok is false for
// anything else in the directory.
func ParseRPCCacheName(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	h, err := strconv.ParseUint(name, 16, 64)
	return h, err == nil
}
