#!/usr/bin/env bash
# Builds the server the tests and `make dev` run, named by $1 or $VAULT_SERVER, and caches
# the binary in .tools/ (git-ignored); later runs print the cached one at once. Nothing
# prebuilt can be downloaded here, so this is how the project gets a real server:
#
#   vault-1.14.2  (default) Vault, MPL-2.0 (the last MPL release), from the Go module proxy
#   openbao-2.6.2 OpenBao, MPL-2.0, from ../shared/servers/openbao-v2.6.2-src.tar.gz beside
#                 the repository ($OPENBAO_SRC names another copy), modules from the proxy
#   vault-1.21.4  Vault, BUSL-1.1 (fine to run in tests, never shipped), module proxy
#
# The few edits each source needs to build are made here, on the downloaded files, and
# checked: a source that no longer matches stops the build. No server source is committed.
# Prints the path of the binary on stdout, progress on stderr. Runs for the same server
# take turns on a lock file, so parallel `go test` processes build it once.
#
# A supported server that is already installed is used as it is: `vault` or `bao` on PATH
# whose `version` is one of the three above. `build-vault.sh --which` prints the server to
# use when VAULT_SERVER is unset: the one found on PATH, else vault-1.14.2.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "build-vault: $*" >&2; }
die() { log "$*"; exit 1; }

# installed NAME prints the path of a `vault` or `bao` on PATH that is server NAME.
installed() {
  local want cli p
  case "$1" in
    vault-1.14.2) want="Vault v1.14.2" cli=vault ;;
    vault-1.21.4) want="Vault v1.21.4" cli=vault ;;
    openbao-2.6.2) want="OpenBao v2.6.2" cli=bao ;;
    *) return 1 ;;
  esac
  p=$(command -v "$cli" 2>/dev/null) || return 1
  case "$("$p" version 2>/dev/null)" in "$want"*) echo "$p" ;; *) return 1 ;; esac
}

if [ "${1:-}" = "--which" ]; then
  if [ -n "${VAULT_SERVER:-}" ]; then echo "$VAULT_SERVER"; exit 0; fi
  for n in vault-1.14.2 openbao-2.6.2 vault-1.21.4; do
    if installed "$n" >/dev/null; then echo "$n"; exit 0; fi
  done
  echo vault-1.14.2
  exit 0
fi

name="${1:-${VAULT_SERVER:-vault-1.14.2}}"

case "$name" in
  vault-1.14.2)  out="$root/.tools/vault-v1.14.2/vault" ;;
  openbao-2.6.2) out="$root/.tools/openbao-v2.6.2/bao" ;;
  vault-1.21.4)  out="$root/.tools/vault-v1.21.4/vault" ;;
  *) log "unknown server \"$name\"; VAULT_SERVER is one of vault-1.14.2, openbao-2.6.2, vault-1.21.4"
     exit 2 ;;
esac

cached() { [ -x "$out" ] && "$out" version >/dev/null 2>&1; }
if cached; then log "using $name built earlier: ${out#"$root"/}"; echo "$out"; exit 0; fi
if found=$(installed "$name"); then
  log "using $name found on PATH: $found"
  echo "$found"
  exit 0
fi

# One build per server at a time: the lock is held until this script exits. perl locks the
# shell's fd 9, so the lock outlives perl (flock(1) is not on every system).
mkdir -p "$root/.tools"
exec 9>"$root/.tools/.build-$name.lock"
lock() { perl -MFcntl=:flock -e 'open(my $f, ">&=", 9) or die $!; exit(flock($f, LOCK_EX | ($ARGV[0] ? LOCK_NB : 0)) ? 0 : 1)' "$1"; }
if ! lock 1; then
  log "another build of $name is running; waiting for it"
  lock 0 || die "cannot lock .tools/.build-$name.lock"
fi
if cached; then echo "$out"; exit 0; fi

work="$root/.tools/build-$name"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"
began=$SECONDS

# module_dir MODULE@VERSION downloads a module through the proxy and prints its folder.
module_dir() {
  local dir
  dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || die "go mod download $1 gave no module folder"
  echo "$dir"
}

# edit FILE PERL applies a perl substitution to FILE (slurped whole) and fails when it
# changes nothing, so a source that differs from the one these edits were written for
# stops here rather than building something else.
edit() {
  local file="$1" expr="$2" before
  before=$(cksum <"$file")
  perl -0pi -e "$expr" "$file"
  [ "$(cksum <"$file")" != "$before" ] || die "edit did not apply to ${file#"$work"/}: $expr"
}

