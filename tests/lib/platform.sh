# Bringing the whole platform up on the local control plane: the one place both the test
# runner (tests/run.sh) and the platform command (tests/platform.sh) call. Sourced.
#
#   platform_build                 build the binaries the local node runs as "images"
#   platform_cluster DIR           local control plane + node, environment exported
#   platform_install PORT          helm install the chart; gateway on 127.0.0.1:PORT
#   platform_up DIR PORT           both
#   platform_down DIR              stop everything started in DIR
#
# Needs tests/lib/env.sh sourced first.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

platform_build() {
  step "build the platform binaries (cargo, cached in $CARGO_TARGET_DIR)"
  cargo build --bins -p apiroutes-gateway -p apiroutes-operator -p apiroutes-example-echo \
    -p apiroutes-node-agent -p apiroutes-cli >&2
}

# The image→command map of the local node: which local program stands in for each image.
#   platform_image_map OUT [BIN_DIR]   (BIN_DIR: where the binaries are; default the debug build)
platform_image_map() {
  local out=$1 bin=${2:-$CARGO_TARGET_DIR/debug}
  cat >"$out" <<MAP
# Written by tests/lib/platform.sh. Repository keys match every tag.
ghcr.io/apiroutes/gateway:
  command: ["$bin/apiroutes-gateway"]
ghcr.io/apiroutes/operator:
  command: ["$bin/apiroutes-operator"]
ghcr.io/apiroutes/echo:
  command: ["$bin/echo"]
# Next.js handlers under the Node runtime: APIROUTES_HANDLER (set by \`apiroutes import\`)
# names the route file inside the example app.
ghcr.io/apiroutes/nextjs-example:
  command: [node, "$repo_root/runtime/node/bin/apiroutes-node.js"]
  workdir: "$repo_root/examples/nextjs"
MAP
}

# Starts the local control plane and its node in DIR and exports its environment.
platform_cluster() {
  local dir=$1
  mkdir -p "$dir"
  platform_image_map "$dir/images.yaml"
  step "start the local control plane and node ($dir)"
  bash "$repo_root/tests/cluster/cluster.sh" up "$dir" --with-node "$dir/images.yaml"
  eval "$(bash "$repo_root/tests/cluster/cluster.sh" env "$dir")"
}

# Installs the chart on the running cluster; the gateway serves on 127.0.0.1:PORT.
platform_install() {
  local port=$1
  step "helm install apiroutes (gateway on 127.0.0.1:$port)"
  helm upgrade --install apiroutes "$repo_root/charts/apiroutes" \
    --namespace apiroutes-system --create-namespace \
    -f "$repo_root/charts/apiroutes/ci/local-values.yaml" \
    --set gateway.hostPort="$port" \
    --set operator.gatewayUrl="http://127.0.0.1:$port" \
    --wait --timeout 5m >&2
  step "wait for the gateway to answer on 127.0.0.1:$port"
  local i
  for ((i = 0; i < 600; i++)); do
    if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/__apiroutes/none" 2>/dev/null | grep -q 404; then
      return 0
    fi
    sleep 0.2
  done
  echo "the gateway did not answer on 127.0.0.1:$port within 120 s" >&2
  kubectl get pods -A -o wide >&2 || true
  return 1
}

platform_up() {
  platform_cluster "$1"
  platform_install "$2"
}

platform_down() {
  bash "$repo_root/tests/cluster/cluster.sh" down "$1" || true
}

# A free TCP port on 127.0.0.1, from the OS.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
