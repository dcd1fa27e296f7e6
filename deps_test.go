package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the arrows pointing one way:
// main -> tray -> app -> {server, engine, netmesh, hw}.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/potluck-gpu/potluck"
	// forbidden[pkg] lists import prefixes pkg must not use directly.
	forbidden := map[string][]string{
		"app":     {"fyne.io/", "github.com/gin-gonic/", mod + "/tray"},
		"engine":  {"fyne.io/", "github.com/gin-gonic/", mod + "/app", mod + "/server", mod + "/tray", mod + "/netmesh"},
		"netmesh": {"fyne.io/", "github.com/gin-gonic/", mod + "/app", mod + "/server", mod + "/tray", mod + "/engine"},
		"hw":      {"fyne.io/", "github.com/gin-gonic/", mod + "/app", mod + "/server", mod + "/tray", mod + "/engine", mod + "/netmesh"},
		"ledger":  {"fyne.io/", "github.com/gin-gonic/", mod + "/app", mod + "/server", mod + "/tray", mod + "/engine", mod + "/netmesh", mod + "/hw"},
		"members": {"fyne.io/", "github.com/gin-gonic/", mod + "/app", mod + "/server", mod + "/tray", mod + "/engine", mod + "/hw"},
		"server":  {"fyne.io/", mod + "/app", mod + "/tray", mod + "/engine", mod + "/netmesh", mod + "/hw"},
		"tray":    {"github.com/gin-gonic/", mod + "/engine", mod + "/netmesh", mod + "/server", mod + "/hw"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		top, _, _ := strings.Cut(rel, "/")
		for _, imp := range strings.Fields(imports) {
			// Everywhere: Fyne only in tray and main, gin only in server.
			if strings.HasPrefix(imp, "fyne.io/") && top != "tray" && rel != "" {
				t.Errorf("%s imports %s: only tray and main may use Fyne", pkg, imp)
			}
			if strings.HasPrefix(imp, "github.com/gin-gonic/") && top != "server" {
				t.Errorf("%s imports %s: only server may use gin", pkg, imp)
			}
		}
		rules, ok := forbidden[top]
		if !ok {
			continue
		}
		checked++
		for _, imp := range strings.Fields(imports) {
			for _, bad := range rules {
				if strings.HasPrefix(imp, bad) {
					t.Errorf("%s imports %s: %s must not depend on %s", pkg, imp, top, bad)
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("checked only %d packages: is go list seeing the module?", checked)
	}
}
