#!/usr/bin/env bash
# Brings the apiroutes platform up on this machine and serves the examples, until Ctrl-C.
#
#   bash tests/platform.sh            # gateway on http://127.0.0.1:8080
#   APIROUTES_PORT=9000 bash tests/platform.sh
#
# Builds everything it needs (cached under ~/.cache/apiroutes): the binaries and the images
# of every component; starts a real Kubernetes control plane on 127.0.0.1 and a real node
# (kubelet, containerd, runc, in its own network namespace: needs root) whose registry holds
# the images; installs the Helm chart, applies examples/, and prints how to reach the
# routes. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/env.sh
source tests/lib/platform.sh

port=${APIROUTES_PORT:-8080}
dir=${APIROUTES_PLATFORM_DIR:-$APIROUTES_CACHE/platform}
[[ $(id -u) == 0 ]] || { echo "tests/platform.sh needs root (the local node creates a network namespace)" >&2; exit 1; }

platform_build
trap 'step "stopping"; platform_down "$dir"; step "stopped: nothing of apiroutes is left running"' EXIT
platform_up "$dir" "$port"

step "apply the examples"
kubectl apply -f examples/manifests/ >&2
# The image holds the app's route files bundled, as tests/images/build.sh made it.
"$CARGO_TARGET_DIR/debug/apiroutes" import examples/nextjs \
  --namespace nextjs --image 'ghcr.io/apiroutes/nextjs-example:0.1.0' > "$dir/nextjs-routes.yaml"
kubectl create namespace nextjs --dry-run=client -o yaml | kubectl apply -f - >&2
kubectl apply -f "$dir/nextjs-routes.yaml" >&2

cat <<MSG

apiroutes is up. The gateway serves on http://127.0.0.1:$port

  curl http://127.0.0.1:$port/api/echo/hello            # echo function, static route
  curl http://127.0.0.1:$port/api/echo/users/42         # dynamic segment (scaled to zero: the first request wakes it)
  curl http://127.0.0.1:$port/api/echo/docs/a/b/c       # catch-all
  curl http://127.0.0.1:$port/api/users/42              # Next.js handler pages/api/users/[id].js
  curl -X POST -d email=you@example.com http://127.0.0.1:$port/api/subscribe   # Next.js handler, form body

  export KUBECONFIG=$dir/kubeconfig PATH=$APIROUTES_CLUSTER_BIN:\$PATH
  kubectl get ar -A                                     # the routes, their status and replicas
  kubectl logs -n nextjs deploy/api-hello               # a function's output (real containers)

Press Ctrl-C to stop.
MSG
# Serve until Ctrl-C or SIGTERM; the EXIT trap tears everything down (and the sleeper goes
# too, so no `sleep` outlives the script).
sleeper=
trap '[[ -z $sleeper ]] || kill "$sleeper" 2>/dev/null; exit 130' INT
trap '[[ -z $sleeper ]] || kill "$sleeper" 2>/dev/null; exit 143' TERM
while true; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
