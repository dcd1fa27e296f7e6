# Windows under Wine (root only): scripts/wine.sh keeps a Debian trixie
# chroot with Wine 10 in $POTLUCK_DEV_CACHE/wine (bookworm's Wine 8 cannot
# run Go >= 1.22 programs). Included from the Makefile.
#
#   make wine-setup                       build the chroot and the prefix, once
#   make wine-run CMD='potluck.exe version'
#                                         build the Windows program, run CMD under
#                                         Wine in its folder ($(WIN_DIR))
#   make test-windows                     everything below: the unit tests and
#                                         winlab's (potluck.exe, a mixed pool, the
#                                         tray, the installer), as make test runs it
#   make test-windows-unit                every package's tests, built for Windows
#                                         without cgo, under Wine
#   WIN_TEST_PKGS='./hw ./ledger'         only these packages
#   scripts/wine.sh teardown              remove the chroot and the prefix

_win_default_goal := $(.DEFAULT_GOAL)

GO            ?= go
WINE_SH       ?= scripts/wine.sh
CMD           ?= potluck.exe version
WIN_TEST_DIR  ?= bin/windows-test
WIN_TEST_PKGS ?= ./...
WIN_TEST_FLAGS ?= -test.v=false -test.timeout 10m

.PHONY: wine-setup wine-run test-windows test-windows-unit windows-prep windows-prep-deps

# windows-prep-deps installs what the Windows harness needs from Debian;
# windows-prep then builds what it can ahead (make test runs it in the
# background, niced): the chroot, the Windows llama.cpp, and the Windows
# program's packages into Go's build cache. Each step takes its own lock,
# so test-windows, running the same steps later, waits rather than races.
windows-prep-deps: package-deps
	$(call install-debs,debootstrap xvfb xdotool $(LLAMA_BUILD_DEBS))

# test-windows waits for this lock, so nothing of the preparation still
# runs beside its tests.
WIN_PREP_LOCK ?= bin/.windows-prep.lock

windows-prep:
	@mkdir -p $(dir $(WIN_PREP_LOCK))
	flock $(WIN_PREP_LOCK) sh -c '$(WINE_SH) setup && scripts/llama-build.sh windows && \
		CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=$(WIN_CC) $(GO) build -o /dev/null .'

# The Windows llama.cpp build (scripts/llama-build.sh), copied where Wine
# sees it, for the tests that start llama-server.exe.
WIN_LLAMA ?= bin/llama-windows
WINLAB_FLAGS ?= -count=1 -p 1 -timeout 25m

# test-windows needs root (chroot, namespaces); elsewhere it says so and
# passes, as test-mdns does.
test-windows:
	@if [ "$$(id -u)" != 0 ]; then echo "test-windows: skipped (needs root for the Wine chroot)"; exit 0; fi; \
	mkdir -p $(dir $(WIN_PREP_LOCK)) && flock $(WIN_PREP_LOCK) true && \
	$(MAKE) --no-print-directory wine-setup llama-builds package-windows && \
	rm -rf $(WIN_LLAMA) && mkdir -p $(WIN_LLAMA) && \
	cp -p $$(scripts/llama-build.sh windows | awk '{print $$3}')/* $(WIN_LLAMA)/ && \
	POTLUCK_LLAMA_DIR='Z:$(subst /,\,$(abspath $(WIN_LLAMA)))' $(MAKE) --no-print-directory test-windows-unit && \
	POTLUCK_WINE=1 $(GO) test $(WINLAB_FLAGS) ./winlab/

wine-setup:
	$(call install-debs,debootstrap xvfb xdotool)
	@$(WINE_SH) setup

# The program is built by a sub-make, so that this file may be included
# before packaging.mk, which defines $(WIN_EXE).
wine-run: wine-setup
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $(WIN_EXE)
	$(WINE_SH) run -C $(WIN_DIR) -- $(CMD)

# test-windows-unit builds each package's test binary for Windows without
# cgo and runs it under Wine in the package's folder (tests read testdata
# from there), one package at a time. Packages without tests, or that do not
# build for Windows without cgo, are skipped and named with the reason. Logs
# are kept in $(WIN_TEST_DIR). POTLUCK_* and GGML_* variables reach the tests
# (POTLUCK_LLAMA_DIR=<a Windows llama.cpp build>, for one).
test-windows-unit: wine-setup
	@rm -rf $(WIN_TEST_DIR) && mkdir -p $(WIN_TEST_DIR); out=$(abspath $(WIN_TEST_DIR)); \
	mod=$$($(GO) list -m) && \
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) list -e \
		-f '{{.ImportPath}} {{.Dir}} {{len .TestGoFiles}} {{len .XTestGoFiles}}' $(WIN_TEST_PKGS) >$$out/packages || exit 1; \
	: >$$out/passed; : >$$out/failed; : >$$out/skipped; \
	while read -r pkg dir nt nx; do \
		name=$$(echo "$${pkg#$$mod}" | sed 's|^/||; s|/|_|g'); name=$${name:-main}; \
		if [ "$$nt$$nx" = 00 ]; then echo "  $$pkg: no tests" >>$$out/skipped; continue; fi; \
		if ! CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) test -c -o $$out/$$name.test.exe $$pkg \
			</dev/null >$$out/$$name.build.log 2>&1; then \
			cgo=$$(CGO_ENABLED=1 GOOS=windows GOARCH=amd64 $(GO) list -e -deps -test \
				-f '{{if and .CgoFiles (not .Standard)}}{{.ImportPath}}{{end}}' $$pkg 2>/dev/null | grep -m1 .); \
			if [ -n "$$cgo" ]; then echo "  $$pkg: needs cgo ($$cgo)" >>$$out/skipped; continue; fi; \
			echo "  $$pkg: does not build for Windows ($$(grep -m1 -v '^#' $$out/$$name.build.log | cut -c1-150))" >>$$out/skipped; \
			continue; fi; \
		start=$$(date +%s); \
		if $(WINE_SH) run -C $$dir -- $$out/$$name.test.exe $(WIN_TEST_FLAGS) </dev/null >$$out/$$name.log 2>&1; then \
			echo "ok    $$pkg ($$(( $$(date +%s) - start )) s)"; echo $$pkg >>$$out/passed; \
		else \
			echo "FAIL  $$pkg ($$(( $$(date +%s) - start )) s, log: $(WIN_TEST_DIR)/$$name.log)"; \
			grep -E '^ *--- FAIL|^panic:' $$out/$$name.log | head -20 | sed 's/^/        /'; \
			echo $$pkg >>$$out/failed; \
		fi; \
	done <$$out/packages; \
	[ ! -s $$out/skipped ] || { echo "skipped:"; cat $$out/skipped; }; \
	echo "windows unit tests: $$(wc -l <$$out/passed) passed, $$(wc -l <$$out/failed) failed"; \
	[ ! -s $$out/failed ] || { echo "failed:" $$(cat $$out/failed); exit 1; }

ifeq ($(_win_default_goal),)
.DEFAULT_GOAL :=
endif
