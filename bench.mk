# make bench: Potluck's performance figures, each beside an anchor measured in
# the same run, as one table; the figures also go to bench/results.json.
# bench/README.md says what each figure measures. BENCHFLAGS passes flags to
# the program, e.g. BENCHFLAGS='-soak 60s' for the long soak.

BENCHFLAGS ?=

.PHONY: bench

bench: llama
	$(GO) run ./bench -potluck $(BIN) $(BENCHFLAGS)
