# announce — build, test and CI targets. `make test` is what CI runs (.ci/run).

GO       ?= go
GOFMT    ?= gofmt
FUZZTIME ?= 30s

# Go may live in /usr/local/go/bin without being on PATH (fresh machines, CI).
export PATH := $(PATH):/usr/local/go/bin

.PHONY: run build test test-deps fuzz bench lint bench-scale bench-nodes

## run: the server on its embedded default store
run:
	$(GO) run . serve

## build: the binary in bin/announce
build:
	$(GO) build -o bin/announce .

## test-deps: install redis-server and chromium if missing (root + apt-get)
test-deps:
	bash scripts/test-deps.sh

## test: deps, vet, the release builds (make release), then every test with the race detector
test: test-deps release
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 40m ./...
	node --test clients/js/test/*.test.mjs

## fuzz: each Fuzz* target of each package for FUZZTIME (one at a time, as go test -fuzz needs)
fuzz:
	@set -e; \
	pkgs=$$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); \
	for pkg in $$pkgs; do \
		list=$$($(GO) test -list '^Fuzz' $$pkg); \
		for target in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## bench: every benchmark, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## lint: gofmt must have nothing to say, and go vet must pass
lint:
	@out=$$($(GOFMT) -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench-cli: the load generator against a real server: builds bin/announce, then for
## each of `announce bench fanout` and `announce bench idle` over ws, sse and poll starts a
## fresh `announce serve --memory` on BENCH_LISTEN (so memory figures start clean), runs
## the scenario and stops the server. `make bench` runs it before the Go benchmarks.
BENCH_LISTEN ?= 127.0.0.1:18000
BENCH_N      ?= 1000
BENCH_FANOUT ?= -n $(BENCH_N) --messages 100 --rate 20
BENCH_IDLE   ?= -n $(BENCH_N) --hold 3s
.PHONY: bench-cli
bench-cli: build
	@status=0; server=; \
	trap 'if [ -n "$$server" ]; then kill $$server; fi' EXIT INT TERM; \
	for run in "fanout ws" "fanout sse" "fanout poll" "idle ws" "idle sse" "idle poll"; do \
		set -- $$run; \
		if [ $$1 = fanout ]; then args="$(BENCH_FANOUT)"; else args="$(BENCH_IDLE)"; fi; \
		echo "== announce bench $$1 --transport $$2 $$args"; \
		bin/announce serve --memory --listen $(BENCH_LISTEN) --log-level error & server=$$!; \
		bin/announce bench $$1 --server http://$(BENCH_LISTEN) --transport $$2 $$args || status=1; \
		kill $$server; wait $$server || status=1; server=; \
	done; \
	exit $$status

bench: bench-cli

## bench-scale: every target scenario of the performance issue (idle memory per
## observer, fan-out latency, throughput and server CPU per delivery, cursor
## long-polls, publishes/s on the embedded store), announce and, when nginx-light
## and libnginx-mod-nchan are installed, nginx+nchan (docs/nchan.conf) in the
## same run; prints each figure next to its target. See docs/performance.md.
bench-scale: build
	bash scripts/bench-scale.sh

## bench-nodes: 100,000 WebSocket observers across 6 announce nodes on one Redis
## (redis-server and the nodes started on free loopback ports, 6 load-generator
## processes): idle RSS and goroutines per observer, then fan-out (one process
## publishes, the others observe only): accepted rate, p99, missed. ~3 minutes;
## sizes: NODES, NODES_N, PROCS, NODES_MSGS, NODES_RATE. See docs/performance.md.
bench-nodes: build
	bash scripts/bench-nodes.sh

## chaos: the chaos tests of the Redis mode (internal/chaos): 3 announce nodes, publishers and
## observers of every transport, faults at random for CHAOS_DURATION each, then a ledger check;
## prints faults injected, acknowledged, lost, duplicated, reordered. TestChaos: one Redis (kill -9
## of a node, Redis restart, a node's Redis link paused or cut); TestChaosSentinel: Sentinel (kill
## -9 of a node, SENTINEL FAILOVER, kill -9 of the master). `make test` runs each for 90 seconds.
CHAOS_DURATION ?= 10m
.PHONY: chaos
chaos: test-deps
	ANNOUNCE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -timeout 0 -run '^TestChaos' -v ./internal/chaos/

## release: static binaries (CGO_ENABLED=0) for RELEASE_PLATFORMS in dist/
## (announce-OS-ARCH, .exe on Windows) with dist/SHA256SUMS; the version and
## commit are linked in (VERSION, COMMIT: from git unless given), and the
## linux/amd64 binary's `announce version` is checked when this machine runs it.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64 windows/amd64
RELEASE_LDFLAGS = -s -w -X github.com/announce/announce/internal/cli.version=$(VERSION) -X github.com/announce/announce/internal/cli.commit=$(COMMIT)
.PHONY: release
release:
	@rm -rf dist && mkdir -p dist
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; if [ $$os = windows ]; then ext=.exe; fi; \
		echo "== dist/announce-$$os-$$arch$$ext"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(RELEASE_LDFLAGS)" \
			-o dist/announce-$$os-$$arch$$ext . ; \
	done
	@cd dist && if command -v sha256sum >/dev/null; then sha256sum announce-* > SHA256SUMS; \
		else shasum -a 256 announce-* > SHA256SUMS; fi
	@cat dist/SHA256SUMS
	@if [ "$$($(GO) env GOHOSTOS)/$$($(GO) env GOHOSTARCH)" = linux/amd64 ] && [ -x dist/announce-linux-amd64 ]; then \
		out=$$(dist/announce-linux-amd64 version); echo "dist/announce-linux-amd64 version: $$out"; \
		case "$$out" in "announce $(VERSION) (commit $(COMMIT), go"*) ;; \
			*) echo "release: want 'announce $(VERSION) (commit $(COMMIT), go...)'"; exit 1;; esac; \
		$(GO) version -m dist/announce-linux-amd64 | grep -q 'CGO_ENABLED=0' || { echo "release: not a static build"; exit 1; }; \
	fi

.PHONY: abuse soak

## abuse: replay hostile-client attacks against fresh servers and print the table (scripts/abuse.sh)
abuse:
	bash scripts/abuse.sh

## soak: 30 minutes of connect/disconnect churn at ~1,000/s over all transports, RSS and goroutines printed each minute (CI runs 2 minutes)
soak:
	ANNOUNCE_SOAK=30m $(GO) test -count=1 -timeout 40m -run '^TestChurnSoak$$' -v ./internal/serve/
