#!/usr/bin/env bash
# Routing conformance against real Next.js, in one command:
#   bash tests/conformance/run.sh
# Installs the pinned Next.js (npm ci, cached), builds the gateway and the echo function
# (cargo, $CARGO_TARGET_DIR or <repo>/target), then runs run.mjs, which starts and stops its
# own processes (next start, echo, gateway) on free 127.0.0.1 ports.
# CONFORMANCE_NEXT_ONLY=1 skips the gateway side (checks DESIGN.md's Next.js facts and
# re-records next-answers.json).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export NEXT_TELEMETRY_DISABLED=1

command -v node >/dev/null || { echo "conformance: node is required" >&2; exit 2; }

# npm ci only when the lockfile changed since the last install (npm ci wipes node_modules).
lock_sum="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
stamp="$here/node_modules/.conformance-lock.sha256"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  echo "conformance: npm ci (next@16.4.6)"
  (cd "$here" && npm ci --no-audit --no-fund --prefer-offline --cache "${NPM_CONFIG_CACHE:-$HOME/.npm}" >/dev/null)
  echo "$lock_sum" >"$stamp"
fi

if [[ "${CONFORMANCE_NEXT_ONLY:-0}" == 1 ]]; then
  exec node "$here/run.mjs" --next-only
fi

echo "conformance: cargo build -p apiroutes-gateway -p apiroutes-example-echo"
(cd "$root" && cargo build --quiet -p apiroutes-gateway -p apiroutes-example-echo)
export GATEWAY_BIN="$CARGO_TARGET_DIR/debug/apiroutes-gateway"
export ECHO_BIN="$CARGO_TARGET_DIR/debug/echo"
exec node "$here/run.mjs"
