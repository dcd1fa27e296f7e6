// Command packaging builds Potluck's installers from a built binary: the
// .deb, .rpm and tarball for Linux (nfpm, as a library), and the resources
// and NSIS inputs of the Windows setup. Name, id, version and description
// come from FyneApp.toml, the file `fyne package` reads, so every installer
// says the same thing. packaging.mk at the repository root drives it.
//
//	go run ./packaging meta [-version V] KEY          print one field (Version, ID, ...)
//	go run ./packaging linux -bin FILE -out DIR [-llama DIR] [-formats deb,rpm,tar]
//	go run ./packaging windows-res -out DIR           icon, version info and manifest sources
//	go run ./packaging windows-nsis -out DIR          defines for potluck.nsi
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const usage = `usage: packaging [common flags] COMMAND [flags]

commands:
  meta KEY       print a field of the package metadata (Name, Command, ID, Version, Build)
  linux          build the .deb, .rpm and tarball
  windows-res    write the .ico, .rc and .manifest the Windows resources compile from
  windows-nsis   write the defines the NSIS script includes
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
}

// common holds the flags every command takes.
type common struct {
	root    string // repository root
	version string // overrides FyneApp.toml's version
	date    string // release date, YYYY-MM-DD
}

func (c *common) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.root, "root", ".", "repository root (where FyneApp.toml is)")
	fs.StringVar(&c.version, "version", "", "package version (default: FyneApp.toml's)")
	fs.StringVar(&c.date, "date", "", "release date YYYY-MM-DD (default: SOURCE_DATE_EPOCH or today)")
}

func (c *common) meta() (Meta, error) {
	m, err := LoadMeta(filepath.Join(c.root, "FyneApp.toml"), filepath.Join(c.root, "packaging", "description.txt"))
	if err != nil {
		return Meta{}, err
	}
	return m.WithVersion(c.version)
}

func (c *common) releaseDate() (time.Time, error) {
	if c.date != "" {
		return time.Parse(time.DateOnly, c.date)
	}
	return buildTime(os.Getenv("SOURCE_DATE_EPOCH"), time.Now())
}

func run(args []string, stdout io.Writer) error {
	var c common
	fs := flag.NewFlagSet("packaging", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	c.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd, args := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "meta":
		return cmdMeta(&c, args, stdout)
	case "linux":
		return cmdLinux(&c, args, stdout)
	case "windows-res":
		return cmdWindowsRes(&c, args)
	case "windows-nsis":
		return cmdWindowsNSIS(&c, args)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

func cmdMeta(c *common, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("meta", flag.ContinueOnError)
	c.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("meta: want one KEY")
	}
	fields := map[string]string{
		"Name":    m.Name,
		"Command": m.Command,
		"ID":      m.ID,
		"Version": m.Version,
		"Build":   fmt.Sprint(m.Build),
		"Summary": m.Summary,
		"Website": m.Website,
	}
	v, ok := fields[fs.Arg(0)]
	if !ok {
		return fmt.Errorf("meta: unknown key %q", fs.Arg(0))
	}
	fmt.Fprintln(stdout, v)
	return nil
}

func cmdLinux(c *common, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("linux", flag.ContinueOnError)
	c.bind(fs)
	bin := fs.String("bin", "", "the linux/amd64 `binary` to package")
	out := fs.String("out", "dist", "output `dir`")
	llama := fs.String("llama", "", "llama.cpp runtime `dir` to bundle as llama/ next to the binary")
	formats := fs.String("formats", "deb,rpm,tar", "comma-separated: deb, rpm, tar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("linux: -bin is required")
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	date, err := c.releaseDate()
	if err != nil {
		return err
	}
	b := linuxBuild{
		Meta:  m,
		Root:  c.root,
		Bin:   *bin,
		Llama: *llama,
		Out:   *out,
		Date:  date,
	}
	// The formats compress independently; build them side by side.
	var want []string
	for _, f := range strings.Split(*formats, ",") {
		if f = strings.TrimSpace(f); f != "" {
			want = append(want, f)
		}
	}
	paths := make([]string, len(want))
	errs := make([]error, len(want))
	var wg sync.WaitGroup
	for i, f := range want {
		wg.Go(func() {
			switch f {
			case "deb", "rpm":
				paths[i], errs[i] = b.nfpm(f)
			case "tar":
				paths[i], errs[i] = b.tarball()
			default:
				errs[i] = fmt.Errorf("unknown format %q", f)
			}
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", f, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	return nil
}

func cmdWindowsRes(c *common, args []string) error {
	fs := flag.NewFlagSet("windows-res", flag.ContinueOnError)
	c.bind(fs)
	out := fs.String("out", "", "output `dir`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	return writeWindowsResources(m, c.root, *out)
}

func cmdWindowsNSIS(c *common, args []string) error {
	fs := flag.NewFlagSet("windows-nsis", flag.ContinueOnError)
	c.bind(fs)
	out := fs.String("out", "", "output `dir`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	return writeNSISDefines(m, *out)
}
