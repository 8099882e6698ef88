# The README names `make dev` and `make test`; `make` alone runs the tests.
.DEFAULT_GOAL := test

VERSION ?= v0.1.0
PLUGIN  := vault-plugin-apono
LDFLAGS := -X github.com/apono-io/vault-plugin-apono/backend.Version=$(VERSION)
GO      ?= go
SHELL   := bash
# The server the tests, benchmarks and `make dev` run (scripts/build-vault.sh builds it):
# vault-1.14.2 (MPL-2.0), openbao-2.6.2 (MPL-2.0) or vault-1.21.4 (BUSL-1.1, tests only).
# Unset, it is the supported server found on PATH (`vault` or `bao`), else vault-1.14.2.
ifeq ($(origin VAULT_SERVER),undefined)
VAULT_SERVER := $(shell bash scripts/build-vault.sh --which)
endif
export VAULT_SERVER

.PHONY: build release lint vault system-deps test test-unit test-release test-e2e test-cluster test-namespaces fuzz dev clean bench-sync bench bench-scale

## build: the plugin binary in bin/, with its version set
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/$(PLUGIN) ./cmd/$(PLUGIN)

## release: dist/ with vault-plugin-apono_<version>_<os>_<arch>.zip (the binary and the
## LICENSE) for every platform, vault-plugin-apono_<version>_SHA256SUMS over the zips, and
## each binary's sha256 beside its `vault plugin register` command (printed, and in
## dist/vault-plugin-apono_<version>_register.txt). Reproducible: the same source and Go
## give the same bytes in any folder. PLATFORMS="linux/amd64 ..." builds fewer.
PLATFORMS ?=
release:
	@if [ "$(origin VERSION)" != "command line" ] && [ "$(origin VERSION)" != "environment" ]; then \
		echo "make release needs the version to ship: make release VERSION=vX.Y.Z" >&2; exit 2; fi
	$(GO) run ./scripts/release -version=$(VERSION) -out=dist $(if $(strip $(PLATFORMS)),-platforms="$(PLATFORMS)")

## lint: gofmt (prints nothing, or fails), go vet, and staticcheck at a pinned version from
## the Go module proxy (built on first use, then cached)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@files=$$(find . \( -path ./.tools -o -path ./.git -o -path ./dist -o -path ./bin \) -prune -o -name '*.go' -print); \
	unformatted=$$(gofmt -l $$files); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## vault: build (once, cached in .tools/) the server VAULT_SERVER names, which the tests
## and `make dev` run
vault:
	@bash scripts/build-vault.sh >/dev/null

## test: the system packages the tests need (installed as root, else the apt-get line to
## run), unit tests, then end-to-end tests against a real Vault the run starts itself
test: system-deps test-unit test-e2e

## system-deps: Debian packages the tests use (scripts/system-deps.sh says which)
system-deps:
	@bash scripts/system-deps.sh

## test-unit: go vet, and the unit tests of every package that needs no Vault (all but
## e2e/, internal/testvault and scripts/release, which start it). internal/testpg and
## internal/testsshd start PostgreSQL and sshd, from the packages system-deps installs
## (as root, sshd's logins need an account of their own: the tests make it), in seconds
test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /e2e -e /internal/testvault -e /scripts/release)

## test-release: two `make release` runs from two copies of the tree in different folders,
## with separate build caches, give byte-identical zips (two platforms; minutes when cold)
test-release: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) test -count=1 -timeout 30m -v ./scripts/release/

# The cluster's HA tests are test-cluster's; its other test (a failover between a request's
# reminder and its escalation: about 7 minutes of one-minute timers, mostly waiting) runs
# here, beside the e2e package (go test runs the two packages at once). -parallel 8: the
# fault tests mostly wait on Vault's timers (lease expiry, the one-minute rollback tick).
HA_TESTS = ^(TestActiveNodeDiesWhileGrantsArePending|TestStepDownWhileRevocationsRun)$$
test-e2e: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) test -count=1 -timeout 30m -parallel 8 -v -skip '$(HA_TESTS)' ./internal/testvault/... ./e2e/ ./e2e/cluster/

## test-cluster: an access flow through the standbys of a 3-node raft Vault cluster, then its
## active node dies while grants are pending; a step-down while grants are being revoked
## (minutes; .ci/run runs it after `make test`)
test-cluster: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) test -count=1 -timeout 20m -v -run '$(HA_TESTS)' ./e2e/cluster/

## test-namespaces: mounts inside OpenBao namespaces (team-a, team-b, team-a/nested) each work
## in their own namespace only; always against OpenBao 2.6.2, built into .tools/ if needed
test-namespaces:
	VAULT_SERVER=openbao-2.6.2 VAULT_BIN=$$(bash scripts/build-vault.sh openbao-2.6.2) $(GO) test -count=1 -timeout 15m -v ./e2e/namespaces/

## fuzz: explore each fuzz target beyond its committed seed corpus (testdata/fuzz/ beside each package),
## which every `go test` already runs; a failing input is saved there to be committed
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzResourceName$$' -fuzztime=$(FUZZTIME) ./backend/resource/
	$(GO) test -run='^$$' -fuzz='^FuzzPolicyRendering$$' -fuzztime=$(FUZZTIME) ./backend/resource/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./backend/access/window/
	$(GO) test -run='^$$' -fuzz='^FuzzTablePattern$$' -fuzztime=$(FUZZTIME) ./backend/owners/
	$(GO) test -run='^$$' -fuzz='^FuzzModel$$' -fuzztime=$(FUZZTIME) ./internal/sortedset/

## bench-sync: time apono/sync on a dev Vault filled with 1k, 10k and 100k secrets beside a
## plain sequential walk (takes minutes); the table goes to bench/results/ (git-ignored).
## BENCH_SYNC_FLAGS passes flags, e.g. BENCH_SYNC_FLAGS=-sizes=1000,10000
BENCH_SYNC_FLAGS ?=
bench-sync: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) run ./bench/sync $(BENCH_SYNC_FLAGS)

## bench-scale: stores 1k, 10k and 100k requests (and 1k, then 10k live grants) and prints
## the p50/p99 of a first page of every list and filter, of a request create, approval and
## pickup, and the CPU at rest, against the first size and an empty baseline (~30 minutes;
## bench/results/, git-ignored). BENCH_SCALE_FLAGS passes flags, e.g. -sizes=1000,10000
BENCH_SCALE_FLAGS ?=
bench-scale: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) run ./bench/scale $(BENCH_SCALE_FLAGS)

## bench: grant issue latency and throughput beside the same Vault work done directly, a
## 1,000-grant revocation storm, revoke-prefix and the plugin's peak memory, on a dev Vault
## the run starts itself (~5-10 minutes on 2 cores); the table goes to bench/results/
## (git-ignored). BENCH_FLAGS passes flags, e.g. BENCH_FLAGS="-n=5000 -samples=50"
BENCH_FLAGS ?=
bench: vault
	VAULT_BIN=$$(bash scripts/build-vault.sh) $(GO) run ./bench/grants $(BENCH_FLAGS)

## dev: a local dev Vault with the plugin registered, configured and a demo role
dev: build vault
	bash scripts/dev.sh

clean:
	rm -rf bin/ dist/
