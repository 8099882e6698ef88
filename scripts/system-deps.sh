#!/usr/bin/env bash
# The system packages the tests need, from Debian's archive: chromium (the portal's browser
# test) and python3 (the history test reads the CSV with Python's csv module). `make test`
# and .ci/run both call this, so the two cannot drift apart. As root it installs what is
# missing; otherwise it stops at once with the one line to run.
set -euo pipefail

# command:package pairs, one a line.
needs="chromium:chromium
python3:python3"

missing=()
while IFS=: read -r cmd pkg; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
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
