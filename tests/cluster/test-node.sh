#!/usr/bin/env bash
# `pass` never fails, so `cond && pass .. || fail ..` is an if/else here.
# shellcheck disable=SC2015
# End-to-end test of the local cluster's real node (kubelet, containerd, runc, CNI,
# kube-proxy, registry; needs root: it creates a network namespace). Brings a cluster up in
# a temp dir with the project's images (tests/images/build.sh) and checks: pulls from the
# node's registry, pod networking and addresses, containers under containerd-shim with the
# securityContext enforced (uid 65532, read-only root, no capabilities, seccomp, memory
# limit), ClusterIP Services through kube-proxy, the `kubernetes` Service, kubectl logs and
# exec, crash loops, a missing image, an OOM kill, hostPorts, liveness restarts, grace
# periods, scale to zero, a second cluster beside the first, and that `down` (also after
# a kill -9 of `up`) leaves no process, mount, cgroup, namespace, link or route behind.
#
#   tests/cluster/test-node.sh [IMAGES_LIST]   # KEEP=1 keeps the temp dirs (logs)
set -euo pipefail

if [[ $(id -u) != 0 ]]; then
	echo "SKIP: tests/cluster/test-node.sh needs root (the node creates a network namespace)"
	exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-test-node.XXXXXX")
dir2=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-test-node2.XXXXXX")
failures=0
t_start=$SECONDS

log() { echo "test-node: $*" >&2; }
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
cleanup() {
	"$here/cluster.sh" down "$dir2" || true
	"$here/cluster.sh" down "$dir" || true
	if [[ ${KEEP:-} == 1 ]]; then log "kept $dir $dir2"; else rm -rf "$dir" "$dir2" "$dir2.log"; fi
}
trap cleanup EXIT

alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# Polls a command (bounded): until CMD succeeds or SECONDS pass.
eventually() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.25
	done
}

images=${1:-}
if [[ -z $images ]]; then
	images=$dir/images.list
	bash "$repo/tests/images/build.sh" >"$images"
fi
fixtures=$(awk '$1 ~ /\/e2e-fixtures:/ { print $1 }' "$images")
echo_image=$(awk '$1 ~ /\/echo:0.1.0$/ { print $1 }' "$images")
[[ -n $fixtures && -n $echo_image ]] || {
	echo "FAIL - $images lacks the echo or e2e-fixtures image"
	exit 1
}

t0=$SECONDS
"$here/cluster.sh" up "$dir" --with-node --images "$images"
log "cluster and node up in $((SECONDS - t0)) s"
eval "$("$here/cluster.sh" env "$dir")"
netns=$APIROUTES_NODE_NETNS
prefix=${APIROUTES_NODE_POD_CIDR%.0/24}
in_node() { nsenter --net="/run/netns/$netns" "$@"; }
log "node slot: netns $netns, node IP $APIROUTES_NODE_IP, pods $APIROUTES_NODE_POD_CIDR"

[[ $(kubectl get node "$APIROUTES_NODE_NAME" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}') == containerd://2.4.* ]] &&
	pass "the Node runs containerd 2.4" || fail "runtime: $(kubectl get node -o jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}')"
# The kubelet refuses anonymous requests; the API server's logs/exec go through it.
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://$APIROUTES_NODE_IP:10250/pods" || true)
[[ $code == 401 ]] && pass "the kubelet refuses anonymous requests (401)" || fail "kubelet anonymous: HTTP $code"

ns=node-test
kubectl create namespace $ns >/dev/null
t_apply=$(date +%s%N)
kubectl -n $ns apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: http
        image: $echo_image
        imagePullPolicy: IfNotPresent
        env: [{name: PORT, value: "8080"}]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
        resources: {limits: {memory: 64Mi}}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http, name: http}]
EOF
# `kubectl wait -l` fails at once while the Deployment controller has not made the pod yet.
web_pod_exists() { [[ -n $(kubectl -n $ns get pod -l app=web -o name 2>/dev/null) ]]; }
if eventually 60 web_pod_exists && kubectl -n $ns wait pod -l app=web --for=condition=Ready --timeout=90s >/dev/null; then
	pass "pod Ready $((($(date +%s%N) - t_apply) / 1000000)) ms after the Deployment was applied (image pulled from the node's registry)"
else
	fail "pod did not become Ready"
	kubectl -n $ns describe pods | tail -30 >&2 || true
