# stage1-kvm: `make` builds build/stage1-kvm.aci; `make test` runs every test;
# `make demo` runs a pod in a VM. Each installs missing Debian packages first.

SHELL   := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
VERSION ?= 0.1.0
BUILD   := $(CURDIR)/build
GOBUILD := CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"

# Entry points and guest programs: static, so they run on any host and in
# the guest without a libc.
ENTRYPOINTS := init
BINS := $(addprefix $(BUILD)/bin/,$(ENTRYPOINTS) stage1-guest rootfs-builder)

.PHONY: all deps test unit-test e2e-test lint bench demo clean FORCE

all: deps $(BUILD)/stage1-kvm.aci

deps:
	@tools/deps.sh

$(BUILD)/bin/init: FORCE
	$(GOBUILD) -o $@ ./init
$(BUILD)/bin/stage1-guest: FORCE
	$(GOBUILD) -o $@ ./stage1/guest/cmd/stage1-guest
$(BUILD)/bin/rootfs-builder: FORCE
	$(GOBUILD) -o $@ ./rootfs-builder

# The kernel is cached outside the repo, keyed by its inputs (kernel/build.sh).
$(BUILD)/vmlinux: FORCE
	kernel/build.sh $@

$(BUILD)/guest.img: $(BUILD)/bin/rootfs-builder $(BUILD)/bin/stage1-guest
	$(BUILD)/bin/rootfs-builder image -o $@ $(BUILD)/bin/stage1-guest

$(BUILD)/stage1-kvm.aci: $(BINS) $(BUILD)/vmlinux $(BUILD)/guest.img
	$(BUILD)/bin/rootfs-builder aci -o $@ -version $(VERSION) \
		-kernel $(BUILD)/vmlinux -image $(BUILD)/guest.img -bin $(BUILD)/bin

test: all lint unit-test e2e-test

unit-test:
	go test ./init/... ./stage1/... ./rootfs-builder/...

# End-to-end tests boot real VMs from the built ACI (TCG on these hosts).
e2e-test:
	STAGE1_BUILD_DIR=$(BUILD) go test -count=1 -timeout 40m -v ./tests/... 2>&1 | tee $(BUILD)/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; \
		exit $${PIPESTATUS[0]}

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting" >&2; exit 1; }
	go vet ./...

clean:
	rm -rf $(BUILD)

FORCE:
