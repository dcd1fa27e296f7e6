package settings

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// File is the settings' file name in the data directory.
const File = "settings.json"

// Store is the one owner of a node's settings. Get hands out snapshots;
// Modify is the only way to change them.
type Store struct {
	path      string
	recovered string // see Recovered

	mu      sync.Mutex // serializes changes and their writes, in order
	cur     Settings
	unsaved bool // cur is not on disk: its write failed
	subs    map[chan struct{}]struct{}
}

// Open reads the settings in dir (a missing file is empty settings) and
// moves the values an older tray kept in a file of its own into them, once.
// A damaged file is set aside and its backup copy used instead (Recovered
// says so); with no good copy, Open fails and leaves the file for the user
// to fix.
func Open(dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, File), subs: map[chan struct{}]struct{}{}}
	cur, d, err := read(s.path)
	if err != nil {
		return nil, err
	}
	if d != nil {
		aside, err := atomicfile.SetAside(s.path)
		if err != nil {
			return nil, fmt.Errorf("%v, and it cannot be moved aside: %w", d, err)
		}
		s.recovered = fmt.Sprintf("%v; the damaged file is kept as %s", d, aside)
		if err := s.save(cur); err != nil {
			s.recovered += "; " + err.Error()
		}
	}
	s.cur = cur
	if err := s.migrateTray(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// Recovered says what Open did about a damaged settings file; empty when
// it found none.
func (s *Store) Recovered() string { return s.recovered }

// Load reads the settings in dir; a missing file is empty settings, and a
// damaged one is read from its backup copy. It is
// for reading only (the command line's `potluck token`): a running node's
// settings belong to its Store.
func Load(dir string) (Settings, error) {
	s, _, err := read(filepath.Join(dir, File))
	return s, err
}

// read reads a settings file, or its backup copy if it is
// damaged (d says so); with no good copy it fails.
func read(path string) (Settings, *atomicfile.Damage, error) {
	var s Settings
	valid := func(b []byte) error {
		var v Settings
		return json.Unmarshal(b, &v)
	}
	data, d, err := atomicfile.ReadValid(path, valid)
	if err != nil {
		return s, nil, err
	}
	if d != nil && !d.FromBackup {
		return s, nil, fmt.Errorf("%s is damaged (%v), and its backup copy is missing or damaged too: fix or delete it", path, d.Err)
	}
	if data != nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return Settings{}, nil, err
		}
	}
	return s, d, nil
}

// Get returns the settings now. The snapshot is the caller's: nothing
// changes it later.
func (s *Store) Get() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Modify changes the settings with fn, saves them durably and then tells
// the subscribers. fn runs under the store's lock and must not call back
// into the store. A change that changes nothing writes nothing. When the
// file cannot be written the change still holds for this run, and the
// error says so; Retry writes it later.
func (s *Store) Modify(fn func(*Settings)) error {
	s.mu.Lock()
	next := s.cur.clone()
	fn(&next)
	if reflect.DeepEqual(next, s.cur) {
		s.mu.Unlock()
		return nil
	}
	s.cur = next
	err := s.save(next)
	if s.unsaved = err != nil; s.unsaved {
		err = fmt.Errorf("%w; the change holds until Potluck stops, and is saved as soon as it can be", err)
	}
	subs := make([]chan struct{}, 0, len(s.subs))
	for c := range s.subs {
		subs = append(subs, c)
	}
	s.mu.Unlock()
	for _, c := range subs {
		select {
		case c <- struct{}{}:
		default: // a change is already waiting to be read
		}
	}
	return err
}

// Retry saves a change Modify could not write (a full disk, say); nil
// when every change is on disk.
func (s *Store) Retry() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unsaved {
		return nil
	}
	err := s.save(s.cur)
	s.unsaved = err != nil
	return err
}

// Subscribe returns a channel that receives after each change; a slow
// reader sees one signal for several changes, and reads Get for the
// latest. cancel stops the signals.
func (s *Store) Subscribe() (changed <-chan struct{}, cancel func()) {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	return c, func() {
		s.mu.Lock()
		delete(s.subs, c)
		s.mu.Unlock()
	}
}

// save writes the settings atomically, readable by the owner only: they
// hold the invite token.
func (s *Store) save(v Settings) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteKeep(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("could not save the settings (%s): %w", s.path, err)
	}
	return nil
}
