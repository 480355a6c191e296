# stage1-kvm: `make` builds build/stage1-kvm.aci; `make test` runs every test;
# `make demo` runs a pod in a VM. Each installs missing Debian packages first.

SHELL   := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
VERSION ?= 0.1.0
BUILD   := $(CURDIR)/build
GOBUILD := CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"

# Entry points and guest programs: static, so they run on any host and in
# the guest without a libc.
ENTRYPOINTS := init enter gc stop
BINS := $(addprefix $(BUILD)/bin/,$(ENTRYPOINTS) jailer stage1-guest rootfs-builder templates)

.PHONY: all deps test unit-test fuzz fuzz-short e2e-test lint bench bench-density soak demo clean FORCE

all: deps $(BUILD)/stage1-kvm.aci

deps:
	@tools/deps.sh

$(BUILD)/bin/init: FORCE
	$(GOBUILD) -o $@ ./init
$(BUILD)/bin/enter: FORCE
	$(GOBUILD) -o $@ ./enter
$(BUILD)/bin/gc: FORCE
	$(GOBUILD) -o $@ ./gc
$(BUILD)/bin/stop: FORCE
	$(GOBUILD) -o $@ ./stop
$(BUILD)/bin/jailer: FORCE
	$(GOBUILD) -o $@ ./jailer
$(BUILD)/bin/stage1-guest: FORCE
	$(GOBUILD) -o $@ ./stage1-guest
$(BUILD)/bin/rootfs-builder: FORCE
	$(GOBUILD) -o $@ ./rootfs-builder
$(BUILD)/bin/templates: FORCE
	$(GOBUILD) -o $@ ./templates

# CNI plugins for the pods' networks, from the containernetworking/plugins
# module pinned in go.mod (tool directives).
CNI_PLUGINS := github.com/containernetworking/plugins/plugins
NET_PLUGINS := $(addprefix $(CNI_PLUGINS)/main/,ptp bridge macvlan ipvlan loopback) \
	$(CNI_PLUGINS)/ipam/host-local $(CNI_PLUGINS)/meta/portmap
$(BUILD)/net-plugins: FORCE
	@mkdir -p $@
	$(GOBUILD) -o $@/ $(NET_PLUGINS)

# The kernel is cached outside the repo, keyed by its inputs (kernel/build.sh),
# which writes bzImage (booted by pods) and vmlinux (the same, uncompressed).
$(BUILD)/bzImage: FORCE
	kernel/build.sh $(BUILD)

# QEMU, built from Debian's source with our patches and device list
# (qemu/build.sh), cached outside the repo like the kernel.
$(BUILD)/qemu/qemu-system-x86_64: FORCE
	qemu/build.sh $(BUILD)/qemu

$(BUILD)/guest.img: $(BUILD)/bin/rootfs-builder $(BUILD)/bin/stage1-guest
	$(BUILD)/bin/rootfs-builder image -o $@ $(BUILD)/bin/stage1-guest

$(BUILD)/stage1-kvm.aci: $(BINS) $(BUILD)/bzImage $(BUILD)/guest.img $(BUILD)/net-plugins $(BUILD)/qemu/qemu-system-x86_64
	$(BUILD)/bin/rootfs-builder aci -o $@ -version $(VERSION) \
		-kernel $(BUILD)/bzImage -image $(BUILD)/guest.img -bin $(BUILD)/bin \
		-net-plugins $(BUILD)/net-plugins \
		-qemu $(BUILD)/qemu/qemu-system-x86_64

test: all lint unit-test fuzz-short e2e-test

unit-test:
	go test ./init/... ./enter/... ./gc/... ./stop/... ./jailer/... ./stage1-guest/... ./stage1/... ./rootfs-builder/... ./templates/... ./tests/harness/...

# Go's native fuzzing of what crosses a trust boundary: manifests into
# units and the QEMU command line, the guest's events and agent protocol,
# QEMU's listing of its mappings, run's command line (package:FuzzTarget;
# go fuzzes one target per run).
# fuzz runs each for FUZZTIME on every core; fuzz-short for FUZZ_SHORT_TIME,
# FUZZ_JOBS targets at a time on one core each. A failing input is written
# to the package's testdata/fuzz/<target>/, where go test keeps replaying it.
# fuzz-short counts executions (50000x: 3-15 s a target here) rather than
# time: Go 1.26's fuzzing coordinator can fail a run at the end of a timed
# -fuzztime with "context deadline exceeded" and no failing input
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZ_TARGETS := \
	./stage1/translate/units:FuzzGenerate \
	./stage1/translate/qemu:FuzzArgv \
	./stage1/contract:FuzzParseEvent \
	./stage1/contract:FuzzDecodeEnv \
	./stage1/contract:FuzzReadPodConfig \
	./stage1/agentproto:FuzzReadFrame \
	./stage1/agentproto:FuzzExec \
	./stage1/agentproto:FuzzServeConn \
	./stage1/host/runflags:FuzzParse \
	./stage1/host/hypervisor:FuzzCodeBufferRSS
