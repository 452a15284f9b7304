#!/usr/bin/env bash
# Runs every test of apiroutes: the README's test command, also run by CI (.ci/run).
# Installs what it needs itself; build outputs are cached outside the tree, under
# ${APIROUTES_CACHE:-~/.cache/apiroutes}, so a second run is fast.
#
# It starts one local control plane (tests/cluster/cluster.sh) for all the tests that need
# a real API server and stops it on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/env.sh

step "local control plane: build (cached) and start"
cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-test-cluster.XXXXXX")
cleanup() {
  bash tests/cluster/cluster.sh down "$cluster_dir" || true
  rm -rf "$cluster_dir"
}
trap cleanup EXIT
bash tests/cluster/cluster.sh up "$cluster_dir"
eval "$(bash tests/cluster/cluster.sh env "$cluster_dir")"

step "Rust: unit, integration and end-to-end tests (cargo test --workspace)"
cargo test --workspace

step "Helm chart: lint, rendered-manifest checks, install/RBAC/upgrade/uninstall (tests/chart/test.sh)"
bash tests/chart/test.sh

step "local node agent: pods as processes on the real control plane (tests/cluster/test-node.sh)"
bash tests/cluster/test-node.sh

step "Node runtime: unit tests and type check (runtime/node)"
(cd runtime/node && npm ci --no-audit --no-fund >&2 && npm test)

step "Node runtime: conformance against real Next.js 16.4.6 (runtime/node/conformance)"
(cd runtime/node && npm run conformance)

step "all tests passed"