# vault_tree VERSION SDK_VERSION copies Vault's module and the published sdk to $work and
# points the one at the other: a module zip holds no nested modules, so the go.mod's
# replaces to ./api* and ./sdk have nothing to point at. The published api (and api/auth/*)
# modules its go.mod requires are used instead, and the sdk replace goes to the copy.
vault_tree() {
  log "downloading github.com/hashicorp/vault@$1 and sdk@$2 (cold: ~1.5 GB of modules)"
  local vault_dir sdk_dir
  vault_dir=$(module_dir "github.com/hashicorp/vault@$1")
  sdk_dir=$(module_dir "github.com/hashicorp/vault/sdk@$2")
  cp -r "$vault_dir" "$work/vault"
  cp -r "$sdk_dir" "$work/sdk"
  chmod -R u+w "$work"
  cd "$work/vault"
  sed -i -e '/^replace github.com\/hashicorp\/vault\/\(api\|sdk\)[^ ]* => \.\//d' go.mod
  if grep -q '=> \./' go.mod; then die "unexpected local replace left in go.mod"; fi
  echo "replace github.com/hashicorp/vault/sdk => ../sdk" >>go.mod
}

case "$name" in
vault-1.14.2)
  vault_tree v1.14.2 v0.9.2
  # sdk v0.9.2 panics on two 1.14 paths that define CreateOperation without ExistenceCheck
  # (sys managed-keys stubs, transit cache-config). Neutralise only that panic: the path's
  # regexp must still be compiled, so the statement becomes a no-op rather than a continue.
  edit "$work/sdk/framework/backend.go" \
    's/panic\((fmt\.Sprintf\("Pattern %v defines a CreateOperation but no ExistenceCheck"[^\n]*\))\)/_ = $1/g'
  ldflags=""
  ;;
vault-1.21.4)
  vault_tree v1.21.4 v0.21.0
  # The published sdk v0.21.0 differs from 1.21.4's in-tree sdk in two signatures:
  # ActivationFunc takes a third argument, and keysutil's RestorePolicy returns only an error.
  edit vault/identity_store.go \
    's/ActivationFunc: iStore\.activateDeduplication,/ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },/'
  edit vault/logical_system_activation_flags.go \
    's/ActivationFunc\(ctx, nil\)/ActivationFunc(ctx, nil, "")/'
  edit builtin/logical/transit/path_restore.go \
    's/restoredKeyName, err := b\.lm\.RestorePolicy\(/restoredKeyName := keyName\n\terr := b.lm.RestorePolicy(/'
  ldflags=""
  ;;
openbao-2.6.2)
  src="${OPENBAO_SRC:-$root/../shared/servers/openbao-v2.6.2-src.tar.gz}"
  [ -f "$src" ] || die "OpenBao's source archive is not at $src: put openbao-v2.6.2-src.tar.gz there or set OPENBAO_SRC to its path"
  log "unpacking $src"
  tar -xzf "$src" -C "$work"
  [ -f "$work/openbao-2.6.2/go.mod" ] || die "$src does not unpack to openbao-2.6.2/"
  # Its go.mod replaces api/v2, api/auth/* and sdk/v2 with its own folders: build in the tree.
  cd "$work/openbao-2.6.2"
  # The module proxy does not serve five cloud KMS seal wrappers (403). Dev, file and raft
  # servers with Shamir seals need none of them: drop their imports and catalog entries,
  # and the one use of awskms in core.go (a logger option for the Shamir seal).
  for kms in alicloudkms awskms azurekeyvault gcpckms ocikms; do
    edit helper/kmsplugin/wrapper.go "s{\\n\\t\"github.com/openbao/go-kms-wrapping/wrappers/$kms/v2\"}{}"
    edit helper/kmsplugin/wrapper.go "s{\\n\\t$kms\\.Type: [^\\n]*}{}"
  done
  edit vault/core.go 's{\n\t"github.com/openbao/go-kms-wrapping/wrappers/awskms/v2"}{}'
  edit vault/core.go 's{\n\t\twrapper\.SetConfig\(context\.Background\(\), awskms\.WithLogger\([^\n]*}{}'
  ldflags="-X github.com/openbao/openbao/version.fullVersion=2.6.2"
  log "downloading OpenBao's modules (cold: ~1 GB)"
  ;;
esac

log "building $name (minutes when cold; progress is quiet while the linker runs)"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$out.tmp" -ldflags "$ldflags" . >&2
mv "$out.tmp" "$out"
cd "$root"
rm -rf "$work"
"$out" version >&2
log "built $name in $((SECONDS - began)) s"
echo "$out"
