# The home lab in a box: lab/ runs `potluck run` nodes as machines of a
# LAN, one network namespace each, and kills, pauses, unplugs and slows them
# while it counts what their users see. Root and iproute2 are needed; the
# traffic stays inside the lab's own namespaces (10.77.0.0/24 on a bridge in a
# namespace of its own).
#
# Include this file after the main Makefile's first target:
#   include lab.mk
#
#   make lab        the scenarios, verbose, then the measured figures (LAB lines)
#   make test-lab   the scenarios as CI runs them
#   make soak       the real-size scenario with a long steady run (SOAK=10m) and
#                   a worker killed in the middle of the load
#   make stress     the mesh scenarios STRESS_RUNS times each (30), each run in
#                   a lab of its own: joins with a LAN and an internet invite,
#                   STRESS_CYCLES cuts and heals a run (4) under disk
#                   writeback (STRESS_WRITEBACK_MB),
#                   a member frozen for a minute, relay loss, hole punching
#                   and a restart of all; prints the
#                   distribution of every figure and the failed runs with
#                   their logs (bin/stress.log); then, once each, a
#                   server's link flapping every 5 s for STRESS_FLAP (5m;
#                   0 leaves it out) under load, and a 50-member run
#                   (STRESS_MEMBERS50=0 leaves it out)

GO            ?= go
LAB_TESTFLAGS ?= -timeout 25m
LAB_RUN       ?= ^TestLab
LAB_LOG       ?= bin/lab.log

SOAK          ?= 10m
STRESS_RUNS   ?= 30
STRESS_WRITEBACK_MB ?= 1024
STRESS_CYCLES ?= 4
STRESS_MEMBERS50 ?= 1
STRESS_FLAP   ?= 5m

.PHONY: lab test-lab soak stress

lab: llama
	@mkdir -p $(dir $(LAB_LOG))
	@{ $(GO) test $(LAB_TESTFLAGS) -count=1 -p 1 -v -run '$(LAB_RUN)' ./lab/; echo $$? > $(LAB_LOG).status; } 2>&1 | tee $(LAB_LOG)
	@echo; echo "Measured (also in $(LAB_LOG)):"; grep -o 'LAB .*' $(LAB_LOG) || true
	@exit $$(cat $(LAB_LOG).status)

test-lab: llama
	$(GO) test $(LAB_TESTFLAGS) -count=1 -p 1 -run '$(LAB_RUN)' ./lab/

soak: llama
	@mkdir -p bin
	@{ POTLUCK_TEST_SOAK=$(SOAK) $(GO) test -timeout 90m -count=1 -p 1 -v -run '^TestLabRealSize$$' ./lab/; echo $$? > bin/soak.status; } 2>&1 | tee bin/soak.log
	@echo; echo "Measured (also in bin/soak.log):"; grep -o 'LAB .*' bin/soak.log || true
	@exit $$(cat bin/soak.status)

stress: llama
	@mkdir -p bin
	@{ STRESS_RUNS=$(STRESS_RUNS) STRESS_WRITEBACK_MB=$(STRESS_WRITEBACK_MB) STRESS_CYCLES=$(STRESS_CYCLES) STRESS_MEMBERS50=$(STRESS_MEMBERS50) STRESS_FLAP=$(STRESS_FLAP) $(GO) test -timeout 12h -count=1 -p 1 -v -run '^TestStressMesh$$' ./lab/; echo $$? > bin/stress.status; } 2>&1 | tee bin/stress.log
	@echo; grep '^STRESS' bin/stress.log || true
	@exit $$(cat bin/stress.status)
