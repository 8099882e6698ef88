#!/usr/bin/env bash
# Builds the MPL-2.0 Vault v1.14.2 server from the Go module proxy and caches the
# binary in .tools/ (git-ignored). Nothing prebuilt can be downloaded here, and 1.15+
# is BUSL, so this is how the tests and `make dev` get a real Vault.
# Prints the path of the binary on stdout.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.14.2}"
SDK_VERSION="${VAULT_SDK_FOR_SERVER:-v0.9.2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out_dir="$root/.tools/vault-$VAULT_VERSION"
out="$out_dir/vault"

if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi

log() { echo "build-vault: $*" >&2; }
work="$root/.tools/build"
rm -rf "$work"
mkdir -p "$work" "$out_dir"

log "downloading github.com/hashicorp/vault@$VAULT_VERSION and sdk@$SDK_VERSION (cold: ~1.5 GB of modules)"
vault_dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
sdk_dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault/sdk@$SDK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$vault_dir" ] || { log "module dir for vault not found"; exit 1; }
[ -d "$sdk_dir" ] || { log "module dir for sdk not found"; exit 1; }

cp -r "$vault_dir" "$work/vault"
cp -r "$sdk_dir" "$work/sdk"
chmod -R u+w "$work"

# A module zip holds no nested modules: drop the ./api replace (use the published api the
# go.mod requires) and point the sdk at the local, patched copy of the published sdk.
cd "$work/vault"
sed -i -e '/^replace github.com\/hashicorp\/vault\/\(api\|sdk\)[^ ]* => \.\//d' go.mod
if grep -q '=> \./' go.mod; then log "unexpected local replace left in go.mod"; exit 1; fi
echo "replace github.com/hashicorp/vault/sdk => ../sdk" >> go.mod

# sdk v0.9.2 panics on two 1.14 paths that define CreateOperation without ExistenceCheck
# (sys managed-keys stubs, transit cache-config). Neutralise only that panic: the path's
# regexp must still be compiled, so the statement becomes a no-op rather than a continue.
be="$work/sdk/framework/backend.go"
grep -q 'defines a CreateOperation but no ExistenceCheck' "$be" || { log "sdk panic site not found"; exit 1; }
perl -0pi -e 's/panic\((fmt\.Sprintf\("Pattern %v defines a CreateOperation but no ExistenceCheck"[^\n]*\))\)/_ = $1/g' "$be"
if grep -q 'panic(fmt.Sprintf("Pattern %v defines a CreateOperation but no ExistenceCheck' "$be"; then
  log "could not patch sdk panic"; exit 1
fi

log "building vault $VAULT_VERSION (~1 min warm, several minutes cold)"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$out.tmp" . >&2
mv "$out.tmp" "$out"
rm -rf "$work"
"$out" version >&2
echo "$out"