fi
pod_ip=$(kubectl -n $ns get pod -l app=web -o jsonpath='{.items[0].status.podIP}')
[[ $pod_ip == "$prefix".* ]] && pass "pod IP $pod_ip from the node's bridge" || fail "pod IP is '$pod_ip'"
slice_has_ip() {
	kubectl -n $ns get endpointslice -l kubernetes.io/service-name=web \
		-o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}' |
		grep -qw "$pod_ip"
}
eventually 30 slice_has_ip && pass "EndpointSlice lists $pod_ip as ready" || fail "EndpointSlice lacks $pod_ip"
curl -fsS --max-time 5 -o /dev/null "http://$pod_ip:8080/" && pass "the host reaches $pod_ip:8080 through the veth" || fail "curl to $pod_ip:8080"
cluster_ip=$(kubectl -n $ns get service web -o jsonpath='{.spec.clusterIP}')
eventually 20 in_node curl -fsS --max-time 2 -o /dev/null "http://$cluster_ip/" &&
	pass "ClusterIP $cluster_ip:80 reaches the pod through kube-proxy (iptables)" || fail "ClusterIP $cluster_ip"
code=$(in_node curl -sk -o /dev/null -w '%{http_code}' "https://10.96.0.1/readyz" || true)
[[ $code == 401 || $code == 200 ]] && pass "the kubernetes Service 10.96.0.1:443 reaches the API server (HTTP $code)" ||
	fail "kubernetes Service: HTTP $code"

# The container is a real one: a process under containerd-shim, in the pod's own network
# namespace, with the securityContext applied by runc.
pod_uid=$(kubectl -n $ns get pod -l app=web -o jsonpath='{.items[0].metadata.uid}')
web_pid=""
for p in $(find /sys/fs/cgroup/memory/"$APIROUTES_NODE_CGROUP" -path "*${pod_uid//-/_}*" -name cgroup.procs -exec cat {} + 2>/dev/null; find /sys/fs/cgroup/memory/"$APIROUTES_NODE_CGROUP" -path "*$pod_uid*" -name cgroup.procs -exec cat {} + 2>/dev/null); do
	[[ $(cat "/proc/$p/comm" 2>/dev/null) == echo ]] && web_pid=$p
done
if [[ -n $web_pid ]]; then
	parent=$(awk '/^PPid:/ {print $2}' "/proc/$web_pid/status")
	[[ $(cat "/proc/$parent/comm") == containerd-shim* ]] && pass "echo (pid $web_pid) runs under containerd-shim (pid $parent)" ||
		fail "parent of $web_pid is $(cat "/proc/$parent/comm")"
	[[ $(awk '/^Uid:/ {print $2}' "/proc/$web_pid/status") == 65532 ]] && pass "it runs as uid 65532" || fail "uid: $(grep Uid "/proc/$web_pid/status")"
	[[ $(awk '/^CapEff:/ {print $2}' "/proc/$web_pid/status") == 0000000000000000 ]] && pass "no effective capabilities" || fail "$(grep CapEff "/proc/$web_pid/status")"
	[[ $(awk '/^Seccomp:/ {print $2}' "/proc/$web_pid/status") == 2 ]] && pass "seccomp filter on (RuntimeDefault)" || fail "$(grep Seccomp "/proc/$web_pid/status")"
	[[ $(awk '/^NoNewPrivs:/ {print $2}' "/proc/$web_pid/status") == 1 ]] && pass "no_new_privs" || fail "$(grep NoNewPrivs "/proc/$web_pid/status")"
	awk '$5 == "/" { print $6 }' "/proc/$web_pid/mountinfo" | grep -q '^ro' && pass "its root filesystem is read-only" || fail "root mount: $(awk '$5 == "/"' "/proc/$web_pid/mountinfo")"
	[[ $(readlink "/proc/$web_pid/ns/net") != "$(readlink /proc/self/ns/net)" && $(readlink "/proc/$web_pid/ns/net") != "$(in_node readlink /proc/self/ns/net)" ]] &&
		pass "it has its own network namespace" || fail "pod shares a network namespace"
	mem_cg=$(awk -F: '$2 ~ /memory/ { print $3 }' "/proc/$web_pid/cgroup")
	[[ $(cat "/sys/fs/cgroup/memory$mem_cg/memory.limit_in_bytes") == 67108864 ]] && pass "memory limit 64Mi in its cgroup ($mem_cg)" ||
		fail "memory limit: $(cat "/sys/fs/cgroup/memory$mem_cg/memory.limit_in_bytes" 2>&1)"
else
	fail "no echo process found in the pod's cgroups"
