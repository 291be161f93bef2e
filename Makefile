# patchbay's build and test entry points. `make test` is the one command CI
# runs: it builds what the tests need, then vets and tests everything.

CONSUL_VERSION := $(shell awk '$$1 == "github.com/hashicorp/consul" {print $$2; exit}' tools/consul/go.mod)

.PHONY: test lint dev build completions consul lb-servers browser deploy-check fuzz clean

test: bin/consul bin/nats-server lb-servers browser deploy-check bin/gotestsum
	go vet ./...
	$(MAKE) --no-print-directory lint
	bin/gotestsum --format pkgname --format-hide-empty-pkg -- -race ./...
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory chaos

# gotestsum (pinned by tools/gotestsum) runs go test and ends with one line
# of tests run, skipped and failed, after the output of each failed test and
# each skip's reason; it exits with go test's status.
bin/gotestsum: tools/gotestsum/go.mod tools/gotestsum/go.sum
	go -C tools/gotestsum build -o ../../bin/gotestsum gotest.tools/gotestsum

# golangci-lint (pinned by tools/golangci-lint) with .golangci.yml: the
# standard linters (errcheck, govet, ineffassign, staticcheck, unused).
lint: bin/golangci-lint
	bin/golangci-lint run ./...

bin/golangci-lint: tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	@echo "building golangci-lint $$(awk '$$1 == "github.com/golangci/golangci-lint/v2" {print $$2; exit}' tools/golangci-lint/go.mod) into bin/golangci-lint (a few minutes the first time)"
	go -C tools/golangci-lint build -o ../../bin/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@touch $@

build:
	go build -buildvcs=auto -o bin/patchbay ./cmd/patchbay # stamps the VCS revision patchbay version prints, even under GOFLAGS=-buildvcs=false

# A whole patchbay on this machine; see "Try it" in README.md. It says what
# it compiles before it starts: a cold build is minutes of go build.
dev:
	@echo "make dev: compiling bin/patchbay ($$(go list -deps ./cmd/patchbay | wc -l) packages: about 3 minutes on 2 cores the first time, seconds once Go's cache is warm)"
	@$(MAKE) --no-print-directory build
	@command -v nats-server >/dev/null || $(MAKE) --no-print-directory bin/nats-server
	bin/patchbay dev

# Shell completion scripts from cobra's `patchbay completion`, into
# bin/completions: patchbay.bash, _patchbay (zsh), patchbay.fish, patchbay.ps1.
completions: build
	@mkdir -p bin/completions
	bin/patchbay completion bash >bin/completions/patchbay.bash
	bin/patchbay completion zsh >bin/completions/_patchbay
	bin/patchbay completion fish >bin/completions/patchbay.fish
	bin/patchbay completion powershell >bin/completions/patchbay.ps1

# The integration tests run a real Consul agent. It is built from source at a
# pinned version by a separate module (tools/consul) and cached in bin/.
consul: bin/consul

bin/consul: tools/consul/go.mod tools/consul/go.sum
	@echo "building Consul $(CONSUL_VERSION) for the integration tests into bin/consul ($$(go -C tools/consul list -deps github.com/hashicorp/consul | wc -l) packages: about 10 minutes on 2 cores the first time, over 20 on a loaded machine, seconds once Go's cache is warm; consul on PATH skips it for make dev)"
	go -C tools/consul build -o ../../bin/consul github.com/hashicorp/consul
	@touch $@

# The load-balancer tests run real nginx and HAProxy from Debian's packages;
# declared-test tests call curl.
# As root in CI (CI=true) they are installed here; elsewhere a missing one
# skips those tests with the command that installs it.
lb-servers:
	@if command -v nginx >/dev/null && command -v haproxy >/dev/null && command -v curl >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && [ "$$CI" = true ]; then \
		echo "installing nginx and haproxy for the load-balancer tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy curl >/dev/null; \
	else \
		echo "nginx, haproxy or curl missing: the tests that need them will be skipped (sudo apt-get install -y nginx haproxy curl)"; \
	fi

