package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Backup is the name of the second copy WriteKeep keeps of a file.
func Backup(name string) string { return name + ".backup" }

// WriteKeep is Write, and then the same into Backup(name), for ReadValid
// to fall back on should name be damaged later. Should the second write
// fail, the backup is one change behind; the error is the first write's.
func WriteKeep(name string, data []byte, perm fs.FileMode) error {
	if err := Write(name, data, perm); err != nil {
		return err
	}
	_ = Write(Backup(name), data, perm)
	return nil
}

// Damage says what was wrong with a file ReadValid read, and what it used
// instead.
type Damage struct {
	Path string
	Err  error // what valid said
	// FromBackup: ReadValid returned the backup's content.
	FromBackup bool
}

func (d *Damage) Error() string {
	if d.FromBackup {
		return fmt.Sprintf("%s is damaged (%v); using its backup copy", d.Path, d.Err)
	}
	return fmt.Sprintf("%s is damaged (%v)", d.Path, d.Err)
}

func (d *Damage) Unwrap() error { return d.Err }

// ReadValid reads name and checks its content with valid. A missing file
// is nil content and no error. When valid rejects the content, ReadValid
// returns the backup (see WriteKeep) if valid accepts that, with a *Damage
// whose FromBackup is set; otherwise no content and a *Damage.
// It changes no file: see SetAside.
func ReadValid(name string, valid func([]byte) error) ([]byte, *Damage, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	verr := valid(data)
	if verr == nil {
		return data, nil, nil
	}
	d := &Damage{Path: name, Err: verr}
	if b, err := os.ReadFile(Backup(name)); err == nil && valid(b) == nil {
		d.FromBackup = true
		return b, d, nil
	}
	return nil, d, nil
}

// SetAside moves a damaged file out of the way, to name.damaged-TIME, so
// that nothing writes over it, and returns where it went.
// An earlier damaged copy is never replaced.
func SetAside(name string) (string, error) {
	base := name + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		to := base
		if i > 1 {
			to = fmt.Sprintf("%s-%d", base, i)
		}
		if _, err := os.Lstat(to); err == nil {
			continue
		}
		if err := os.Rename(name, to); err != nil {
			return "", err
		}
		return to, nil
	}
}
