# patchbay's build and test entry points. `make test` is the one command CI
# runs: it builds what the tests need, then vets and tests everything.

CONSUL_VERSION := $(shell awk '$$1 == "github.com/hashicorp/consul" {print $$2; exit}' tools/consul/go.mod)

.PHONY: test build consul lb-servers fuzz clean

test: bin/consul lb-servers
	go vet ./...
	go test -race ./...

build:
	go build -o bin/patchbay ./cmd/patchbay

# The integration tests run a real Consul agent. It is built from source at a
# pinned version by a separate module (tools/consul) and cached in bin/.
consul: bin/consul

bin/consul: tools/consul/go.mod tools/consul/go.sum
	@echo "building Consul $(CONSUL_VERSION) for the integration tests into bin/consul (about 4 minutes the first time, seconds once Go's cache is warm)"
	go -C tools/consul build -o ../../bin/consul github.com/hashicorp/consul
	@touch $@

# The load-balancer tests run real nginx and HAProxy from Debian's packages.
# As root in CI (CI=true) they are installed here; elsewhere a missing one
# skips those tests with the command that installs it.
lb-servers:
	@if command -v nginx >/dev/null && command -v haproxy >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && [ "$$CI" = true ]; then \
		echo "installing nginx and haproxy for the load-balancer tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy >/dev/null; \
	else \
		echo "nginx or haproxy missing: the load-balancer tests will be skipped (sudo apt-get install -y nginx haproxy)"; \
	fi

FUZZTIME ?= 60s
fuzz:
	go test ./manifest -run '^$$' -fuzz FuzzParseExpand -fuzztime $(FUZZTIME)
	go test ./templates -run '^$$' -fuzz FuzzEnvSourcedBySh -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
