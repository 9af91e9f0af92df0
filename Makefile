# stargzfs — every target does its own set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PREFIX ?= /usr/local
TS_SOURCES := $(shell find src test bench scripts -name '*.ts' 2>/dev/null) tsconfig.json
TEST_TIMEOUT ?= 600000

.PHONY: setup system-deps deps build test soak fuzz lint bench bench-steady bench-service bench-hello demo install uninstall clean

## setup: install Debian packages and npm dependencies, build everything
setup: system-deps deps build

system-deps:
	@scripts/install-system-deps.sh

deps: node_modules/.stamp

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## build: compile TypeScript to dist/, bundle the CLI (dist/bundle/stargzfs, stargzfs.mjs), the FUSE addon to build/Release/
build: dist/.stamp build/Release/stargzfs_fuse.node

build/Release/stargzfs_fuse.node: binding.gyp $(wildcard native/*.cc native/*.c) node_modules/.stamp
	scripts/build-native.sh

dist/.stamp: node_modules/.stamp $(TS_SOURCES) $(shell find src -name '*.proto') src/cli/stargzfs.sh scripts/bundle.sh
	npx tsc -p tsconfig.json
	chmod +x dist/src/cli/main.js
	rm -rf dist/src/snapshotter/proto && cp -r src/snapshotter/proto dist/src/snapshotter/proto
	scripts/bundle.sh
	@touch $@

## test: set up if needed, then run every test (unit, fixtures, end-to-end)
test: setup
	node --test --test-concurrency=2 --test-timeout=$(TEST_TIMEOUT) dist/test/

## soak: faults under load for minutes (SOAK_SECONDS, SOAK_MB) and the kill loop (KILLS); curve in bench/results/soak-*.json
soak: setup
	@mkdir -p bench/results
	SOAK_SECONDS=$${SOAK_SECONDS:-300} SOAK_MB=$${SOAK_MB:-192} SOAK_JSON=bench/results/soak-$$(date +%F).json node --test --test-timeout=3600000 dist/test/e2e/soak.test.js
	KILLS=$${KILLS:-50} node --test --test-timeout=3600000 dist/test/e2e/crash-consistency.test.js

## fuzz: every fuzz target (test/fuzz/) with FUZZ_RUNS inputs each (default a million; make test runs 5,000); prints inputs and time per target
fuzz: setup
	@for f in dist/test/fuzz/*.fuzz.test.js; do \
	  start=$$(date +%s); \
	  out=$$(FUZZ_RUNS=$${FUZZ_RUNS:-1000000} node --test --test-timeout=0 $$f 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "$$out" | grep -E '^ *(not )?ok |# fuzz:'; \
	  echo "$$(basename $$f .fuzz.test.js): $$(echo "$$out" | awk '/# fuzz: [0-9]+ inputs/ { n += $$3 } END { print n }') inputs in $$(( $$(date +%s) - start )) s"; \
	done

## lint: eslint (incl. the folder import rules) and the type checker
lint: deps
	npx eslint .
	npx tsc -p tsconfig.json --noEmit

## bench: benchmarks with JSON results in bench/results/
bench: setup
	@scripts/install-bench-deps.sh
	@mkdir -p bench/results
	node dist/bench/toc-index.bench.js | tee bench/results/toc-index.json
	node dist/bench/micro/decode.bench.js | tee bench/results/decode.json
	node dist/bench/ranged-get.bench.js | tee bench/results/ranged-get.json
	node dist/bench/micro/cache-verify.bench.js | tee bench/results/cache-verify.json
	node dist/bench/micro/delayed-ack.bench.js | tee bench/results/delayed-ack.json
	node dist/bench/read-path.bench.js | tee bench/results/read-path.json
	node dist/bench/faults.bench.js | tee bench/results/faults.json
	node dist/bench/convert.bench.js | tee bench/results/convert.json
	BENCH_REPORT=bench/report node dist/bench/hello.bench.js | tee bench/results/hello-$$(date +%F).json
	node dist/bench/steady.bench.js | tee bench/results/steady.json
	node dist/bench/service.bench.js | tee bench/results/service.json
	node dist/bench/crash-survival.bench.js | tee bench/results/crash-survival.json
	bench/reference.sh

## bench-steady: steady state against the local disk, then beside the reference when its kit is set up
bench-steady: setup
	@mkdir -p bench/results
	node dist/bench/steady.bench.js | tee bench/results/steady.json
	bench/reference.sh

## bench-service: the service: RSS and descriptors per mounted layer (200 layers), mount latency with and without it
bench-service: setup
	@mkdir -p bench/results
	node dist/bench/service.bench.js | tee bench/results/service.json

## bench-hello: only the start-up benchmark (report in bench/report/hello.md)
bench-hello: setup
	@scripts/install-bench-deps.sh
	@mkdir -p bench/results
	BENCH_REPORT=bench/report node dist/bench/hello.bench.js | tee bench/results/hello-$$(date +%F).json

## demo: build a local image with our own writer and look inside it
demo: setup
	scripts/demo.sh

## install: put stargzfs on the PATH
install: setup
	install -d $(DESTDIR)$(PREFIX)/bin
	ln -sf $(CURDIR)/dist/bundle/stargzfs $(DESTDIR)$(PREFIX)/bin/stargzfs

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/stargzfs

clean:
	rm -rf dist build bench/results
