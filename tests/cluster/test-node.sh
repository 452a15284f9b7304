#!/usr/bin/env bash
# `pass` never fails, so `cond && pass .. || fail ..` is an if/else here.
# shellcheck disable=SC2015
# End-to-end test of the local control plane and node agent (needs root: it creates a
# network namespace). Brings a cluster up in a temp dir, runs pods as processes, checks
# readiness, EndpointSlices, pod networking, ServiceAccount credentials with real RBAC,
# env resolution, crash loops, unknown images, hostPorts, scale to zero and teardown.
#
#   tests/cluster/test-node.sh            # KEEP=1 keeps the temp dir (logs) afterwards
set -euo pipefail

if [[ $(id -u) != 0 ]]; then
	echo "SKIP: tests/cluster/test-node.sh needs root (the node agent creates a network namespace)"
	exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-test-node.XXXXXX")
failures=0
t_start=$SECONDS

log() { echo "test-node: $*" >&2; }
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
cleanup() {
	"$here/cluster.sh" down "$dir" || true
	if [[ ${KEEP:-} == 1 ]]; then log "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

# A process that exists and is not a zombie.
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

cat >"$dir/images.yaml" <<'EOF'
test/http:1:
  command: [python3, -m, http.server]
  env: {PYTHONUNBUFFERED: "1"}
test/sh:
  command: [sh, -c]
EOF

# Fast restarts for the crash-loop check (the agent reads this from its environment).
export APIROUTES_NODE_BACKOFF_SECONDS=1 APIROUTES_NODE_MAX_BACKOFF_SECONDS=4
t0=$SECONDS
"$here/cluster.sh" up "$dir" --with-node "$dir/images.yaml"
log "cluster and node up in $((SECONDS - t0)) s"
eval "$("$here/cluster.sh" env "$dir")"
agent_pid=$(<"$dir/pids/node-agent")
# This cluster's node slot (cluster.sh gives each running cluster its own).
netns=$APIROUTES_NODE_NETNS
prefix=${APIROUTES_NODE_IP%.0.1}
log "node slot: netns $netns, veth $APIROUTES_NODE_HOST_VETH, pods $APIROUTES_NODE_POD_CIDR"

ns=node-test
kubectl create namespace $ns >/dev/null
kubectl -n $ns create secret generic creds --from-literal=password=hunter2 >/dev/null
t_apply=$(date +%s%N)
kubectl -n $ns apply -f - >/dev/null <<'EOF'
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
      containers:
      - name: http
        image: test/http:1
        args: ["--bind", "$(HOST)", "$(PORT)"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080, name: http}]
EOF
if kubectl -n $ns wait pod -l app=web --for=condition=Ready --timeout=60s >/dev/null; then
	pass "pod Ready $((($(date +%s%N) - t_apply) / 1000000)) ms after the Deployment was applied"
else
	fail "pod did not become Ready"
	kubectl -n $ns get pods -o yaml | tail -40 >&2 || true
