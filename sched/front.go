package sched

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/server"
)

// Front is the door members' requests come through to this node's
// models: it reads which model a request names, loads it when it is not
// loaded and loads are allowed, waits for it within a bound, and hands the
// request to that model's host, with the member's connection as it came.
type Front struct {
	Sched *Scheduler
	// Name is this node's name, as members' users read it in an error.
	Name string
	// Pinned is the model the node serves, and its host; "" and nil:
	// none. A request that names no model goes to it.
	Pinned func() (key string, h http.Handler)
	// AllowLoads says whether a member's request may load a model.
	AllowLoads func() bool
	// Wait bounds how long a request waits for a load before a 503.
	Wait time.Duration
	Log  *slog.Logger
}

// frontMaxBody bounds a request's body; the member's own API has a lower
// limit.
const frontMaxBody = 64 << 20

// LoadsRefused is the message of a member's request for a model this node
// has on disk but will not load for members.
const LoadsRefused = "it loads no models for members (--allow-peer-loads=false)"

// here is how the node is named in an error a member's user reads: the
// member's own computer is "this computer" to them.
func (f *Front) here() string {
	if f.Name == "" {
		return "the member's computer"
	}
	return f.Name
}

func writeError(w http.ResponseWriter, status int, msg string) {
	typ := "server_error"
	if status < 500 {
		typ = "invalid_request_error"
	}
	server.WriteError(w, status, typ, nil, msg)
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pinnedKey, pinned := "", http.Handler(nil)
	if f.Pinned != nil {
		pinnedKey, pinned = f.Pinned()
	}
	model := ""
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, frontMaxBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "the request body could not be read: "+err.Error())
			return
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		var req struct {
			Model string `json:"model"`
		}
		json.Unmarshal(body, &req) // not JSON: llama-server says so
		model = req.Model
	} else if m := r.URL.Query().Get("model"); m != "" {
		model = m
	}
	key, ok := "", false
	if model != "" {
		key, ok = f.Sched.Resolve(model)
	}
	if model == "" || (ok && key == pinnedKey) || (!ok && pinned != nil) {
		if pinned == nil {
			writeError(w, http.StatusNotFound, f.here()+" serves no model: name one it has")
			return
		}
		pinned.ServeHTTP(w, r)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q is not on %s", model, f.here()))
		return
	}
	m, loaded := f.Sched.Get(key)
	if r.Method == http.MethodGet {
		// What a loaded model does (host.ModelInfoPath): asking loads
		// nothing.
		if h, ok := m.(http.Handler); ok && loaded {
			h.ServeHTTP(w, r)
		} else {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not loaded on %s", key, f.here()))
		}
		return
	}
	if loaded {
		f.Sched.Touch(key)
	} else {
		if f.AllowLoads != nil && !f.AllowLoads() {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s is on %s's disk but not loaded, and %s", key, f.here(), LoadsRefused))
			return
		}
		var err error
		if m, err = f.Sched.Load(key, nil); err != nil {
			status := http.StatusServiceUnavailable
			if !errors.Is(err, ErrBusy) {
				status = http.StatusInternalServerError
			}
			w.Header().Set("Retry-After", "5")
			writeError(w, status, err.Error())
			return
		}
	}
	if !f.await(r.Context(), m) {
		if r.Context().Err() != nil {
			return
		}
		st := m.Status()
		if st.State.LastError != "" {
			writeError(w, http.StatusInternalServerError, key+" failed to load: "+st.State.LastError)
			return
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s is still loading (%s)", key, strings.TrimSpace(st.Detail+" "+st.State.State.String())))
		return
	}
	h, ok := m.(http.Handler)
	if !ok {
		writeError(w, http.StatusInternalServerError, key+" cannot take requests")
		return
	}
	h.ServeHTTP(w, r)
}

// await waits until m is ready, within Wait; false if it is not.
func (f *Front) await(ctx context.Context, m Model) bool {
	deadline := time.Now().Add(f.Wait)
	for m.LocalAddr() == "" {
		if time.Now().After(deadline) || m.Status().State.LastError != "" {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}