# The console's browser test drives Debian's chromium headless (chromedp).
# As root in CI (CI=true) it is installed here; with CI=true a missing one
# fails that test, elsewhere it is skipped with the command that installs it.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && [ "$$CI" = true ]; then \
		echo "installing chromium for the console's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium missing: the console's browser test will be skipped (sudo apt-get install -y chromium)"; \
	fi

# The deployment files: docker-compose.yml must pass `docker-compose config`
# (Debian's docker-compose v1; no Docker engine is needed), the manifests the
# compose demo publishes (examples/services with deploy/compose/services
# merged in) must validate, and deploy/systemd's units must pass
# `systemd-analyze verify` without a word. The units are verified from a
# copy whose /usr/local/bin/patchbay is the bin/patchbay just built, the one
# change that lets verify check that ExecStart is executable. As root in CI
# (CI=true) a missing docker-compose or systemd-analyze is installed; with
# CI=true a missing one fails; elsewhere it is skipped with the command
# that installs it.
deploy-check: build
	@need() { \
		command -v "$$1" >/dev/null && return 0; \
		if [ "$$(id -u)" = 0 ] && [ "$$CI" = true ]; then \
			echo "installing $$2 for deploy-check"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$2" >/dev/null; \
			command -v "$$1" >/dev/null && return 0; \
		fi; \
		if [ "$$CI" = true ]; then echo "deploy-check: $$1 missing (apt-get install -y $$2)" >&2; exit 1; fi; \
		echo "$$1 missing: deploy-check skips it (sudo apt-get install -y $$2)"; return 1; \
	}; \
	tmp=$$(mktemp -d) || exit 1; trap 'rm -rf "$$tmp"' EXIT; \
	cp -R examples/services/. deploy/compose/services/. "$$tmp/" || exit 1; \
	out=$$(bin/patchbay validate "$$tmp" 2>&1) || { echo "$$out" | grep -v '^ok ' | sed -e "s#$$tmp/\([^ :,]*/zz-compose\.yaml\)#deploy/compose/services/\1#g" -e "s#$$tmp/#examples/services/#g" >&2; echo "deploy-check: the compose demo's manifests are invalid" >&2; exit 1; }; \
	echo "deploy-check: the compose demo's manifests validate"; \
	if need docker-compose docker-compose; then \
		docker-compose -f docker-compose.yml config -q || { echo "deploy-check: docker-compose.yml is invalid" >&2; exit 1; }; \
		echo "deploy-check: docker-compose.yml is valid"; \
	fi; \
	if need systemd-analyze systemd; then \
		mkdir "$$tmp/units" && \
		for u in deploy/systemd/*.service; do sed 's#/usr/local/bin/patchbay#$(CURDIR)/bin/patchbay#g' "$$u" >"$$tmp/units/$${u##*/}"; done && \
		out=$$(systemd-analyze verify --man=no "$$tmp"/units/*.service 2>&1); rc=$$?; \
		if [ $$rc != 0 ] || [ -n "$$out" ]; then echo "$$out" | sed "s#$$tmp/units#deploy/systemd#g" >&2; echo "deploy-check: systemd-analyze verify deploy/systemd/*.service failed or warned" >&2; exit 1; fi; \
		echo "deploy-check: deploy/systemd units verify clean"; \
	fi

# The side-by-side benchmark: patchbay's listener fleet against
# consul-template (pinned by tools/consul-template) on one Consul, plus a
# fleet simulation; prints one table (docs/performance.md). About 6
# minutes on 2 cores; BENCHFLAGS passes flags, e.g. BENCHFLAGS='-sizes 10 -sim "" -json bench.json'.
.PHONY: bench bench-cost bench-fanout bench-sim bench-scale bin/bench-floor
BENCHFLAGS ?=
BENCH_ALONE = -sizes "" -periodic-n 0 -idle-n 0 -burst-n 0 -instances-n 0 -sim "" -fanout "" -cost-changes 0
bench: build bin/consul bin/consul-template bin/nats-server bin/bench-floor
	go run ./internal/harness/bench/cmd/bench $(BENCHFLAGS)

# The floor consumer of the cost row: receives, decodes, writes; nothing else.
bin/bench-floor:
	go build -o bin/bench-floor ./internal/harness/bench/cmd/floor

