# Potluck: `make run` starts a node serving a small model, `make test` runs
# every test against real llama.cpp. Both install what is missing first.

GO        ?= go
BIN       ?= bin/potluck
SHARED    ?= ../shared/models/stories260K.gguf
TINY      ?= bin/tiny-llama.gguf
API       ?= 127.0.0.1:8080
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS   := -X github.com/potluck-gpu/potluck/app.Version=$(VERSION)
TESTFLAGS ?= -timeout 20m -count=1
FUZZTIME  ?= 1m

export CGO_ENABLED := 1
export CGO_CFLAGS  ?= -O2 -g -Wno-deprecated-declarations

# Debian packages the build and the tests need; mesa-vulkan-drivers gives
# the engine's tests a software Vulkan device (lavapipe).
# The last line is for the tray's end-to-end test: a virtual display, a
# session bus and a StatusNotifier host; chromium is for the browser test.
DEB_PACKAGES := gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev \
	libxinerama-dev libxi-dev libxxf86vm-dev pci.ids debian-archive-keyring iproute2 nftables mesa-vulkan-drivers \
	xvfb dbus haskell-gtk-sni-tray-utils xdotool imagemagick x11-utils xauth chromium

MODEL ?= $(if $(wildcard $(SHARED)),$(SHARED),$(TINY))

SDK_DIR := server/testdata/sdk

.PHONY: all deps build llama llama-builds llama-build-linux run test test-mdns fuzz gpu-check lint tidy clean sdk

all: build

include lab.mk
include bench.mk
include windows.mk

# install-debs installs the Debian packages of $(1) that are missing, when
# root; otherwise it prints the apt-get line to run and fails.
define install-debs
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "Missing packages. Run:  sudo apt-get install -y $$missing"; exit 1; \
		fi; \
	fi
endef

deps:
	$(call install-debs,$(DEB_PACKAGES))
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl/"; exit 1; }
	@command -v npm >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq nodejs npm >/dev/null; \
		else echo "Node.js is needed for the SDK tests. Run:  sudo apt-get install -y nodejs npm"; exit 1; fi; }

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# llama provisions llama.cpp (a re-run only verifies): the version this
# Potluck pins, with the Vulkan backend the lavapipe tests use. Should
# Debian's sid have moved past it, and the release archives be out of reach,
# Debian's own version serves the tests.
llama: build
	$(BIN) engine install --backend vulkan || $(BIN) engine install --backend vulkan --version debian

# llama-builds builds llama.cpp's llama-server and RPC worker for Linux and
# for Windows (mingw-w64) from the source node-llama-cpp ships: the tests
# serve them as release archives, and run the Windows ones under Wine. The
# builds and ccache's cache stay in ~/.cache/potluck-dev (POTLUCK_DEV_CACHE):
# about 15 minutes cold on two cores, seconds after.
LLAMA_BUILD_DEBS := cmake ccache gcc-mingw-w64-x86-64-posix g++-mingw-w64-x86-64-posix

llama-builds: deps
	$(call install-debs,$(LLAMA_BUILD_DEBS))
	scripts/llama-build.sh linux windows

# llama-build-linux is the Linux half, which the package tests need.
llama-build-linux: deps
	$(call install-debs,$(LLAMA_BUILD_DEBS))
	scripts/llama-build.sh linux

$(TINY):
	@mkdir -p $(dir $(TINY))
	$(GO) run ./engine/ggufgen/cmd/tiny-llama $(TINY)

run: llama $(if $(wildcard $(SHARED)),,$(TINY))
	@echo "Serving $(MODEL) on http://$(API)/v1 -- try:"
	@echo "  curl -s http://$(API)/v1/completions -H 'Content-Type: application/json' -d '{\"prompt\":\"Once upon a time\",\"max_tokens\":32}'"
	$(BIN) run --model $(MODEL) --api $(API) --ctx-size 512

# sdk installs the official clients the API tests drive (OpenAI, Anthropic,
# Ollama) at the versions package.json pins, again when it changes.
sdk: deps
	@node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)' || { echo "The SDK tests need Node.js 20 or newer (node $$(node --version) is installed)"; exit 1; }
	@cmp -s $(SDK_DIR)/package.json $(SDK_DIR)/node_modules/.potluck-package.json || { \
		cd $(SDK_DIR) && npm install --no-audit --no-fund --no-package-lock --loglevel=error && \
		cp package.json node_modules/.potluck-package.json; }

# test runs every package's tests, then the namespace lab on its own so its
# timing-sensitive scenarios do not share the two cores with the rest, then
# the Windows program under Wine. Meanwhile, what only the Windows harness
# needs (the Wine chroot, the Windows llama.cpp, the Windows program's
# compiled packages) is prepared at the lowest CPU priority, in the time the
# tests leave idle; test-windows waits for it and finishes what is left.
test: llama llama-build-linux sdk windows-prep-deps
	@if [ "$$(id -u)" = 0 ]; then mkdir -p bin; echo "test: preparing the Windows harness in the background (bin/windows-prep.log)"; \
		nice -n 19 $(MAKE) --no-print-directory windows-prep >bin/windows-prep.log 2>&1 & fi
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /lab$$)
	$(MAKE) --no-print-directory test-mdns test-lab test-windows

# test-mdns runs the mesh's LAN-discovery tests inside throwaway network
# namespaces (root only): multicast never leaves them.
test-mdns:
	@if [ "$$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then echo "test-mdns: skipped (needs root and unshare)"; exit 0; fi; \
	unshare -n sh -c 'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && NETMESH_TEST_MDNS=multicast $(GO) test -count=1 -run MDNS ./netmesh' && \
	unshare -n sh -c 'ip link set lo up && NETMESH_TEST_MDNS=none $(GO) test -count=1 -run MDNS ./netmesh'

# fuzz runs every fuzz target in the repository for FUZZTIME each, one after
# another: go test fuzzes one target at a time. A failing input is written to
# the package's testdata/fuzz, where plain go test replays it from then on.
# Go 1.26 may fail a target with a bare "context deadline exceeded" when
# FUZZTIME runs out under load (go.dev/issue/75804, fixed in Go 1.27); with
# no failing input written, that is not a finding.
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log $$log.rc' EXIT; \
	for pkg in $$(grep -rl --include='*_test.go' --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		names=$$($(GO) test -list '^Fuzz' $$pkg) || exit 1; \
		for name in $$(echo "$$names" | grep '^Fuzz'); do \
			echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
			( $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1; echo $$? >$$log.rc ) | tee $$log; \
			[ "$$(cat $$log.rc)" = 0 ] && continue; \
			if grep -qx '    context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "fuzz: $$name: Go's fuzztime race (go.dev/issue/75804), not a finding"; \
			else exit 1; fi; \
		done; \
	done

# gpu-check compares NVML with nvidia-smi on a machine with an NVIDIA GPU.
gpu-check:
	hw/gpucheck.sh

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

tidy:
	$(GO) mod tidy

clean:
	rm -rf bin

include packaging.mk
