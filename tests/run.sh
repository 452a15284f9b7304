#!/usr/bin/env bash
# Runs every test of apiroutes: the README's test command, also run by CI (.ci/run).
# Installs what it needs itself; build outputs are cached outside the tree, under
# ${APIROUTES_CACHE:-~/.cache/apiroutes}, so a second run is fast.
#
# One local cluster with its real node (tests/cluster/cluster.sh, via tests/lib/platform.sh:
# kubelet, containerd, runc, the project's images in the node's registry) serves every test
# that needs a real API server; it is stopped on exit, whatever happens. The node makes a
# network namespace, so the cluster tests need root; without root they are skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/env.sh
source tests/lib/platform.sh
# Never aim the tests at a cluster of the caller's: only at the one started here.
unset KUBECONFIG

platform_build
cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-test-cluster.XXXXXX")
cleanup() {
  platform_down "$cluster_dir"
  rm -rf "$cluster_dir"
}
trap cleanup EXIT
root=false
[[ $(id -u) == 0 ]] && root=true
if $root; then
  platform_cluster "$cluster_dir"
  export APIROUTES_KUBECONFIG=$KUBECONFIG
  # Tests that need the cluster (or the registry) fail rather than skip without it.
  export APIROUTES_REQUIRE_CLUSTER=1 APIROUTES_REGISTRY_BIN=$APIROUTES_CLUSTER_BIN/registry
fi

step "Rust: unit and integration tests, operator and CLI against the API server"
cargo test --workspace --exclude apiroutes-e2e

step "Helm chart: lint, rendered-manifest checks; with a cluster, install/RBAC/upgrade/uninstall"
bash tests/chart/test.sh

if $root; then
  port=$(free_port)
  platform_install "$port"
  export APIROUTES_GATEWAY_URL=http://127.0.0.1:$port
fi
step "end to end: kubectl apply → operator → pods → gateway (tests/e2e, one test at a time)"
cargo test -p apiroutes-e2e -- --test-threads=1

if $root; then
  step "the real node: containers, networking, security, logs/exec, teardown (tests/cluster/test-node.sh)"
  bash tests/cluster/test-node.sh "$platform_images"

  step "the chart on the real node: install, leader, serve, failover, uninstall (tests/chart/live.sh)"
  bash tests/chart/live.sh "$platform_images"
fi

step "images: reproducible, complete, runnable (tests/images/test.sh); Dockerfiles (tests/dockerfiles/check.py)"
if $root; then
  bash tests/images/test.sh "$platform_images"
fi
python3 tests/dockerfiles/check.py

step "routing conformance: the gateway against real Next.js 16.4.6 (tests/conformance)"
bash tests/conformance/run.sh

step "HTTP/2 conformance: h2spec against the gateway's h2c listener (tests/h2spec)"
bash tests/h2spec/run.sh

step "HTTP/1.1 conformance and hostile input: RFC 9110/9112 probe against the gateway (tests/http1)"
bash tests/http1/run.sh

step "Node runtime: unit tests and type check (runtime/node)"
(cd runtime/node && npm ci --no-audit --no-fund >&2 && npm test)

step "Node runtime: conformance against real Next.js 16.4.6 (runtime/node/conformance)"
(cd runtime/node && npm run conformance)

step "all tests passed"
