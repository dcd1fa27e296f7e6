// Package cfix works around Fyne reading a "C.UTF-8" locale as the language
// "C", which it cannot parse, and logging three error lines at start-up of
// every potluck command. Fyne reads the locale in a package init, so this fix
// has to be an init too: Go initializes this package (it needs only the
// standard library and sorts before golang.org/x/text, which Fyne's locale
// code waits for) before Fyne's. It sets LANGUAGE, which only chooses
// message translations, and only when the locale is C with a charset and
// LANGUAGE is unset.
package cfix

import (
	"os"
	"strings"
)

func init() {
	if os.Getenv("LANGUAGE") != "" {
		return
	}
	for _, name := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := os.Getenv(name); v != "" {
			if strings.HasPrefix(v, "C.") {
				os.Setenv("LANGUAGE", "en")
			}
			return
		}
	}
}
