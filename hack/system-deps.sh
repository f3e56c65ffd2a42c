#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python and Go: Prometheus (promtool and a real
# server, to check the shipped alert rules and dashboard queries). Idempotent; on a machine
# where we are not root it says what to install instead of failing.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "hack/system-deps.sh: installing ${missing[*]} (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a Prometheus service where systemd runs; tests start their own.
  exit 0
fi
echo "hack/system-deps.sh: please install the Debian packages: ${missing[*]} (tests that need them are skipped outside CI)" >&2
