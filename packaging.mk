# Installers: `make package` builds, under dist/, the .deb, the .rpm, the
# Linux tarball and the Windows potluck-setup.exe; `make test-package`
# builds and checks them (it installs and purges the .deb, as root).
# Included from the Makefile; packaging/ holds the program and its files.
#
#   LLAMA_DIR=dir          bundle this Linux llama.cpp runtime as llama/ next to the binary
#   LLAMA_DIR_WINDOWS=dir  the same for the Windows installer
#   PKG_VERSION=x.y.z      override FyneApp.toml's version
#   WINDOWS_SIGN_PFX=file  sign the Windows programs with this PKCS#12 certificate
#                          (WINDOWS_SIGN_PASSWORD, WINDOWS_SIGN_TIMESTAMP_URL optional)

_pkg_default_goal := $(.DEFAULT_GOAL)

GO        ?= go
DIST      ?= dist
LLAMA_DIR ?=
LLAMA_DIR_WINDOWS ?=

# Debian packages that building and checking the installers need.
PKG_DEB_PACKAGES := gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 nsis rpm p7zip-full \
	desktop-file-utils appstream osslsigncode openssl file

PKG_TOOL    := $(DIST)/build/packaging
PKG_SOURCES := $(wildcard packaging/*.go packaging/*.txt packaging/*/*.tmpl) FyneApp.toml icons/app.png go.mod go.sum
# Evaluated once, on first use, so other targets never build the tool.
PKG_VERSION ?= $(eval PKG_VERSION := $(shell $(GO) run ./packaging meta Version))$(PKG_VERSION)
PKG_LDFLAGS  = -s -w -X github.com/potluck-gpu/potluck/app.Version=$(PKG_VERSION)
PKG_FLAGS    = -version $(PKG_VERSION)
# File times and the release date: the last commit's, for reproducible packages.
PKG_EPOCH    = $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null))
PKG_RUN      = SOURCE_DATE_EPOCH=$(PKG_EPOCH) $(PKG_TOOL)

LINUX_BIN := $(DIST)/build/linux-amd64/potluck
WIN_DIR   := $(DIST)/build/windows
WIN_EXE   := $(WIN_DIR)/potluck.exe
WIN_SETUP := $(DIST)/potluck-setup.exe
WIN_CC    ?= x86_64-w64-mingw32-gcc
WINDRES   ?= x86_64-w64-mingw32-windres
WIN_SIGN  := sh $(CURDIR)/packaging/windows/sign.sh

.PHONY: package package-deps package-linux package-deb package-rpm package-tar package-windows \
	package-macos test-package package-clean $(LINUX_BIN) $(WIN_EXE)

package: package-linux package-windows
	@ls -l $(DIST)/*.deb $(DIST)/*.rpm $(DIST)/*.tar.gz $(WIN_SETUP)

# package-deps installs the Debian packages the installers need (see
# install-debs in the Makefile).
package-deps: deps
	$(call install-debs,$(PKG_DEB_PACKAGES))

$(PKG_TOOL): $(PKG_SOURCES)
	$(GO) build -o $@ ./packaging

# The Linux binary: the same compile as `make build` (so the build cache
# serves it), stripped, and reporting the package's version.
$(LINUX_BIN): deps
	$(GO) build -ldflags "$(PKG_LDFLAGS)" -o $@ .

package-linux: package-deps $(LINUX_BIN) $(PKG_TOOL)
	$(PKG_RUN) linux $(PKG_FLAGS) -bin $(LINUX_BIN) -out $(DIST) $(if $(LLAMA_DIR),-llama $(LLAMA_DIR)) -formats deb,rpm,tar

package-deb package-rpm package-tar: package-%: package-deps $(LINUX_BIN) $(PKG_TOOL)
	$(PKG_RUN) linux $(PKG_FLAGS) -bin $(LINUX_BIN) -out $(DIST) $(if $(LLAMA_DIR),-llama $(LLAMA_DIR)) -formats $*

# The Windows program: cross-compiled with mingw-w64, a GUI-subsystem
# executable (no console window behind the tray) with the icon, version
# information and manifest linked in from the resource object.
$(WIN_EXE): package-deps $(PKG_TOOL)
	$(PKG_RUN) windows-res $(PKG_FLAGS) -out $(WIN_DIR)
	cd $(WIN_DIR) && $(WINDRES) -O coff -i potluck.rc -o potluck-res.o
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=$(WIN_CC) $(GO) build \
		-ldflags "$(PKG_LDFLAGS) -H windowsgui -linkmode=external -extldflags=$(abspath $(WIN_DIR)/potluck-res.o)" -o $@ .
	@$(WIN_SIGN) $@

package-windows: $(WIN_EXE)
	$(PKG_RUN) windows-nsis $(PKG_FLAGS) -out $(WIN_DIR)
	makensis -V2 -NOCD -DDEFINES=$(abspath $(WIN_DIR)/defines.nsh) -DAPP_EXE=$(abspath $(WIN_EXE)) \
		-DAPP_ICON=$(abspath $(WIN_DIR)/potluck.ico) -DOUTFILE=$(abspath $(WIN_SETUP)) -DLICENSE=$(abspath LICENSE) \
		$(if $(LLAMA_DIR_WINDOWS),-DLLAMA_DIR=$(abspath $(LLAMA_DIR_WINDOWS))) \
		$(if $(WINDOWS_SIGN_PFX),"-DSIGN=$(WIN_SIGN)") packaging/windows/potluck.nsi
	@[ -n "$(WINDOWS_SIGN_PFX)" ] || echo "package-windows: WINDOWS_SIGN_PFX not set, $(WIN_SETUP) is unsigned"

# package-macos runs on a Mac with Go and the Xcode command-line tools: it
# builds dist/Potluck.app with fyne (FyneApp.toml gives its name, id, icon
# and version; fyne's bump of the build number there is undone) and a .dmg
# of it. It cannot be built on Linux.
FYNE_TOOL ?= $(GO) run fyne.io/tools/cmd/fyne@v1.7.4
MAC_BIN   := $(DIST)/build/darwin/potluck

package-macos:
	@[ "$$(uname -s)" = Darwin ] || { echo "package-macos: macOS packages are built on a Mac (see README, Install)"; exit 2; }
	$(GO) build -ldflags "$(PKG_LDFLAGS)" -o $(MAC_BIN) .
	cp FyneApp.toml $(DIST)/build/FyneApp.toml.orig
	$(FYNE_TOOL) package -os darwin --release --executable $(MAC_BIN) --app-version $(PKG_VERSION); \
		rc=$$?; cp $(DIST)/build/FyneApp.toml.orig FyneApp.toml; exit $$rc
	rm -rf $(DIST)/Potluck.app && mv Potluck.app $(DIST)/
	$(if $(LLAMA_DIR),cp -R $(LLAMA_DIR) $(DIST)/Potluck.app/Contents/MacOS/llama)
	hdiutil create -volname Potluck -srcfolder $(DIST)/Potluck.app -ov -format UDZO $(DIST)/potluck-$(PKG_VERSION)-macos.dmg

test-package: package
	sh packaging/test-package.sh $(DIST) $(PKG_VERSION)

package-clean:
	rm -rf $(DIST)

ifeq ($(_pkg_default_goal),)
.DEFAULT_GOAL :=
endif
