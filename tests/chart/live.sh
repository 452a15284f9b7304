#!/usr/bin/env bash
# The chart with running pods: a local cluster with its real node (tests/cluster), the
# project's images (tests/images/build.sh) pulled from the node's registry, `helm install`
# with charts/apiroutes/ci/local-values.yaml, then: pods Ready, exactly one leader labelled,
# the chart's Lease held by it and the gateway pushing to it, an ApiRoute served through the
# gateway's NodePort Service, a failover, the API server frozen (SIGSTOP) longer than the lease with
# traffic and a sleeping route (afterwards exactly one leader, and the route still wakes),
# and `helm uninstall` with everything running leaving nothing of the release (the Lease
# included) but the CRD. Bounded; exits non-zero on failure.
#
#   bash tests/chart/live.sh [IMAGES_LIST]   # root (the node makes a network namespace)
#
# IMAGES_LIST (`REFERENCE OCI_LAYOUT_DIR` lines) defaults to a fresh tests/images/build.sh.
# Prints SKIP and exits 0 when not root. KEEP=1 keeps the temp dir (cluster and pod logs).
set -euo pipefail

if [[ -z ${_APIROUTES_CHART_BOUNDED:-} ]]; then
	export _APIROUTES_CHART_BOUNDED=1
	exec timeout -k 30 "${APIROUTES_CHART_TIMEOUT:-900}" bash "$0" "$@"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=$repo/charts/apiroutes
# Free ports come from the platform helpers (one place).
source "$repo/tests/lib/platform.sh"

if [[ $(id -u) != 0 ]]; then
	echo "SKIP tests/chart/live.sh: needs root (the node creates a network namespace)"
	exit 0
fi

