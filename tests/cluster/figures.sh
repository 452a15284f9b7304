#!/usr/bin/env bash
# Prints the platform's figures on the real node (a benchmark, not a test: it asserts
# nothing). Run it against a platform that tests/platform.sh (or tests/run.sh) brought up:
#
#   eval "$(tests/cluster/cluster.sh env ~/.cache/apiroutes/platform)"
#   APIROUTES_GATEWAY_URL=http://127.0.0.1:8080 bash tests/cluster/figures.sh [ROUTES] [WAKES]
#
# Figures: pod Ready after a Deployment is scaled 0 → 1; `kubectl apply` of a new ApiRoute →
# first 200 through the gateway (p50/p99 over ROUTES routes, default 20); cold start from
# zero (p50/p99 over WAKES wakes, default 10, from the gateway's `Server-Timing:
# activation;dur=`); memory (RSS) of the node's processes. Bounded: every wait has a deadline.
set -euo pipefail

routes=${1:-20}
wakes=${2:-10}
gw=${APIROUTES_GATEWAY_URL:?set APIROUTES_GATEWAY_URL (the gateway, e.g. http://127.0.0.1:8080)}
: "${APIROUTES_CLUSTER_DIR:?eval \"\$(tests/cluster/cluster.sh env DIR)\" first}"
image=${APIROUTES_FIGURES_IMAGE:-ghcr.io/apiroutes/echo:0.1.0}
ns=figures-$RANDOM
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# p50 and p99 (nearest rank) of the numbers on stdin.
pct() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
	p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
	printf "p50 %d ms, p99 %d ms (n=%d)\n", p50, p99, NR }'; }
cleanup() { kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
kubectl create namespace "$ns" >/dev/null

echo "== pod Ready after a Deployment is scaled 0 -> 1 ($image, 5 times)"
kubectl -n "$ns" create deployment plain --image "$image" --replicas 0 >/dev/null
kubectl -n "$ns" patch deployment plain --type json -p '[{"op":"add","path":"/spec/template/spec/containers/0/readinessProbe","value":{"tcpSocket":{"port":8080},"periodSeconds":1}}]' >/dev/null
for i in 1 2 3 4 5; do
	t0=$(now_ms)
	kubectl -n "$ns" scale deployment plain --replicas 1 >/dev/null
	kubectl -n "$ns" wait pod -l app=plain --for=condition=Ready --timeout=60s >/dev/null 2>&1 || {
		sleep 1
		kubectl -n "$ns" wait pod -l app=plain --for=condition=Ready --timeout=60s >/dev/null
	}
	echo $(($(now_ms) - t0))
	kubectl -n "$ns" scale deployment plain --replicas 0 >/dev/null
	for ((j = 0; j < 120; j++)); do
		[[ -z $(kubectl -n "$ns" get pods -l app=plain -o name) ]] && break
		sleep 0.25
	done
done | pct

echo "== kubectl apply of a new ApiRoute -> first 200 through the gateway ($routes routes)"
for i in $(seq 1 "$routes"); do
	t0=$(now_ms)
	kubectl apply -f - >/dev/null <<EOF
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: {name: r$i, namespace: $ns}
spec:
  path: /api/figures-$ns/r$i
  image: $image
  scaling: {minReplicas: 0, scaleToZeroAfterSeconds: 30}
EOF
	code=000
	for ((j = 0; j < 600; j++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$gw/api/figures-$ns/r$i" || true)
		[[ $code == 200 ]] && break
		sleep 0.05
	done
	[[ $code == 200 ]] || echo "r$i: no 200 (last $code)" >&2
	echo $(($(now_ms) - t0))
done | pct

echo "== cold start from zero ($wakes wakes of one route; Server-Timing activation)"
kubectl apply -f - >/dev/null <<EOF
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: {name: sleepy, namespace: $ns}
spec:
  path: /api/figures-$ns/sleepy
  image: $image
  scaling: {minReplicas: 0, scaleToZeroAfterSeconds: 1}
EOF
asleep() { [[ $(kubectl -n "$ns" get deployment sleepy -o jsonpath='{.spec.replicas}' 2>/dev/null) == 0 ]] &&
	[[ -z $(kubectl -n "$ns" get pods -l apiroutes.dev/route=sleepy -o name 2>/dev/null) ]]; }
for i in $(seq 1 "$wakes"); do
	for ((j = 0; j < 600; j++)); do asleep && break; sleep 0.2; done
	curl -s -D - -o /dev/null --max-time 60 "$gw/api/figures-$ns/sleepy" |
		tr -d '\r' | awk -F'dur=' 'tolower($0) ~ /^server-timing:.*activation/ { split($2, a, /[,;]/); printf "%d\n", a[1] }'
done | pct

echo "== memory of the node's processes (RSS)"
for f in "$APIROUTES_CLUSTER_DIR"/pids/*; do
	pid=$(<"$f")
	[[ -r /proc/$pid/status ]] && printf '%-24s %6d MB\n' "$(basename "$f")" $(($(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") / 1024))
done
shims=0 shim_kb=0
for p in /proc/[0-9]*; do
	[[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *containerd-shim-runc-v2*"-address $APIROUTES_NODE_RUN/"* ]] || continue
	shims=$((shims + 1)) shim_kb=$((shim_kb + $(awk '/^VmRSS:/ {print $2}' "$p/status")))
done
((shims == 0)) || printf '%-24s %6d MB (%d shims, %d MB each)\n' containerd-shims $((shim_kb / 1024)) "$shims" $((shim_kb / 1024 / shims))
