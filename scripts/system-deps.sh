#!/usr/bin/env bash
# The system packages the tests need, from Debian's archive: chromium (the portal's browser
# test), python3 (the history test reads the CSV with Python's csv module), and the servers
# and clients internal/testpg and internal/testsshd start for the database and SSH tests:
# PostgreSQL with psql, OpenSSH's sshd with ssh and ssh-keygen, and openssl; OpenLDAP's
# slapd with ldapadd and ldapmodify (internal/testldap's directory); and Prometheus,
# which the metrics test starts to scrape apono/metrics through Vault. `make test`
# and .ci/run both call this, so the two cannot drift apart. As root it installs what is
# missing; otherwise it stops at once with the one line to run.
set -euo pipefail

# command:package pairs, one a line.
needs="chromium:chromium
python3:python3
initdb:postgresql
pg_ctl:postgresql
postgres:postgresql
psql:postgresql-client
sshd:openssh-server
ssh:openssh-client
ssh-keygen:openssh-client
openssl:openssl
prometheus:prometheus
useradd:passwd
runuser:util-linux
slapd:slapd
slapadd:slapd
ldapadd:ldap-utils
ldapmodify:ldap-utils"

# have CMD: on PATH, or where Debian puts it off a non-root PATH: the PostgreSQL server's
# programs in /usr/lib/postgresql/<version>/bin, sshd, slapd, slapadd and useradd in /usr/sbin.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local f
  for f in /usr/sbin/"$1" /usr/lib/postgresql/*/bin/"$1"; do
    [ -x "$f" ] && return 0
  done
  return 1
}

missing=()
while IFS=: read -r cmd pkg; do
  have "$cmd" && continue
  [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done <<<"$needs"
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "system-deps: the tests need Debian packages that are not installed; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]} (apt-get)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