# The cost row alone: one consul-template, one listener and the floor
# consumer, 20 changes (about a minute and a half).
bench-cost: build bin/consul bin/consul-template bin/nats-server bin/bench-floor
	go run ./internal/harness/bench/cmd/bench $(BENCH_ALONE) -cost-changes 20 $(BENCHFLAGS)

# Each alone (docs/performance-scale.md): the fan-out against Consul's own
# blocking queries; the fleet simulation; and the 10,000 rows of both,
# which make bench leaves out (a few minutes on 2 cores).
bench-fanout: build bin/consul bin/nats-server
	go run ./internal/harness/bench/cmd/bench $(BENCH_ALONE) -fanout 1000,5000,10000 $(BENCHFLAGS)
bench-sim: build bin/consul bin/nats-server
	go run ./internal/harness/bench/cmd/bench $(BENCH_ALONE) -sim 1000,5000,10000 $(BENCHFLAGS)
bench-scale: build bin/consul bin/nats-server
	go run ./internal/harness/bench/cmd/bench $(BENCH_ALONE) -fanout 10000 -sim 10000 $(BENCHFLAGS)

bin/consul-template: tools/consul-template/go.mod tools/consul-template/go.sum
	@echo "building consul-template $$(awk '$$1 == "github.com/hashicorp/consul-template" {print $$2; exit}' tools/consul-template/go.mod) for make bench into bin/consul-template"
	go -C tools/consul-template build -o ../../bin/consul-template github.com/hashicorp/consul-template
	@touch $@

# The chaos suite (docs/failure-behaviour.md): a real 3-server Consul
# cluster, 2 NATS servers, 2 resolvers and 3 listener hosts, each in its own
# network namespace, put through Consul, NATS and host faults; it prints a
# table of figures and writes it to bin/chaos-results.txt. Needs root, ip and
# iptables (as root in CI, a missing one is installed from Debian's
# packages); about 4 minutes. PATCHBAY_CHAOS_STRICT=1 fails a missed target.
.PHONY: chaos
chaos: bin/consul bin/nats-server build
	@for pair in ip:iproute2 iptables:iptables; do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null && continue; \
		if [ "$$(id -u)" = 0 ] && [ "$$CI" = true ]; then \
			echo "installing $$pkg for the chaos suite"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null || exit 1; \
		fi; \
	done
	PATCHBAY_CHAOS=1 go test ./internal/harness/chaos -run '^TestChaos$$' -count=1 -v -timeout 25m

# The NATS servers of the chaos suite, at the version go.mod pins.
bin/nats-server: go.mod go.sum
	@echo "building nats-server $$(awk '$$1 == "github.com/nats-io/nats-server/v2" {print $$2; exit}' go.mod) into bin/nats-server ($$(go list -deps github.com/nats-io/nats-server/v2 | wc -l) packages: about 2 minutes on 2 cores the first time; nats-server on PATH skips it for make dev)"
	go build -o bin/nats-server github.com/nats-io/nats-server/v2

# The native fuzz targets, package and name: the parsers of files, and
# what the listener and the resolver read back from Consul (a key written
# by hand is untrusted input). `make fuzz` runs each for FUZZTIME;
# `make test` runs fuzz-short, 2,000 inputs each (under a minute in all),
# so every change is fuzzed a little. A count, not a duration: with a
# duration, Go 1.26's fuzz coordinator can report "context deadline
# exceeded" for an input still running at the deadline (golang/go#75804,
# fixed in Go 1.27), which failed make test with no crasher. A crasher is
# kept in the package's
# testdata/fuzz and from then on runs with the package's tests.
FUZZ_TARGETS := manifest:FuzzParseExpand templates:FuzzEnvSourcedBySh \
	registry:FuzzResolverReadsStored resolverd:FuzzLeaderAdoptsStored listener:FuzzListenerReadsStored
FUZZTIME ?= 60s
.PHONY: fuzz-short
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz ./$${t%%:*} $${t##*:} for $(FUZZTIME)"; \
		go test ./$${t%%:*} -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=2000x

clean:
	rm -rf bin
