package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/potluck-gpu/potluck/app"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/library"
)

// modelRoots are the places the library looks: Potluck's store in
// dataDir, dirs, and the stores of the other tools this user has.
func modelRoots(dataDir string, dirs []string) []library.Root {
	home, _ := os.UserHomeDir()
	return library.Roots(dataDir, dirs, os.Getenv, home)
}

func openLibrary(dataDir string, dirs []string) *library.Library {
	return library.New(modelRoots(dataDir, dirs), filepath.Join(dataDir, "library.json"), nil)
}

func cmdModels(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck models", flag.ContinueOnError)
	var dataDir string
	var dirs []string
	bindSettings(fs, []setting{
		{"data-dir", "POTLUCK_DATA_DIR", app.DefaultDataDir(), "Potluck's data `DIR`, whose models/ is its store", text{&dataDir}},
		modelsDirsSetting(&dirs),
	}, nil)
	asJSON := fs.Bool("json", false, "print JSON, with every file and its sha256")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	lib := openLibrary(dataDir, dirs)
	models, warnings := lib.List()
	if *asJSON {
		if models == nil {
			models = []library.Model{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"models": models, "warnings": warnings})
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: cannot read %s\n", w)
	}
	if len(models) == 0 {
		fmt.Fprintf(stdout, "No models on this machine yet. Get one with `potluck pull OWNER/REPO:Q4_K_M`;\n"+
			"Potluck also finds the models of Ollama, LM Studio, Hugging Face's cache and llama.cpp's cache.\nLooked in:\n")
		for _, r := range lib.Roots() {
			fmt.Fprintf(stdout, "  %-12s %s\n", r.Source, r.Dir)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tPARAMS\tQUANT\tARCH\tCONTEXT\tCHAT\tFROM\tSHA256")
	for _, m := range models {
		chat := "no"
		if m.ChatTemplate {
			chat = "yes"
		}
		sum := "(computing)"
		switch {
		case len(m.Files) > 1:
			sum = fmt.Sprintf("(%d files)", len(m.Files))
		case m.SHA256 != "":
			sum = m.SHA256[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, size.Format(m.Size), params(m.Params), m.Quant, m.Arch, m.Context, chat, m.Source, sum)
	}
	return tw.Flush()
}

// params writes a parameter count as people do: 260K, 8.0B.
func params(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func cmdPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("potluck pull", flag.ContinueOnError)
	var dataDir string
	bindSettings(fs, []setting{{"data-dir", "POTLUCK_DATA_DIR", app.DefaultDataDir(), "with no node running, pull into the store of this data `DIR`", text{&dataDir}}}, nil)
	client := clientFlags(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("pull: say which model, e.g. `potluck pull OWNER/REPO:Q4_K_M`")}
	}
	ref := fs.Arg(0)
	bar := newProgressBar(stderr)
	c := client()
	var m library.Model
	var err error
	if c.running(ctx) {
		fmt.Fprintf(stderr, "pulling through the node running at %s\n", c.base)
		m, err = c.pull(ctx, ref, bar.update)
	} else {
		cfg := defaultConfig()
		lib := openLibrary(dataDir, nil)
		h := hub.NewClient(cfg.HFEndpoint, cfg.HFToken, "potluck/"+app.Version)
		m, err = lib.Get(ctx, h, ref, library.StoreDir(dataDir), bar.update)
	}
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is ready (%s, %s): serve it with `potluck run --model %s`\n", m.Name, size.Format(m.Size), m.Path, m.Name)
	return nil
}

// pull asks the node to pull ref, following its NDJSON progress.
func (c nodeClient) pull(ctx context.Context, ref string, progress func(hub.Progress)) (library.Model, error) {
	body, _ := json.Marshal(map[string]any{"model": ref, "stream": true})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/pull", bytes.NewReader(body))
	if err != nil {
		return library.Model{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key := cmp.Or(c.adminKey, c.key); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	hc := *c.hc
	hc.Timeout = 0 // a pull takes as long as it takes; ctx ends it
	resp, err := hc.Do(req)
	if err != nil {
		return library.Model{}, fmt.Errorf("is a node running at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return library.Model{}, answerError("pull", resp.Status, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last hub.Progress
	for sc.Scan() {
		var line struct {
			hub.Progress
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue
		}
		if line.Error != "" {
			return library.Model{}, errors.New(line.Error)
		}
		progress(line.Progress)
		last = line.Progress
	}
	if err := sc.Err(); err != nil {
		return library.Model{}, fmt.Errorf("pull: lost the node: %w", err)
	}
	if last.Status != "success" {
		return library.Model{}, errors.New("pull: the node stopped answering before it finished")
	}
	var lib struct {
		Models []library.Model `json:"models"`
	}
	if err := c.get(ctx, "/api/models", &lib); err != nil {
		return library.Model{}, err
	}
	if m, ok := library.Match(lib.Models, cmp.Or(last.File, ref)); ok {
		return m, nil
	}
	return library.Model{}, fmt.Errorf("pull: the node pulled %s but does not list it", ref)
}

// progressBar draws a pull's progress: on a terminal one line redrawn in
// place, with bytes, rate and time left; elsewhere a line every few seconds.
type progressBar struct {
	w   io.Writer
	tty bool

	status   string
	drawn    time.Time
	lineOpen bool
	samples  []sample // recent (time, bytes), for the rate
}

type sample struct {
	t time.Time
	n int64
}

func newProgressBar(w io.Writer) *progressBar {
	b := &progressBar{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb" {
			b.tty = true
		}
	}
	return b
}

func (b *progressBar) update(p hub.Progress) {
	now := time.Now()
	if p.Total <= 0 {
		if p.Status != b.status && p.Status != "success" {
			b.endLine()
			fmt.Fprintln(b.w, p.Status)
		}
		b.status = p.Status
		return
	}
	if p.Status != b.status {
		b.endLine()
		b.samples = nil
		b.drawn = time.Time{}
	}
	b.status = p.Status
	b.samples = append(b.samples, sample{now, p.Completed})
	for len(b.samples) > 2 && now.Sub(b.samples[0].t) > 5*time.Second {
		b.samples = b.samples[1:]
	}
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if p.Completed < p.Total && now.Sub(b.drawn) < every {
		return
	}
	b.drawn = now
	line := b.line(p)
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
		b.lineOpen = true
		if p.Completed >= p.Total {
			b.endLine()
		}
		return
	}
	fmt.Fprintln(b.w, line)
}

func (b *progressBar) line(p hub.Progress) string {
	name := p.File
	if name == "" {
		name = p.Status
	}
	pct := float64(p.Completed) / float64(p.Total)
	const width = 24
	fill := int(pct * width)
	bar := strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
	s := fmt.Sprintf("%s %3.0f%% %s %s / %s", filepath.Base(name), 100*pct, bar, size.Format(uint64(p.Completed)), size.Format(uint64(p.Total)))
	if first, last := b.samples[0], b.samples[len(b.samples)-1]; last.t.Sub(first.t) > 200*time.Millisecond && last.n > first.n {
		rate := float64(last.n-first.n) / last.t.Sub(first.t).Seconds()
		s += fmt.Sprintf("  %s/s", size.Format(uint64(rate)))
		if left := p.Total - p.Completed; left > 0 {
			s += fmt.Sprintf("  %s left", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	if p.From != "" && p.From != "hub" {
		s += "  from " + p.From
	}
	return s
}

func (b *progressBar) endLine() {
	if b.lineOpen {
		fmt.Fprintln(b.w)
		b.lineOpen = false
	}
}

func (b *progressBar) finish() { b.endLine() }