fi
pod_ip=$(kubectl -n $ns get pod -l app=web -o jsonpath='{.items[0].status.podIP}')
[[ $pod_ip == "$prefix".* ]] && pass "pod IP $pod_ip" || fail "pod IP is '$pod_ip'"
slice_has_ip() {
	kubectl -n $ns get endpointslice -l kubernetes.io/service-name=web \
		-o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}' |
		grep -qw "$pod_ip"
}
if eventually 30 slice_has_ip; then pass "EndpointSlice lists $pod_ip as ready"; else fail "EndpointSlice lacks $pod_ip"; fi
if curl -fsS --max-time 5 "http://$pod_ip:8080/" >/dev/null; then pass "curl from the host to $pod_ip:8080"; else fail "curl to $pod_ip:8080"; fi
web_pid=$(kubectl -n $ns get pod -l app=web -o jsonpath='{.items[0].status.containerStatuses[0].containerID}')
web_pid=${web_pid#process://}
[[ $(ip netns identify "$web_pid" 2>/dev/null) == "$netns" ]] &&
	pass "container process $web_pid runs in netns $netns" || fail "process $web_pid not in $netns"
host_addrs=$(ip -o addr show | awk '{print $4}' | grep -c "^${prefix//./\\.}\\." || true)
((host_addrs == 0)) && pass "no pod address on any host interface" || fail "host has $prefix.x addresses"
[[ $(cat /proc/sys/net/ipv4/ip_forward) == 0 ]] && pass "IP forwarding still off" || log "note: ip_forward was already on"

# A pod with its ServiceAccount's token, env from a Secret and the downward API.
kubectl -n $ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: whoami}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: test/sh
    args: ['echo "secret=\$PASSWORD name=\$MY_NAME ns=\$MY_NS"; $APIROUTES_CLUSTER_BIN/kubectl auth whoami -o jsonpath="{.status.userInfo.username}{\"\\n\"}"; $APIROUTES_CLUSTER_BIN/kubectl get secrets 2>&1 | tail -1']
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MY_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
EOF
phase_is() { [[ $(kubectl -n $ns get pod "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
if eventually 60 phase_is whoami Succeeded; then pass "one-shot pod Succeeded"; else fail "whoami pod did not succeed"; fi
whoami_log=$(cat "$dir"/node/pods/${ns}_whoami_*/main.log 2>/dev/null || true)
grep -q "secret=hunter2 name=whoami ns=$ns" <<<"$whoami_log" && pass "env from Secret and fieldRef" || fail "env: $whoami_log"
grep -qx "system:serviceaccount:$ns:default" <<<"$whoami_log" && pass "pod talks to the API server as its ServiceAccount" || fail "identity: $whoami_log"
grep -q 'Forbidden\|forbidden' <<<"$whoami_log" && pass "RBAC applies to the pod (secrets forbidden)" || fail "RBAC: $whoami_log"
exit_code=$(kubectl -n $ns get pod whoami -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
[[ $exit_code == 0 ]] && pass "terminated exitCode 0 reported" || fail "exitCode '$exit_code'"

# automountServiceAccountToken: false -> no credentials handed to the pod.
kubectl -n $ns apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: nocreds}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers: [{name: main, image: test/sh, args: ['echo "kubeconfig=${KUBECONFIG:-none}"']}]
EOF
if eventually 30 phase_is nocreds Succeeded && grep -qx 'kubeconfig=none' "$dir"/node/pods/${ns}_nocreds_*/main.log; then
	pass "automountServiceAccountToken: false gives no kubeconfig"
else
	fail "nocreds: $(cat "$dir"/node/pods/${ns}_nocreds_*/main.log 2>/dev/null)"
fi

# Crash loop, unknown image, hostPort.
host_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kubectl -n $ns apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers: [{name: main, image: test/sh, args: ['echo crashing; exit 3']}]
---
apiVersion: v1
kind: Pod
metadata: {name: unknown}
spec:
  containers: [{name: main, image: example.com/nope:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  containers:
  - name: http
    image: test/http:1
    args: ["--bind", "\$(HOST)", "\$(PORT)"]
    ports: [{containerPort: 9000, hostPort: $host_port}]
EOF
crashlooping() {
	local j='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].state.waiting.reason}'
	local out
	out=$(kubectl -n $ns get pod crash -o jsonpath="$j")
	read -r restarts code _reason <<<"$out"
	((restarts >= 2)) && [[ $code == 3 ]]
}
if eventually 60 crashlooping; then pass "crashing container restarted with back-off, last exit code 3"; else fail "crash loop: $(kubectl -n $ns get pod crash -o jsonpath='{.status.containerStatuses[0]}')"; fi
backoff_seen() { [[ $(kubectl -n $ns get pod crash -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}') == CrashLoopBackOff ]]; }
if eventually 30 backoff_seen; then pass "waiting reason CrashLoopBackOff"; else fail "no CrashLoopBackOff"; fi
pull_error() { kubectl -n $ns get pod unknown -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -qE '^(ErrImagePull|ImagePullBackOff)$'; }
if eventually 30 pull_error; then pass "unknown image: $(kubectl -n $ns get pod unknown -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')"; else fail "unknown image not reported"; fi
if eventually 30 curl -fsS --max-time 2 "http://127.0.0.1:$host_port/"; then pass "hostPort 127.0.0.1:$host_port reaches the pod"; else fail "hostPort $host_port"; fi
for addr in 127.0.0.1 "$APIROUTES_NODE_IP"; do
	if ip netns exec "$netns" curl -fsS --max-time 2 -o /dev/null "http://$addr:$host_port/"; then
		pass "hostPort also at $addr:$host_port inside the node's namespace"
	else
		fail "hostPort at $addr:$host_port inside the namespace"
	fi
done

# Liveness: a failing probe restarts the container.
kubectl -n $ns apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: test/sh
    args: ['sleep 300']
    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}
EOF
restarted() { (($(kubectl -n $ns get pod unhealthy -o jsonpath='{.status.containerStatuses[0].restartCount}') >= 1)); }
if eventually 40 restarted; then pass "failing liveness probe restarts the container"; else fail "liveness: $(kubectl -n $ns get pod unhealthy -o jsonpath='{.status.containerStatuses[0]}')"; fi

# Deletion honours the grace period: SIGTERM ignored -> SIGKILL after 2 s, then the pod is gone.
kubectl -n $ns apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers: [{name: main, image: test/sh, args: ['trap "" TERM; echo started; sleep 300']}]
EOF
running() { [[ $(kubectl -n $ns get pod "$1" -o jsonpath='{.status.phase}') == Running ]]; }
eventually 30 running stubborn || fail "stubborn pod not running"
stubborn_pid=$(kubectl -n $ns get pod stubborn -o jsonpath='{.status.containerStatuses[0].containerID}')
stubborn_pid=${stubborn_pid#process://}
t0=$(date +%s%N)
kubectl -n $ns delete pod stubborn --timeout=30s >/dev/null || fail "stubborn pod deletion"
took_ms=$((($(date +%s%N) - t0) / 1000000))
if ((took_ms >= 1800 && took_ms <= 8000)) && ! alive "$stubborn_pid"; then
	pass "SIGTERM-ignoring container killed after its 2 s grace period (deletion took $took_ms ms)"
else
	fail "grace period: deletion took $took_ms ms, pid $stubborn_pid alive: $(alive "$stubborn_pid" && echo yes || echo no)"
fi

# Scale to zero: the process stops and the pod object goes away.
kubectl -n $ns scale deployment web --replicas=0 >/dev/null
no_web_pods() { [[ -z $(kubectl -n $ns get pods -l app=web -o name) ]]; }
if eventually 30 no_web_pods; then pass "scaled to zero: pod deleted"; else fail "web pod still there"; fi
! alive "$web_pid" && pass "web process $web_pid stopped" || fail "web process $web_pid still running"

# Deleting a pod with a crash-looping container also completes.
kubectl -n $ns delete pod crash unknown hostport unhealthy --timeout=30s >/dev/null && pass "pods deleted" || fail "pod deletion"

"$here/cluster.sh" down "$dir"
if ip netns list | awk '{print $1}' | grep -qx "$netns"; then fail "netns $netns left behind"; else pass "no netns left"; fi
if ip link show "$APIROUTES_NODE_HOST_VETH" >/dev/null 2>&1; then fail "host veth left behind"; else pass "no host veth left"; fi
if ip route show "$APIROUTES_NODE_CLUSTER_CIDR" | grep -q .; then fail "host route left behind"; else pass "no host route left"; fi
left=""
for f in "$dir"/pids/*; do [[ -e $f ]] && left+=" $(basename "$f")"; done
alive "$agent_pid" && left+=" node-agent($agent_pid)"
[[ -z $left ]] && pass "no component left running" || fail "left running:$left"

log "finished in $((SECONDS - t_start)) s"
if ((failures > 0)); then
	echo "$failures check(s) failed (logs: KEEP=1 $0)"
	exit 1
fi
echo "all checks passed"
