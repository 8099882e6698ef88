#!/usr/bin/env bash
# `make dev`: a local dev Vault on loopback with the plugin registered (sha256 + version),
# the vendor's setup steps done, the plugin configured with the apono-plugin AppRole and a
# demo role. Leaves Vault running in the background; `scripts/dev.sh stop` stops it.
# VAULT_SERVER picks the server (scripts/build-vault.sh): vault-1.14.2, openbao-2.6.2 (its
# CLI is `bao`) or vault-1.21.4; unset, a supported one on PATH, else vault-1.14.2 (built).
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
VERSION="${VERSION:-v0.1.0}"
PORT="${VAULT_DEV_PORT:-8200}"
dev_dir="$root/.tools/dev"
pid_file="$dev_dir/vault.pid"

stop() {
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill "$(cat "$pid_file")"
    echo "stopped the dev Vault (pid $(cat "$pid_file"))"
  fi
  rm -f "$pid_file"
}
if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

server="${VAULT_SERVER:-$(bash scripts/build-vault.sh --which)}"
vault_bin="$(bash scripts/build-vault.sh "$server")"
cli="$(basename "$vault_bin")" # the server's own CLI: vault, or bao for OpenBao
env_prefix=VAULT # the variables its users set: VAULT_ADDR, VAULT_TOKEN or BAO_ADDR, BAO_TOKEN
if [ "$cli" = bao ]; then env_prefix=BAO; fi
[ -x bin/vault-plugin-apono ] || make build VERSION="$VERSION"
stop
mkdir -p "$dev_dir/plugins"
cp bin/vault-plugin-apono "$dev_dir/plugins/vault-plugin-apono"

# The bao CLI reads BAO_ADDR and BAO_TOKEN first and falls back to VAULT_*: with them
# unset, both CLIs use VAULT_*, and `VAULT_TOKEN=$BOB vault ...` below acts as bob on both.
unset BAO_ADDR BAO_TOKEN
export VAULT_ADDR="http://127.0.0.1:$PORT" VAULT_TOKEN=root
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$PORT" \
  -dev-plugin-dir="$dev_dir/plugins" >"$dev_dir/vault.log" 2>&1 &
echo $! >"$pid_file"
# Every step below runs the server's own CLI (vault or bao) as an operator would.
vault() { "$vault_bin" "$@"; }

for _ in $(seq 1 60); do
  if vault status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "dev Vault exited; its log:" >&2; tail -20 "$dev_dir/vault.log" >&2; exit 1
  fi
  sleep 0.5
done
vault status >/dev/null

echo "== the vendor's setup steps (shared/seed), as an operator runs them"
vault auth enable approle
vault auth enable userpass
vault secrets enable -path=kv kv-v2
vault secrets enable -path=transit transit
vault policy write apono-management testdata/apono-management.hcl
vault write auth/approle/role/apono-plugin token_policies="apono-management" token_ttl=60m token_max_ttl=4h
role_id="$(vault read -field=role_id auth/approle/role/apono-plugin/role-id)"
secret_id="$(vault write -f -field=secret_id auth/approle/role/apono-plugin/secret-id)"

echo "== the optional additions to the management policy (README: honest end times, grant entities)"
cat testdata/apono-management.hcl testdata/apono-identity.hcl | vault policy write apono-management -
vault write auth/approle/role/apono-plugin token_no_default_policy=true

echo "== register and enable the plugin"
sha="$(sha256sum "$dev_dir/plugins/vault-plugin-apono" | cut -d' ' -f1)"
vault plugin register -sha256="$sha" -version="$VERSION" -command=vault-plugin-apono secret vault-plugin-apono
vault secrets enable -path=apono -plugin-version="$VERSION" vault-plugin-apono
vault write apono/config vault_addr="$VAULT_ADDR" role_id="$role_id" secret_id="$secret_id" \
  access_details="Log in with: $cli login -method=userpass username=<username>"

