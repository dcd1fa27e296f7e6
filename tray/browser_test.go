package tray

import (
	"net/url"
	"path/filepath"
	"testing"
)

func TestPageURL(t *testing.T) {
	for _, tc := range []struct{ api, want string }{
		{"http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/"},
		{"http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/"},
		{"http://[::1]:9000/v1", "http://[::1]:9000/"},
		{"https://pool.example:8443/v1", "https://pool.example:8443/"},
	} {
		got, err := pageURL(tc.api)
		if err != nil || got.String() != tc.want {
			t.Errorf("pageURL(%q) = %v, %v; want %s", tc.api, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "file:///etc/passwd", "javascript:alert(1)"} {
		if got, err := pageURL(bad); err == nil {
			t.Errorf("pageURL(%q) = %v; want an error", bad, got)
		}
	}
}

// urlApp records the URLs it is asked to open.
type urlApp struct {
	*notifyApp
	opened []string
}

func (a *urlApp) OpenURL(u *url.URL) error {
	a.opened = append(a.opened, u.String())
	return nil
}

func TestOpenInBrowser(t *testing.T) {
	h := newHarness(t)
	h.u.refresh()
	h.waitFor(t, "the status", func() bool { return h.u.status.API != "" })
	app := &urlApp{notifyApp: h.app}
	h.u.app = app
	h.u.items.browser.Action()
	if len(app.opened) != 1 || app.opened[0] != "http://127.0.0.1:8080/" {
		t.Errorf("Open in browser opened %q; want the node's web page", app.opened)
	}
}

func TestFileURL(t *testing.T) {
	if got := fileURL("/home/ann/.config/potluck/logs").String(); got != "file:///home/ann/.config/potluck/logs" {
		t.Errorf("fileURL = %s", got)
	}
	if got := fileURL(`C:\Users\Ann\AppData\Roaming\potluck\logs`).String(); filepath.Separator == '\\' && got != "file:///C:/Users/Ann/AppData/Roaming/potluck/logs" {
		t.Errorf("fileURL on Windows = %s", got)
	}
}
