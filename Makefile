# The one way in: `make help` lists the targets. `make test` is what CI runs.

GO                 ?= go
STATICCHECK_VERSION := v0.8.2
TOOLS              := $(CURDIR)/bin/tools
STATICCHECK        := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
FUZZTIME           ?= 10s
TEST_TIMEOUT       ?= 15m

.DEFAULT_GOAL := help
.PHONY: help test test-race lint bench fuzz e2e e2e-postgres build services

help: ## list the targets
	@awk -F':.*## ' '/^[a-z][a-z0-9-]*:.*## /{printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## everything CI checks: services, lint, race tests, benchmarks once, e2e
	./scripts/ensure-services.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-race
	$(MAKE) --no-print-directory bench
	$(MAKE) --no-print-directory e2e
	$(MAKE) --no-print-directory e2e-postgres

test-race: ## go test -race over every package
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint: $(STATICCHECK) ## gofmt, go vet, staticcheck, go mod tidy check
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) mod tidy -diff

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: ## run every benchmark once so none of them rots
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

fuzz: ## run each Fuzz target for FUZZTIME (default 10s)
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

e2e: build ## the PocketBase JS SDK compatibility suite against bin/strata
	./scripts/ensure-node.sh
	cd e2e && npm ci --no-audit --no-fund --loglevel=error
	cd e2e && STRATA_BIN=$(CURDIR)/bin/strata node --test --test-concurrency=1 *.test.js

e2e-postgres: build ## the e2e suite with the PostgreSQL store (a fresh database per test file)
	./scripts/ensure-node.sh
	cd e2e && npm ci --no-audit --no-fund --loglevel=error
	cd e2e && STRATA_E2E_DB=postgres STRATA_BIN=$(CURDIR)/bin/strata node --test --test-concurrency=1 *.test.js

build: ## build bin/strata
	$(GO) build -o bin/strata ./cmd/strata

services: ## start PostgreSQL, Redis and NATS when they are not running
	./scripts/ensure-services.sh