failures=0
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
step() { printf '\n==> %s\n' "$*" >&2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-chart-live.XXXXXX")
frozen=
traffic=
cleanup() {
	local rc=$?
	# Never leave the API server stopped, nor the traffic loop running.
	[[ -z $frozen ]] || kill -CONT "$frozen" 2>/dev/null || true
	[[ -z $traffic ]] || kill "$traffic" 2>/dev/null || true
	"$repo/tests/cluster/cluster.sh" down "$dir/cluster" || true
	if [[ ${KEEP:-} == 1 ]]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

images=${1:-}
if [[ -z $images ]]; then
	images=$dir/images.list
	bash "$repo/tests/images/build.sh" >"$images"
fi

step "local cluster with its node"
timeout 600 "$repo/tests/cluster/cluster.sh" up "$dir/cluster" --with-node --images "$images" >&2
eval "$("$repo/tests/cluster/cluster.sh" env "$dir/cluster")"
kc() { timeout 60 kubectl "$@"; }
port=$(free_port)
gw=http://127.0.0.1:$port
ns=apiroutes-system
sel=app.kubernetes.io/instance=apiroutes

# Polls a command until it succeeds (90 s).
eventually() {
	local what=$1 i
	shift
	for ((i = 0; i < 180; i++)); do
		if "$@" >/dev/null 2>&1; then
			pass "$what"
			return 0
		fi
		sleep 0.5
	done
	fail "$what (after 90 s)"
	return 1
}

step "helm install --wait (ci/local-values.yaml, gateway on $gw)"
# As tests/lib/platform.sh installs it: --wait returns once every pod is Ready.
if timeout 200 helm install apiroutes "$chart" -n "$ns" --create-namespace \
	-f "$chart/ci/local-values.yaml" --set gateway.service.nodePort="$port" \
	--set operator.gatewayUrl="$gw" --wait --timeout 3m >"$dir/install.txt" 2>&1; then
	pass "helm install --wait"
else
	fail "helm install --wait"
	cat "$dir/install.txt"
	kc get pods -A -o wide || true
	exit 1
fi

ready_pods() {
	[[ $(kc get pods -n "$ns" -l "$sel,app.kubernetes.io/component=$1" \
		-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
		grep -c True) -ge $2 ]]
}
eventually "the gateway pod is Ready" ready_pods gateway 1
"$repo/tests/cluster/cluster.sh" forward "$dir/cluster" "$port"
leader() { kc get pods -n "$ns" -l "$sel,apiroutes.dev/leader=true" -o jsonpath='{.items[*].metadata.name}'; }
one_leader() { [[ $(leader | wc -w) == 1 ]]; }
eventually "exactly one operator pod is labelled apiroutes.dev/leader=true" one_leader
lead=$(leader)
lease_holder() { [[ $(kc get lease apiroutes-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}') == "$lead" ]]; }
eventually "the chart's Lease is held by the labelled pod ($lead)" lease_holder
lead_ip=$(kc get pod "$lead" -n "$ns" -o jsonpath='{.status.podIP}')
# The gateway follows the Lease: its last "autoscaler endpoint" log line names the leader.
autoscaler_is_leader() {
	kc logs -n "$ns" -l "$sel,app.kubernetes.io/component=gateway" --tail=-1 |
		grep 'autoscaler endpoint' | tail -1 | grep -q "http://$lead_ip:"
}
eventually "the gateway pushes to the leader's autoscaler endpoint ($lead_ip)" autoscaler_is_leader
eventually "both operator pods are Ready (the leader after its caches sync)" ready_pods operator 2
not_found_json() { curl -s -m 5 "$gw/api/nothing-here" | grep -q '{'; }
eventually "the gateway answers on its NodePort ($gw) with a JSON 404" not_found_json

step "an ApiRoute served through the gateway"
kc create namespace live-demo >/dev/null
kc apply -f - >/dev/null <<'EOF'
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: { name: hello, namespace: live-demo }
spec:
  path: /api/hello/[name]
  image: ghcr.io/apiroutes/echo:0.1.0
  readinessPath: /healthz
  scaling: { minReplicas: 1 }
EOF
served() { curl -s -m 10 "$gw/api/hello/world" | grep -q '"x-apiroute-name":"live-demo/hello"'; }
eventually "GET /api/hello/world reaches the echo function through the gateway" served
status_url() { [[ $(kc get apiroute hello -n live-demo -o jsonpath='{.status.url}') == "$gw"* ]]; }
eventually "status.url uses operator.gatewayUrl" status_url

step "leader failover: the label and the autoscaler endpoint follow the Lease"
kc delete pod "$lead" -n "$ns" --wait=false >/dev/null
old_lead=$lead
new_leader() {
	lead=$(leader)
	[[ $(wc -w <<<"$lead") == 1 && $lead != "$old_lead" ]] || return 1
	lead_ip=$(kc get pod "$lead" -n "$ns" -o jsonpath='{.status.podIP}')
	lease_holder && autoscaler_is_leader
}
eventually "another pod leads, holds the Lease and is the autoscaler endpoint" new_leader
eventually "the route is still served" served

step "the API server frozen longer than the lease, with traffic and a sleeping route"
t_chaos=$SECONDS
kc apply -f - >/dev/null <<'EOF'
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: { name: sleepy, namespace: live-demo }
spec:
  path: /api/sleepy
  image: ghcr.io/apiroutes/echo:0.1.0
  readinessPath: /healthz
  scaling: { minReplicas: 0, scaleToZeroAfterSeconds: 1 }
EOF
asleep() {
	[[ $(kc get deployments -n live-demo -l apiroutes.dev/route=sleepy -o jsonpath='{.items[*].spec.replicas}') == 0 ]] &&
		[[ -z $(kc get pods -n live-demo -l apiroutes.dev/route=sleepy -o name) ]]
}
eventually "the route sleepy is scaled to zero, no pod left" asleep
# pod -> its operator's apiroutes_operator_leader (admin port, from inside the node).
leader_metric() {
	local ip
	ip=$(kc get pod "$1" -n "$ns" -o jsonpath='{.status.podIP}')
	nsenter --net="/run/netns/$APIROUTES_NODE_NETNS" curl -s -m 3 "http://$ip:9090/metrics" |
		awk '$1 == "apiroutes_operator_leader" { print $2 }'
}
# The Lease holder is the only labelled pod and the only operator reporting leader 1.
exactly_one_leader() {
	local holder p n=0 reporting=
	holder=$(kc get lease apiroutes-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}')
	[[ -n $holder && $(leader) == "$holder" ]] || return 1
	for p in $(kc get pods -n "$ns" -l "$sel,app.kubernetes.io/component=operator" -o jsonpath='{.items[*].metadata.name}'); do
		if [[ $(leader_metric "$p") == 1 ]]; then
			n=$((n + 1))
			reporting=$p
		fi
	done
	[[ $n == 1 && $reporting == "$holder" ]]
}
eventually "before: exactly one leader (Lease holder = labelled pod = leader metric 1)" exactly_one_leader
before=$(kc get lease apiroutes-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}')
# Traffic to the active route all along (load reports keep flowing to the autoscaler).
(while :; do curl -s -m 2 -o /dev/null "$gw/api/hello/world" || true; sleep 0.1; done) &
traffic=$!
apiserver=$(<"$dir/cluster/pids/kube-apiserver")
freeze=${APIROUTES_FREEZE_SECONDS:-25}
kill -STOP "$apiserver"
frozen=$apiserver
t_freeze=$SECONDS
ok_during=0
for ((i = 0; i < freeze * 2; i++)); do
	curl -s -m 1 "$gw/api/hello/world" | grep -q '"x-apiroute-name":"live-demo/hello"' && ok_during=$((ok_during + 1))
	sleep 0.5
done
kill -CONT "$apiserver"
frozen=
echo "info - API server frozen $((SECONDS - t_freeze)) s (lease 15 s); $ok_during/$((freeze * 2)) requests to the active route served meanwhile" >&2
((ok_during > 0)) && pass "the gateway served the active route while the API server was frozen" ||
	fail "the gateway served the active route while the API server was frozen"
t_thaw=$SECONDS
if eventually "after: exactly one leader (Lease holder = labelled pod = leader metric 1)" exactly_one_leader; then
	after=$(kc get lease apiroutes-operator -n "$ns" -o jsonpath='{.spec.holderIdentity}')
	echo "info - one leader again $((SECONDS - t_thaw)) s after the thaw: $before before, $after after" >&2
fi
sleep 5
exactly_one_leader && pass "still exactly one leader 5 s later" || fail "still exactly one leader 5 s later"
kill "$traffic" 2>/dev/null || true
wait "$traffic" 2>/dev/null || true
traffic=
t_wake=$SECONDS
woke() { curl -s -m 60 "$gw/api/sleepy" | grep -q '"x-apiroute-name":"live-demo/sleepy"'; }
eventually "the sleeping route wakes on a request after the freeze" woke &&
	echo "info - sleepy answered $((SECONDS - t_wake)) s after the first request" >&2
autoscaler_is_leader_now() {
	lead=$(leader)
	lead_ip=$(kc get pod "$lead" -n "$ns" -o jsonpath='{.status.podIP}')
	autoscaler_is_leader
}
eventually "the gateway pushes to the leader after the freeze" autoscaler_is_leader_now
for p in $(kc get pods -n "$ns" -l "$sel,app.kubernetes.io/component=operator" -o jsonpath='{.items[*].metadata.name}'); do
	restarts=$(kc get pod "$p" -n "$ns" -o jsonpath='{.status.containerStatuses[0].restartCount}')
	echo "info - $p restarts: $restarts" >&2
	# How a leader that lost the Lease during the freeze stepped down (its previous run).
	if ((restarts > 0)); then
		kc logs "$p" -n "$ns" --previous 2>/dev/null |
			grep -E 'renew|stopped leading|lost the leader|labelling' |
			sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/info -   /' >&2 || true
	fi
done
echo "info - the freeze step took $((SECONDS - t_chaos)) s" >&2

step "helm uninstall with everything running"
if timeout 180 helm uninstall apiroutes -n "$ns" --wait --timeout 150s >"$dir/uninstall.txt" 2>&1; then
	pass "helm uninstall"
else
	fail "helm uninstall"
	cat "$dir/uninstall.txt"
fi
types=$(kc api-resources --verbs=list -o name | grep -v '^events' | paste -sd, -)
nothing_left() {
	local out
	out=$(kc get "$types" -A -l "$sel" -o name 2>&1) || return 1
	[[ -z $(grep -v -e '^No resources found' -e '^Warning:' <<<"$out") ]]
}
eventually "nothing labelled with the release is left" nothing_left
no_lease() { ! kc get lease apiroutes-operator -n "$ns" >/dev/null 2>&1; }
eventually "the leader Lease is gone (no operator re-created it while stopping)" no_lease
no_pods() { [[ -z $(kc get pods -n "$ns" -o name) ]]; }
eventually "no pod left in $ns" no_pods
kc get crd apiroutes.apiroutes.dev >/dev/null 2>&1 && pass "CRD kept" || fail "CRD kept"

echo
if ((failures > 0)); then
	echo "chart live test: $failures failure(s) (logs: KEEP=1 keeps $dir)"
	exit 1
fi
echo "chart live test: all passed"
