# The README names `make dev` and `make test`; `make` alone runs the tests.
.DEFAULT_GOAL := test

VERSION ?= v0.1.0
PLUGIN  := vault-plugin-apono
LDFLAGS := -X github.com/apono-io/vault-plugin-apono/backend.Version=$(VERSION)
GO      ?= go
SHELL   := bash

.PHONY: build vault test test-unit test-e2e fuzz dev clean

## build: the plugin binary in bin/, with its version set
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)

## vault: build (once, cached in .tools/) the Vault server the tests and `make dev` run
vault:
	@bash scripts/build-vault.sh >/dev/null

## test: unit tests, then end-to-end tests against a real Vault the run starts itself
test: test-unit test-e2e

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./backend/...

test-e2e: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) test -count=1 -timeout 30m -v ./internal/testvault/... ./e2e/...

## dev: a local dev Vault with the plugin registered, configured and a demo role
dev: build vault
	bash scripts/dev.sh

clean:
	rm -rf bin/
