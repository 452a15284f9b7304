#!/usr/bin/env bash
# Benchmark: the JSON hello handler under apiroutes-node vs under `next start`, and the
# runtime's cold start. Needs the conformance tree built once (`npm run conformance`).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent
exec node bench.mjs