echo "== demo data and a demo role"
vault kv put kv/app/db username=app password=demo-db-password >/dev/null
vault kv put kv/app/api token=demo-api-token >/dev/null
vault write -f transit/keys/payments >/dev/null
vault write apono/roles/demo resources="kv/app/db,kv/app/*" permissions="read,read-write" ttl=15m max_ttl=1h
vault write apono/roles/payments resources="transit/payments" permissions="encrypt-decrypt,encrypt" ttl=15m max_ttl=1h

echo "== access flows (README \"Access flows\", steps 1-4): owners, people, groups, a role"
# 1. Owners: a KV custom_metadata tag names each secret's owner; the integration owner
#    approves what names none.
vault write apono/config owner_metadata_key=owner integration_owner=security
vault kv metadata put -custom-metadata=owner=kv-owners kv/app/db
# 2. People: alice asks, bob owns kv/app/db, erin is the integration owner.
vault policy write access-requester testdata/access-requester.hcl
vault policy write access-approver testdata/access-approver.hcl
vault write auth/userpass/users/alice password=alice-pw token_policies=access-requester
vault write auth/userpass/users/bob password=bob-pw token_policies=access-approver
vault write auth/userpass/users/erin password=erin-pw token_policies=access-approver
BOB=$(vault login -token-only -method=userpass username=bob password=bob-pw)
ERIN=$(vault login -token-only -method=userpass username=erin password=erin-pw)
# 3. Groups of Vault's identity store (each login made its person's entity).
vault write identity/group name=kv-owners member_entity_ids="$(VAULT_TOKEN=$BOB vault read -field=entity_id auth/token/lookup-self)"
vault write identity/group name=security member_entity_ids="$(VAULT_TOKEN=$ERIN vault read -field=entity_id auth/token/lookup-self)"
# 4. A role that needs the owner's approval.
vault write apono/roles/app-db resources=kv/app/db permissions=read ttl=1h approval=required approvers=owner

cat <<MSG

A dev $server server with the apono plugin ($VERSION) runs at $VAULT_ADDR (root token: root).
Log: $dev_dir/vault.log. Stop it with: scripts/dev.sh stop

The access portal: $VAULT_ADDR/v1/apono/ui
  sign in with userpass as alice (password alice-pw: asks), bob (bob-pw: owns kv/app/db,
  approves) or erin (erin-pw: the integration owner)

Try a direct grant:
  export ${env_prefix}_ADDR=$VAULT_ADDR ${env_prefix}_TOKEN=root PATH=$(dirname "$vault_bin"):\$PATH
  $cli read apono/config
  $cli read apono/health
  $cli write apono/grants/demo resources=kv/app/db requester=alice@example.com ttl=5m
  $cli login -method=userpass username=<username from the grant>      # password from the grant
  ${env_prefix}_TOKEN=<that token> $cli kv get kv/app/db
  $cli list -detailed apono/grants
  $cli lease revoke <lease_id from the grant>
  $cli path-help apono/grants/demo

Try an access flow (README "One access flow, end to end", steps 5-7: alice asks, bob owns kv/app/db):
  BOB=\$($cli login -token-only -method=userpass username=bob password=bob-pw)
  ALICE=\$($cli login -token-only -method=userpass username=alice password=alice-pw)
  REQ=\$(${env_prefix}_TOKEN=\$ALICE $cli write -field=id apono/requests/app-db justification=INC-42)
  ${env_prefix}_TOKEN=\$BOB $cli read apono/requests can_approve=true
  ${env_prefix}_TOKEN=\$BOB $cli write apono/requests/\$REQ/approve reason="ok for INC-42"
  ${env_prefix}_TOKEN=\$ALICE $cli write apono/grants/app-db request_id=\$REQ
  $cli login -method=userpass username=<username from the grant>     # password from the grant
  $cli list -detailed apono/audit/requests                              # every request: an operator's view
MSG