fi
host_addrs=$(ip -o addr show | awk '{print $4}' | grep -c "^${prefix//./\\.}\\." || true)
((host_addrs == 0)) && pass "no pod address on any host interface" || fail "host has $prefix.x addresses"
[[ $(cat /proc/sys/net/ipv4/ip_forward) == 0 ]] && pass "the host's IP forwarding is still off" || log "note: ip_forward was already on"

# kubectl logs and exec go API server -> kubelet (by the node's IP, with the API server's
# client certificate) -> containerd.
kubectl -n $ns run fixtures --image "$fixtures" --restart Never \
	--env APIROUTES_HANDLER=pages/api/log.mjs --env PORT=8080 \
	--overrides '{"spec":{"securityContext":{"runAsUser":65532,"runAsNonRoot":true}}}' >/dev/null
if kubectl -n $ns wait pod/fixtures --for=condition=Ready --timeout=60s >/dev/null; then
	fx_ip=$(kubectl -n $ns get pod fixtures -o jsonpath='{.status.podIP}')
	token=log-$RANDOM$RANDOM
	curl -fsS --max-time 5 -o /dev/null "http://$fx_ip:8080/api/log?msg=$token" || true
	logs_have() { kubectl -n $ns logs fixtures | grep -q "$token"; }
	eventually 15 logs_have && pass "kubectl logs shows the function's output" || fail "kubectl logs: $(kubectl -n $ns logs fixtures 2>&1 | tail -3)"
	out=$(kubectl -n $ns exec fixtures -- node -e 'console.log(process.getuid())' 2>&1 || true)
	[[ $out == 65532 ]] && pass "kubectl exec runs in the container (uid $out)" || fail "kubectl exec: $out"
else
	fail "fixtures pod not Ready: $(kubectl -n $ns describe pod fixtures | tail -5)"
fi

