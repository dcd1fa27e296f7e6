// Package rangeserve answers file downloads the way storage servers and
// CDNs do, with Range requests, for the fake servers tests run (the hub's,
// llama.cpp's releases'). It can cut a transfer, corrupt a byte of it, or
// pace it, so that resuming and checking are tested for real.
package rangeserve

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Options say how to misbehave; the zero value serves faithfully.
type Options struct {
	Cut  int64 // > 0: drop the connection after this many bytes
	Flip int64 // >= 1: flip the byte at this offset-1 of what is sent (Flip 1 is the first byte)
	Rate int64 // > 0: about this many bytes a second
}

// Serve answers r with data, from the offset its Range header asks for:
// 206 with Content-Range, or 416 past the end. It returns the bytes sent.
func Serve(w http.ResponseWriter, r *http.Request, data []byte, o Options) int64 {
	start := int64(0)
	if rg := r.Header.Get("Range"); rg != "" {
		v, ok := strings.CutPrefix(rg, "bytes=")
		from, _, _ := strings.Cut(v, "-")
		n, err := strconv.ParseInt(from, 10, 64)
		if !ok || err != nil || n < 0 {
			http.Error(w, "bad range", http.StatusBadRequest)
			return 0
		}
		if n >= int64(len(data)) {
			w.Header().Set("Content-Range", "bytes */"+strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return 0
		}
		start = n
	}
	body := data[start:]
	if i := o.Flip - 1; i >= 0 && i < int64(len(body)) {
		body = bytes.Clone(body)
		body[i] ^= 0xff
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if start > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
	}
	if o.Cut > 0 && o.Cut < int64(len(body)) {
		w.Write(body[:o.Cut])
		w.(http.Flusher).Flush()
		// Drop the connection with the rest unsent.
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			time.Sleep(10 * time.Millisecond)
			conn.Close()
		}
		return o.Cut
	}
	if o.Rate <= 0 {
		n, _ := w.Write(body)
		return int64(n)
	}
	var sent int64
	chunk := max(o.Rate/20, 1)
	for len(body) > 0 && r.Context().Err() == nil {
		k := min(chunk, int64(len(body)))
		n, err := w.Write(body[:k])
		sent += int64(n)
		if err != nil {
			return sent
		}
		w.(http.Flusher).Flush()
		body = body[k:]
		time.Sleep(50 * time.Millisecond)
	}
	return sent
}
