# patchbay's build and test entry points. `make test` is the one command CI
# runs: it builds what the tests need, then vets and tests everything.

CONSUL_VERSION := $(shell awk '$$1 == "github.com/hashicorp/consul" {print $$2; exit}' tools/consul/go.mod)

.PHONY: test build consul fuzz clean

test: bin/consul
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

FUZZTIME ?= 60s
fuzz:
	go test ./manifest -run '^$$' -fuzz FuzzParseExpand -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