# Crash loop, missing image, OOM kill, hostPort.
host_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kubectl -n $ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers: [{name: main, image: $fixtures, env: [{name: APIROUTES_HANDLER, value: pages/api/no-such-handler.mjs}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: unknown}
spec:
  containers: [{name: main, image: ghcr.io/apiroutes/does-not-exist:0.0.1}]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: main
    image: $fixtures
    env: [{name: APIROUTES_HANDLER, value: pages/api/hog.mjs}, {name: PORT, value: "8080"}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    resources: {limits: {memory: 128Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  containers:
  - name: http
    image: $echo_image
    env: [{name: PORT, value: "9000"}]
    ports: [{containerPort: 9000, hostPort: $host_port}]
    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 1}
EOF
crashlooping() {
	local out restarts code
	out=$(kubectl -n $ns get pod crash -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}')
	read -r restarts code <<<"$out"
	((restarts >= 2)) && [[ -n $code && $code != 0 ]]
}
eventually 90 crashlooping && pass "a crashing container is restarted with back-off (exit code $(kubectl -n $ns get pod crash -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}'))" ||
	fail "crash loop: $(kubectl -n $ns get pod crash -o jsonpath='{.status.containerStatuses[0]}')"
pull_error() { kubectl -n $ns get pod unknown -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -qE '^(ErrImagePull|ImagePullBackOff)$'; }
eventually 60 pull_error && pass "a missing image: $(kubectl -n $ns get pod unknown -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')" ||
	fail "missing image not reported: $(kubectl -n $ns get pod unknown -o jsonpath='{.status.containerStatuses[0].state}')"
if kubectl -n $ns wait pod/hog --for=condition=Ready --timeout=60s >/dev/null; then
	hog_ip=$(kubectl -n $ns get pod hog -o jsonpath='{.status.podIP}')
	curl -s --max-time 30 -o /dev/null "http://$hog_ip:8080/api/hog" || true
fi
oom_killed() { [[ $(kubectl -n $ns get pod hog -o jsonpath='{.status.containerStatuses[0].lastState.terminated.reason}') == OOMKilled ]]; }
eventually 60 oom_killed && pass "a container over its 128Mi limit is OOMKilled and restarted (restarts: $(kubectl -n $ns get pod hog -o jsonpath='{.status.containerStatuses[0].restartCount}'))" ||
	fail "OOM kill: $(kubectl -n $ns get pod hog -o jsonpath='{.status.containerStatuses[0]}')"
if kubectl -n $ns wait pod/hostport --for=condition=Ready --timeout=60s >/dev/null &&
	eventually 20 curl -fsS --max-time 2 -o /dev/null "http://$APIROUTES_NODE_IP:$host_port/"; then
	pass "hostPort $APIROUTES_NODE_IP:$host_port reaches the pod (portmap)"
else
	fail "hostPort $host_port"
fi
"$here/cluster.sh" forward "$dir" "$host_port"
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$host_port/" && pass "cluster.sh forward: host 127.0.0.1:$host_port reaches the hostPort" ||
	fail "forward 127.0.0.1:$host_port"

# Liveness: a failing probe restarts the container.
kubectl -n $ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $echo_image
    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}
EOF
restarted() { (($(kubectl -n $ns get pod unhealthy -o jsonpath='{.status.containerStatuses[0].restartCount}') >= 1)); }
eventually 40 restarted && pass "a failing liveness probe restarts the container" || fail "liveness: $(kubectl -n $ns get pod unhealthy -o jsonpath='{.status.containerStatuses[0]}')"

# Scale to zero: the container stops and the pod object goes away.
kubectl -n $ns scale deployment web --replicas=0 >/dev/null
no_web_pods() { [[ -z $(kubectl -n $ns get pods -l app=web -o name) ]]; }
eventually 30 no_web_pods && pass "scaled to zero: pod deleted" || fail "web pod still there"
[[ -z $web_pid ]] || { ! alive "$web_pid" && pass "its process $web_pid stopped" || fail "process $web_pid still running"; }
kubectl -n $ns delete pod crash unknown hog hostport unhealthy fixtures --timeout=60s >/dev/null && pass "pods deleted" || fail "pod deletion"

# A second cluster beside the first, whose `up` is killed with -9 half way: `down` still
# removes everything it made, and the first cluster is untouched.
# Its own session and process group, so -9 reaches the whole script (the components it
# started run in sessions of their own, as they would after a crash).
setsid bash "$here/cluster.sh" up "$dir2" --with-node --images "$images" >"$dir2.log" 2>&1 &
up_pid=$!
node_started() { [[ -f $dir2/pids/containerd ]]; }
if eventually 120 node_started; then
	sleep 1
	kill -KILL -- "-$up_pid" 2>/dev/null || true
	pass "second cluster (slot $(<"$dir2/node-slot")) started its node; its up was killed with -9"
else
	fail "second cluster did not start: $(tail -5 "$dir2.log")"
fi
wait "$up_pid" 2>/dev/null || true
slot2=$(cat "$dir2/node-slot" 2>/dev/null || echo "")
"$here/cluster.sh" down "$dir2"
kubectl get node "$APIROUTES_NODE_NAME" >/dev/null && pass "the first cluster still answers" || fail "first cluster broken"

# Teardown leaves nothing: processes, shims, mounts, cgroups, namespaces, links, routes.
pids_before=$(for f in "$dir"/pids/*; do cat "$f"; done)
slot1=$(<"$dir/node-slot")
"$here/cluster.sh" down "$dir"
check_clean() {
	local what=$1 d=$2 n=$3 ns_name veth cidr run cg left="" p m
	if ((n == 0)); then ns_name=apiroutes-node; else ns_name=apiroutes-node-$n; fi
	veth=apiroutes$n cidr=10.$((244 + n)).0.0/16 run=/run/apiroutes-node/s$n cg=apiroutes-s$n
	ip netns list | awk '{print $1}' | grep -qx "$ns_name" && left+=" netns:$ns_name"
	ip link show "$veth" >/dev/null 2>&1 && left+=" link:$veth"
	[[ -n $(ip route show "$cidr") ]] && left+=" route:$cidr"
	grep -qE " ($run|$d)/" /proc/self/mountinfo && left+=" mounts:$(grep -cE " ($run|$d)/" /proc/self/mountinfo)"
	for m in $(awk '$9 == "cgroup" { print $5 }' /proc/self/mountinfo | sort -u); do
		[[ -d $m/$cg ]] && left+=" cgroup:$m/$cg"
	done
	[[ -e $run ]] && left+=" dir:$run"
	for p in /proc/[0-9]*; do
		[[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *"$run/"* ]] && left+=" process:${p#/proc/}"
	done
	[[ -z $left ]] && pass "$what: nothing left behind" || fail "$what left:$left"
}
[[ -z $slot2 ]] || check_clean "second cluster (up killed with -9, then down)" "$dir2" "$slot2"
check_clean "first cluster" "$dir" "$slot1"
left=""
for p in $pids_before; do alive "$p" && left+=" $p"; done
[[ -z $left ]] && pass "no component left running" || fail "left running:$left"
[[ -z $(iptables -t nat -S 2>/dev/null | grep -v '^-P') ]] && pass "no NAT rule on the host" || fail "host NAT rules: $(iptables -t nat -S | head -3)"

log "finished in $((SECONDS - t_start)) s"
if ((failures > 0)); then
	echo "$failures check(s) failed (logs: KEEP=1 $0)"
	exit 1
fi
echo "all checks passed"
