package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Meta is what every installer says about the app. It comes from FyneApp.toml,
// the file `fyne package` reads too, plus the long description kept beside
// the installers.
type Meta struct {
	Name        string   // display name: "Potluck"
	Command     string   // executable and package name: "potluck"
	ID          string   // reverse-DNS app id, also the icon and desktop-file name
	Version     string   // dotted version, "0.1.0"
	Build       int      // package release, "1"
	Website     string   // project home page
	Summary     string   // one line
	Description []string // paragraphs
	GenericName string
	Categories  []string
	Keywords    []string
	Maintainer  string
	License     string // SPDX id, empty when the project has not chosen one
}

// fyneApp mirrors the parts of FyneApp.toml that packaging reads.
type fyneApp struct {
	Website string
	Details struct {
		Icon    string
		Name    string
		ID      string
		Version string
		Build   int
	}
	LinuxAndBSD struct {
		GenericName string
		Categories  []string
		Comment     string
		Keywords    []string
	}
}

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// LoadMeta reads FyneApp.toml at path and the long description at descPath.
func LoadMeta(path, descPath string) (Meta, error) {
	var f fyneApp
	if _, err := toml.DecodeFile(path, &f); err != nil {
		return Meta{}, err
	}
	desc, err := os.ReadFile(descPath)
	if err != nil {
		return Meta{}, err
	}
	m := Meta{
		Name:        f.Details.Name,
		Command:     strings.ToLower(f.Details.Name),
		ID:          f.Details.ID,
		Version:     f.Details.Version,
		Build:       f.Details.Build,
		Website:     f.Website,
		Summary:     f.LinuxAndBSD.Comment,
		Description: paragraphs(string(desc)),
		GenericName: f.LinuxAndBSD.GenericName,
		Categories:  f.LinuxAndBSD.Categories,
		Keywords:    f.LinuxAndBSD.Keywords,
		Maintainer:  f.Details.Name + " developers",
	}
	if m.Build < 1 {
		m.Build = 1
	}
	m.License = licenseOf(filepath.Join(filepath.Dir(path), "LICENSE"))
	return m, m.validate()
}

// licenseOf names, as an SPDX id, the license in the file at path; empty
// when there is none or it is not one this knows.
func licenseOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	head := strings.Join(strings.Fields(string(data[:min(len(data), 400)])), " ")
	if strings.HasPrefix(head, "Apache License Version 2.0") {
		return "Apache-2.0"
	}
	return ""
}

func (m Meta) validate() error {
	switch {
	case m.Name == "" || m.ID == "" || m.Summary == "":
		return fmt.Errorf("FyneApp.toml needs Details.Name, Details.ID and LinuxAndBSD.Comment")
	case !versionRE.MatchString(m.Version):
		return fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", m.Version)
	case len(m.Description) == 0:
		return fmt.Errorf("the long description is empty")
	}
	return nil
}

// WithVersion returns m with another version, for builds that override it.
func (m Meta) WithVersion(v string) (Meta, error) {
	if v == "" {
		return m, nil
	}
	m.Version = strings.TrimPrefix(v, "v")
	return m, m.validate()
}

// WindowsVersion is the four-part version Windows resources carry.
func (m Meta) WindowsVersion() [4]int {
	var v [4]int
	for i, p := range strings.SplitN(m.Version, ".", 3) {
		v[i], _ = strconv.Atoi(p)
	}
	v[3] = m.Build
	return v
}

// paragraphs splits text at blank lines and joins each paragraph's lines.
func paragraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			out = append(out, p)
		}
	}
	return out
}
