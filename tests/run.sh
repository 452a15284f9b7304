#!/usr/bin/env bash
# Runs every test of apiroutes: the README's test command, also run by CI (.ci/run).
# Installs what it needs itself; build outputs are cached outside the tree, under
# ${APIROUTES_CACHE:-~/.cache/apiroutes}, so a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/env.sh

step "Rust: unit and integration tests (cargo test --workspace)"
cargo test --workspace

step "all tests passed"
