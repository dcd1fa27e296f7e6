package tray

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// openBrowser opens the node's web page in the default browser.
func (u *ui) openBrowser() {
	page, err := pageURL(u.status.API)
	if err == nil {
		err = u.app.OpenURL(page)
	}
	if err != nil {
		u.log.Warn("open in browser", "err", err)
		u.notify("Could not open the web page", err.Error())
	}
}

// pageURL is the web page of the node whose OpenAI API is at api (…/v1).
func pageURL(api string) (*url.URL, error) {
	if api == "" {
		return nil, fmt.Errorf("the node's API is not listening yet")
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the node's API address %q is not a web address", api)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1") + "/"
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// openLogs opens the folder of the node's logs (llama.cpp's output among
// them) in the file manager: Explorer on Windows.
func (u *ui) openLogs() {
	dir := filepath.Join(u.dataDir, "logs")
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = u.app.OpenURL(fileURL(dir))
	}
	if err != nil {
		u.log.Warn("open the logs folder", "err", err)
		u.notify("Could not open the logs folder", dir+": "+err.Error())
	}
}

// fileURL is the file: URL of a local folder: file:///home/…, and
// file:///C:/Users/… on Windows.
func fileURL(dir string) *url.URL {
	p := filepath.ToSlash(dir)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return &url.URL{Scheme: "file", Path: p}
}