FUZZTIME ?= 5m
FUZZ_SHORT_TIME ?= 50000x
FUZZ_JOBS ?= 2

fuzz:
	@failed=; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} ($${t%:*}, $(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $${t%:*} || failed="$$failed $${t#*:}"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

fuzz-short:
	@mkdir -p $(BUILD)/fuzz
	@printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -n 1 sh -c ' \
		pkg=$${0%:*}; name=$${0#*:}; log=$(BUILD)/fuzz/$$name.log; \
		if go test -run "^$$" -fuzz "^$$name\$$" -fuzztime $(FUZZ_SHORT_TIME) -parallel 1 $$pkg >$$log 2>&1; \
		then echo "fuzz $$name: ok ($$(grep -o "execs: [0-9]*" $$log | tail -1))"; \
		else echo "fuzz $$name: FAILED ($$log)"; grep -v "^fuzz: elapsed" $$log; exit 1; fi'

# End-to-end tests boot real VMs from the built ACI (TCG on these hosts).
# Pods start from templates (the default), kept in a store of the run's
# own; then the lifecycle tests, and the memory bound, again with every pod
# booted cold (guest RAM anonymous memory, not a template's file), and the
# guest clock (a cold boot is where its calibration once failed).
COLD_TESTS := ^(TestRunExitCodes|TestStdoutStderrSeparate|TestEnter|TestStopGraceful|TestGCAfterExit|TestNetDefault|TestVolumes|TestEndsAtOnce|TestVMMemoryBounded|TestGuestClock)$$
e2e-test:
	@tpl=$$(mktemp -d /tmp/tpl-XXXXXX); trap 'rm -rf $$tpl' EXIT; \
	STAGE1_KVM_TEMPLATE_DIR=$$tpl STAGE1_BUILD_DIR=$(BUILD) go test -count=1 -timeout 40m -v ./tests/... 2>&1 | tee $(BUILD)/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; \
	rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || exit $$rc; \
	echo "--- the lifecycle tests again, cold (STAGE1_KVM_TEMPLATE=off)"; \
	STAGE1_KVM_TEMPLATE=off STAGE1_BUILD_DIR=$(BUILD) go test -count=1 -timeout 20m -v -run '$(COLD_TESTS)' ./tests/ 2>&1 | tee $(BUILD)/e2e-cold.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; \
	exit $${PIPESTATUS[0]}

# A real pod in a VM, through the stage0 stand-in.
demo: all
	STAGE1_BUILD_DIR=$(BUILD) go test -count=1 -v -run '^TestDemo$$' ./tests/ 2>&1 | grep -vE '^(=== RUN|--- |PASS|ok)'; exit $${PIPESTATUS[0]}

# Benchmarks (docs/benchmarks.md); BENCH_RUNS=N repeats (median reported).
# 200 run-and-gc cycles (SOAK_CYCLES), then the host must be as before.
SOAK_CYCLES ?= 200
soak: all
	STAGE1_BUILD_DIR=$(BUILD) STAGE1_SOAK_CYCLES=$(SOAK_CYCLES) go test -count=1 -run '^TestSoak$$' -timeout 120m -v ./tests/ 2>&1 | tee $(BUILD)/soak.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|_test.go'

bench: all
	STAGE1_BUILD_DIR=$(BUILD) go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m -v ./tests/ 2>&1 | tee $(BUILD)/bench.log | grep -vE '^\s*\[ *[0-9]'

# Idle pods at once (docs/benchmarks.md): DENSITY_N, a comma-separated list
# of pod counts; DENSITY_NET, each pod's --net.
DENSITY_N ?= 10
DENSITY_NET ?= none
bench-density: all
	STAGE1_BUILD_DIR=$(BUILD) BENCH_DENSITY_N=$(DENSITY_N) BENCH_DENSITY_NET=$(DENSITY_NET) go test -count=1 -run '^$$' -bench '^BenchmarkDensity$$' -benchtime 1x -timeout 180m -v ./tests/ 2>&1 | tee $(BUILD)/bench-density.log | grep -vE '^\s*\[ *[0-9]'

STATICCHECK := $(BUILD)/tools/staticcheck

$(STATICCHECK):
	GOBIN=$(BUILD)/tools go install honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting" >&2; exit 1; }
	go vet ./...
	$(STATICCHECK) ./...

clean:
	rm -rf $(BUILD)

FORCE:
