# make bench: Potluck's performance figures, each beside an anchor measured in
# the same run, as one table; the figures also go to bench/results.json.
# bench/README.md says what each figure measures. BENCHFLAGS passes flags to
# the program, e.g. BENCHFLAGS='-soak 60s' for the long soak.

BENCHFLAGS ?=

.PHONY: bench bench-windows-prep

bench: llama bench-windows-prep
	$(GO) run ./bench -potluck $(BIN) $(BENCHFLAGS)

# The windows section runs potluck.exe under Wine: as root, bench prepares
# what make test-windows would (the chroot, both llama.cpp builds, the
# Windows program). Elsewhere that section reports that it needs root.
bench-windows-prep:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory wine-setup llama-builds package-windows; fi
