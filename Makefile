# faultlab: reproducible fault injection for TCP proxies.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
# Debian packages the lab drives (real daemons, real kernel tools used as cross-checks in tests).
DEB_PKGS := haproxy nginx-light mariadb-server iproute2 nftables iptables tcpdump libpcap-dev tshark mmdebstrap
# One package binary at a time: the scenarios measure rates on 2 cores and must not share them with other tests.
# -count=1: never a cached result; the privileged tests measure the machine and the installed daemons.
TEST_FLAGS ?= -p 1 -count=1 -timeout 60m
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/faultlab/faultlab/harness/runner.Version=$(VERSION)

.PHONY: all deps build tengine reload test test-images vm-image test-vm test-short bench bench-memory bench-peers stability fuzz clean lab-clean report-chromium report-screenshot nightly
all: build

include Makefile.images

## deps: install the Debian packages the lab needs (idempotent, quiet when present)
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null; \
	fi

## tengine: build Tengine (with its upstream check module) from its release tarball, once, into build/tengine/,
## linked as /usr/local/sbin/tengine; TENGINE_SRC is the tarball (a path or the upstream release URL)
TENGINE_SRC ?= ../shared/vendor/tengine-3.1.0.tar.gz
tengine:
	@TENGINE_SRC=$(TENGINE_SRC) bash scripts/tengine.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/faultlab ./cmd/faultlab

## reload: the main job: run the Reload scenario end to end and print its table
reload: deps build
	./bin/faultlab run scenarios/reload.yaml

## reload-sweep: every reload mitigation at one reload every 5 s, 1 s, 250 ms and 100 ms and at 1,000 and 3,000
## new connections/s (scenarios/reload-sweep-*.yaml, long mode, about 26 minutes); prints each interval's table
## and ranking and writes them to runs/reload-sweep/<interval>.md (docs/reload.md shows them)
reload-sweep: deps build
	mkdir -p runs/reload-sweep
	FAULTLAB_LONG=1 FAULTLAB_SWEEP_OUT=$(CURDIR)/runs/reload-sweep $(GO) test -count=1 ./scenarios -run TestReloadSweep -v -timeout 2h

## test: everything (privileged tests need root), one package at a time; the docker backend's tests need
## the lab's images, built offline once (`make images`, a few minutes) when a Docker engine answers
test: deps tengine test-images
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

## vm-image: the qemu guest of harness/vm (Debian's own kernel, which has sch_netem, and the lab's daemons),
## built offline from this machine's apt sources by images/vm.sh (idempotent; FORCE=1 rebuilds)
VM_SUITE ?= bookworm
vm-image:
	@SUITE=$(VM_SUITE) OUT=$(IMAGES_OUT) bash images/vm.sh

## test-vm: the nightly tests on another kernel (FAULTLAB_VM=1): the netem engine's tests inside the guest,
## Debian's own kernel with sch_netem (TestNetemInGuest), the syn-hold mitigation's plug engine there (sch_plug,
## TestSynHoldInGuest), and the exhaustion family's sysctl semantics on this
## kernel, Debian 12's 6.1 and Debian 13's 6.12 (TestKernels; FAULTLAB_KERNELS_OUT=FILE writes its table); about
## 6 minutes once the guests are built (FAULTLAB_REQUIRE_PRIVILEGED=1: asked for, these tests fail rather than
## skip without root or the guests)
test-vm: deps vm-image
	@SUITE=trixie OUT=$(IMAGES_OUT) bash images/vm.sh
	FAULTLAB_VM=1 FAULTLAB_REQUIRE_PRIVILEGED=1 $(GO) test -p 1 -count=1 -timeout 60m -v -run '^(TestNetemInGuest|TestSynHoldInGuest|TestKernels)$$' \
		./harness/impair ./harness/faults ./scenarios

test-images:
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory images; \
	else echo "make test: no Docker engine answers: docker-backend tests will skip"; fi

test-short:
	$(GO) test -short ./...

## bench: benchmarks (rates, setup times, engine accuracy)
bench: deps
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x ./...

## bench-memory: peak RSS of a run at 100,000 and 1,000,000 attempts (memory flat in run length)
bench-memory: deps build
	bash bench/memory.sh

## bench-peers: the lab's parts beside the tools users would pick instead, in one run on this machine: one table
## of same-run ratios (docs/performance.md); installs the peers pinned (bench/peers/install.sh), holds the heavy
## lock, about 10 minutes; raw outputs, profiles and the table under runs/bench-peers/
bench-peers: deps build
	bash bench/peers/install.sh
	$(GO) build -o bin/bench-peers ./bench/peers/cmd/bench-peers
	flock /tmp/faultlab-heavy.lock ./bin/bench-peers $(BENCH_PEERS_FLAGS)

## stability: rerun the quick Reload and Exhaustion scenarios N times (seeds 1..N, default 10; about 7 minutes a
## round) and print how often each verdict came out the same, and the port budget's prediction errors
N ?= 10
stability: deps build
	$(GO) run ./bench/stability -n $(N) -out runs/stability scenarios/reload.yaml scenarios/exhaustion.yaml

## fuzz: the nightly fuzzing campaign: the scenario parser and the pcap analyser, FUZZTIME each (default 10m).
## New crashers land in the packages' testdata/fuzz directories; after each campaign the corpus the fuzzer
## grew (in the Go cache) is copied there too, so `go test` replays it as regression seeds and the next
## campaign starts from it. Commit what it adds.
FUZZTIME ?= 10m
FUZZCACHE = $(shell $(GO) env GOCACHE)/fuzz/github.com/faultlab/faultlab
fuzz:
	$(GO) test ./harness/spec -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	mkdir -p harness/spec/testdata/fuzz/FuzzParse
	cp -n $(FUZZCACHE)/harness/spec/FuzzParse/* harness/spec/testdata/fuzz/FuzzParse/ 2>/dev/null || true
	$(GO) test ./capture -run '^$$' -fuzz '^FuzzAnalyse$$' -fuzztime $(FUZZTIME)
	mkdir -p capture/testdata/fuzz/FuzzAnalyse
	cp -n $(FUZZCACHE)/capture/FuzzAnalyse/* capture/testdata/fuzz/FuzzAnalyse/ 2>/dev/null || true

## lab-clean: remove what crashed runs left (namespaces, processes)
lab-clean: build
	./bin/faultlab clean

clean:
	rm -rf bin

## report-screenshot: open the HTML report of a run directory (RUN=runs/reload/<id>; default: the newest run
## of scenarios/reload.yaml under runs/) in headless Chromium (Debian's chromium package, installed here when
## missing), check that every plot loaded, and save a PNG screenshot (SHOT, default docs/img/report-reload.png)
RUN ?=
SHOT ?= docs/img/report-reload.png
report-chromium:
	@command -v chromium >/dev/null || { echo "make report-chromium: installing chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium fonts-liberation >/dev/null; }
report-screenshot: build report-chromium
	bash scripts/report-screenshot.sh "$(RUN)" "$(SHOT)"

## nightly: the nightly regression (scripts/nightly.sh): every scenario in long mode, compared with
## results/baselines/, HTML reports, JUnit and failing cells' pcaps under NIGHTLY_OUT (default nightly-out)
nightly: deps build tengine
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory images && \
		$(MAKE) --no-print-directory images SUITE=trixie IMAGE_ROLES=haproxy; fi # reload-haproxy30.yaml
	bash scripts/nightly.sh
