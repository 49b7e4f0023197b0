#!/usr/bin/env bash
# Builds attest/web/dist/verify.html and tests it: the node unit tests
# (fast ML-DSA-65 against noble, strict decoders, a differential fuzz
# against `cairn verify`) and the browser test in headless Chromium.
#
# On a fresh Debian machine (as root) it installs what is missing: nodejs,
# npm and chromium from Debian's packages. Needs the cairn binary
# ($CAIRN, default target/debug/cairn of this repository; built with
# `cargo build -p cairn-daemon --bin cairn` when missing and cargo exists).
#
# Environment: CAIRN, CHROMIUM (default /usr/bin/chromium), ARTIFACTS
# (screenshots; default attest/web/test-artifacts), RATE_RECORDS (default
# 5000), MIN_RATE (records/s the big bundle must reach; default: not
# enforced), FUZZ (mutations in the differential fuzz; default 150).
set -euo pipefail

web="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$web/../.." && pwd)"

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "run.sh: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "run.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y --no-install-recommends "${need[@]}"
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "run.sh: warning: Node.js $(node --version) is older than the 20 that @noble/post-quantum and playwright-core declare" >&2
fi

export CAIRN="${CAIRN:-$repo/target/debug/cairn}"
if [ ! -x "$CAIRN" ]; then
  if command -v cargo >/dev/null 2>&1 && [ "$CAIRN" = "$repo/target/debug/cairn" ]; then
    (cd "$repo" && cargo build -p cairn-daemon --bin cairn)
  else
    echo "run.sh: no cairn binary at $CAIRN (set CAIRN)" >&2
    exit 1
  fi
fi

cd "$web"
npm ci --no-audit --no-fund
node build.mjs
node test/unit.mjs
node test/browser.mjs
