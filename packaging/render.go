package main

import (
	"bytes"
	"embed"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed linux/*.tmpl windows/*.tmpl
var templateFS embed.FS

// templates are the installer files, rendered from Meta.
var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
	"xml":  xmlEscape,
	"rc":   rcEscape,
	"nsis": nsisEscape,
}).ParseFS(templateFS, "linux/*.tmpl", "windows/*.tmpl"))

// view is what a template sees: the metadata plus per-file values.
type view struct {
	Meta
	Exec string // absolute path or name of the executable
	Date string // release date, YYYY-MM-DD
	V    [4]int // Windows four-part version
}

func newView(m Meta, exec string, date time.Time) view {
	return view{Meta: m, Exec: exec, Date: date.UTC().Format(time.DateOnly), V: m.WindowsVersion()}
}

// render executes the named template.
func render(name string, v view) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// renderTo executes the named template into path.
func renderTo(path, name string, v view) error {
	data, err := render(name, v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func xmlEscape(s string) (string, error) {
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// rcEscape quotes s for a string in a resource script, where a quote is
// doubled.
func rcEscape(s string) string {
	return strings.ReplaceAll(s, `"`, `""`)
}

// nsisEscape quotes s for a double-quoted NSIS string: $ and " take $$ and $\".
func nsisEscape(s string) string {
	return strings.NewReplacer(`$`, `$$`, `"`, `$\"`).Replace(s)
}

// buildTime is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func buildTime(epoch string, now time.Time) (time.Time, error) {
	if epoch == "" {
		return now.UTC(), nil
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
