package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/library"
)

// cmdRm is `potluck rm NAME`: it removes a model from Potluck's own store,
// through the running node when there is one (which refuses the model it
// serves), otherwise straight from the store of --data-dir.
func cmdRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck rm", flag.ContinueOnError)
	var dataDir string
	var dirs []string
	bindSettings(fs, []setting{
		{"data-dir", "POTLUCK_DATA_DIR", app.DefaultDataDir(), "with no node running, remove from the store of this data `DIR`", text{&dataDir}},
		modelsDirsSetting(&dirs),
	}, nil)
	client := clientFlags(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("rm: say which model, e.g. `potluck rm OWNER/REPO/FILE` (`potluck models` lists them)")}
	}
	name := fs.Arg(0)
	c := client()
	var m library.Model
	var err error
	if c.running(ctx) {
		fmt.Fprintf(stderr, "removing through the node running at %s\n", c.base)
		var res struct {
			Model library.Model `json:"model"`
		}
		err = c.admin(ctx, http.MethodPost, "/api/models/delete", map[string]string{"model": name}, &res)
		m = res.Model
	} else {
		m, err = openLibrary(dataDir, dirs).Remove(name, dataDir, nil)
	}
	if err != nil {
		return err
	}
	files := ""
	if len(m.Files) > 1 {
		files = fmt.Sprintf(" in %d files", len(m.Files))
	}
	fmt.Fprintf(stdout, "Removed %s (%s%s, %s)\n", m.Name, size.Format(m.Size), files, m.Path)
	return nil
}
