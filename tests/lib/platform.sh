# Bringing the whole platform up on the local control plane: the one place both the test
# runner (tests/run.sh) and the platform command (tests/platform.sh) call. Sourced.
#
#   platform_build                 build the binaries and every image (tests/images/build.sh)
#   platform_cluster DIR           local control plane + real node, images pushed to its
#                                  registry, environment exported
#   platform_install PORT          helm install the chart; gateway on 127.0.0.1:PORT
#   platform_up DIR PORT           both
#   platform_down DIR              stop everything started in DIR
#
# Needs tests/lib/env.sh sourced first.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

platform_build() {
  step "build the platform binaries (cargo, cached in $CARGO_TARGET_DIR)"
  cargo build --bins -p apiroutes-gateway -p apiroutes-operator -p apiroutes-example-echo \
    -p apiroutes-cli >&2
  step "build the images (tests/images/build.sh: release binaries, OCI layouts)"
  # One list per run (`REFERENCE OCI_LAYOUT_DIR` lines); removed by platform_down.
  platform_images=$(mktemp "${TMPDIR:-/tmp}/apiroutes-images.XXXXXX")
  bash "$repo_root/tests/images/build.sh" >"$platform_images"
  export APIROUTES_CLI=$CARGO_TARGET_DIR/debug/apiroutes
}

# Starts the local control plane and its node in DIR, pushes the images to the node's
# registry, and exports the cluster's environment.
platform_cluster() {
  local dir=$1
  mkdir -p "$dir"
  step "start the local control plane and node ($dir)"
  bash "$repo_root/tests/cluster/cluster.sh" up "$dir" --with-node --images "$platform_images"
  eval "$(bash "$repo_root/tests/cluster/cluster.sh" env "$dir")"
}

# Installs the chart on the running cluster; the gateway serves on 127.0.0.1:PORT.
platform_install() {
  local port=$1
  step "helm install apiroutes (gateway on 127.0.0.1:$port)"
  helm upgrade --install apiroutes "$repo_root/charts/apiroutes" \
    --namespace apiroutes-system --create-namespace \
    -f "$repo_root/charts/apiroutes/ci/local-values.yaml" \
    --set gateway.service.nodePort="$port" \
    --set operator.gatewayUrl="http://127.0.0.1:$port" \
    --wait --timeout 5m >&2
  # The NodePort is on the node's address; the host's 127.0.0.1:PORT is forwarded to it.
  bash "$repo_root/tests/cluster/cluster.sh" forward "$APIROUTES_CLUSTER_DIR" "$port"
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
  [[ -z ${platform_images:-} ]] || rm -f "$platform_images"
}

# A free TCP port on 127.0.0.1, from the OS.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
