#!/usr/bin/env bash
# The one place that starts and stops the local control plane (and the local node).
#
#   tests/cluster/cluster.sh up DIR [--with-node IMAGEMAP]
#   tests/cluster/cluster.sh down DIR
#   tests/cluster/cluster.sh env DIR      # eval "$(tests/cluster/cluster.sh env DIR)"
#
# `up` builds the binaries (tests/cluster/build.sh, cached), then runs etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 with free ports
# from the OS, its own CA and certificates, token authentication, Node+RBAC authorization,
# service-account signing and every default controller. With --with-node it also builds and
# starts tests/node-agent (a kubelet for the Node `local-node`, run as root: it creates a
# network namespace; each running cluster gets its own node slot, see slot_vars).
# DIR gets: kubeconfig (admin), env (shell-sourceable), pki/, logs/, pids/, node/.
# `up` on a DIR that is already up is a no-op; on a stale DIR it cleans up first.
# `down` signals the PIDs in reverse start order (TERM, KILL after a grace period) and
# leaves nothing running; it is safe to call on a DIR that is down or half up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Start order; `down` stops them in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler node-agent)
# Node slots: several clusters with a node may run on one machine (e.g. two engineers'
# tests); slot N gets its own namespace, host veth and pod range 10.(244+N).0.0/16.
slots_dir=/run/apiroutes-node
max_slots=8
grace=${APIROUTES_CLUSTER_GRACE:-10}
deadline=${APIROUTES_CLUSTER_DEADLINE:-90}

log() { echo "cluster.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# A pid file's process, if it is still the one we started (guards against PID reuse).
live_pid() {
	local dir=$1 name=$2 pid exe
	[[ -f $dir/pids/$name ]] || return 1
	pid=$(<"$dir/pids/$name")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	exe=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $name in
	node-agent) [[ $exe == *apiroutes-node-agent* ]] || return 1 ;;
	*) [[ $exe == *"$name"* ]] || return 1 ;;
	esac
	echo "$pid"
}

stop_one() {
	local dir=$1 name=$2 pid i
	if pid=$(live_pid "$dir" "$name"); then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 10; i++)); do
			[[ -d /proc/$pid ]] || break
			# A zombie (our own child) counts as gone.
			[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
			sleep 0.1
		done
		if [[ -d /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
			log "$name did not stop within ${grace}s: KILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				[[ -d /proc/$pid ]] || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/pids/$name"
}

cmd_down() {
	local dir=$1 i
	[[ -d $dir ]] || return 0
	for ((i = ${#components[@]} - 1; i >= 0; i--)); do
		stop_one "$dir" "${components[i]}"
	done
	# The agent removes its namespace on exit; after a crash (or a KILL) do it here.
	if [[ -f $dir/node-slot ]]; then
		local n owner
		n=$(<"$dir/node-slot")
		slot_vars "$n"
		cleanup_netns "$slot_netns"
		owner=$(awk '{print $1}' "$slots_dir/slot-$n" 2>/dev/null || true)
		[[ $owner != "$dir" ]] || rm -f "$slots_dir/slot-$n"
		rm -f "$dir/node-slot"
	fi
	rm -f "$dir/up"
}

# Sets slot_netns, slot_veth, slot_pod_cidr, slot_cluster_cidr, slot_node_ip for slot N.
slot_vars() {
	local n=$1
	if ((n == 0)); then slot_netns=apiroutes-node; else slot_netns=apiroutes-node-$n; fi
	slot_veth=apiroutes$n
	slot_pod_cidr=10.$((244 + n)).0.0/24
	slot_cluster_cidr=10.$((244 + n)).0.0/16
	slot_node_ip=10.$((244 + n)).0.1
}

# Claims a free node slot for DIR and prints its number. A slot is taken while its owner's
# agent runs or the `up` that claimed it does; otherwise it is stale and reclaimed.
claim_slot() {
	local dir=$1 n f owner_dir owner_pid
	mkdir -p "$slots_dir"
	exec 8>"$slots_dir/lock"
	flock 8
	for ((n = 0; n < max_slots; n++)); do
		f=$slots_dir/slot-$n
		if [[ -f $f ]]; then
			read -r owner_dir owner_pid <"$f" || true
			if [[ $owner_dir != "$dir" ]]; then
				live_pid "$owner_dir" node-agent >/dev/null && continue
				[[ -n $owner_pid && -d /proc/$owner_pid ]] &&
					[[ $(tr '\0' ' ' <"/proc/$owner_pid/cmdline" 2>/dev/null) == *cluster.sh* ]] && continue
			fi
			slot_vars "$n"
			cleanup_netns "$slot_netns"
		fi
		echo "$dir $$" >"$f"
		echo "$n"
		return 0
	done
	die "all $max_slots node slots are in use (see $slots_dir)"
}

# Same cleanup as the agent's own stale-namespace removal: the host veth end goes with the
# namespace (deleting one end of a veth deletes the pair), the host route with the link.
cleanup_netns() {
	local ns=$1 pids
	if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
		log "removing leftover network namespace $ns"
	fi
	mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
	if ((${#pids[@]} > 0)); then
		log "killing processes left in $ns: ${pids[*]}"
		# These are pod processes of a crashed agent of ours, in our own namespace.
		kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	ip netns del "$ns" 2>/dev/null || true
	# The agent's /etc/netns/<ns>/resolv.conf (and /etc/netns itself if nothing else is there).
	rm -rf "/etc/netns/$ns"
	rmdir /etc/netns 2>/dev/null || true
}

free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

make_pki() {
	local pki=$1
	mkdir -p "$pki"
	(
		cd "$pki"
		umask 077
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=apiroutes-local-ca" \
			-out ca.crt 2>/dev/null
		openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key 2>/dev/null
		openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
		printf '%s\n' \
			"subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
			"extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
			>apiserver.ext
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-sha256 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
		rm -f apiserver.csr ca.srl
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# Static tokens: admin in system:masters; the controller manager, scheduler and node
		# agent with their own identities, so built-in RBAC and the Node authorizer apply.
		t() { openssl rand -hex 24; }
		{
			echo "$(t),admin,uid-admin,\"system:masters\""
			echo "$(t),system:kube-controller-manager,uid-kcm"
			echo "$(t),system:kube-scheduler,uid-scheduler"
			echo "$(t),system:node:local-node,uid-node,\"system:nodes\""
		} >tokens.csv
	)
}

token_of() { awk -F, -v u="$2" '$2 == u { print $1 }' "$1/pki/tokens.csv"; }

write_kubeconfig() {
	local dir=$1 user=$2 out=$3 port=$4
	local ca
	ca=$(base64 -w0 <"$dir/pki/ca.crt")
	umask 077
	cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $ca
users:
- name: $user
  user:
    token: $(token_of "$dir" "$user")
contexts:
- name: local
  context: {cluster: local, user: $user}
current-context: local
EOF
}

# Runs a component in its own session with its log file; records its PID.
start() {
	local dir=$1 name=$2
	shift 2
	log "starting $name"
	setsid "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
	echo $! >"$dir/pids/$name"
}

# Polls CHECK until it succeeds, NAME's process dies, or the deadline passes.
wait_for() {
	local dir=$1 name=$2 what=$3
	shift 3
	local end=$((SECONDS + deadline))
	until "$@" >/dev/null 2>&1; do
		if ! live_pid "$dir" "$name" >/dev/null; then
			tail -n 30 "$dir/logs/$name.log" >&2 || true
			die "$name exited while waiting for $what (log: $dir/logs/$name.log)"
		fi
		if ((SECONDS >= end)); then
			tail -n 30 "$dir/logs/$name.log" >&2 || true
			die "timed out after ${deadline}s waiting for $what (log: $dir/logs/$name.log)"
		fi
		sleep 0.2
	done
}

is_up() {
	local dir=$1 c
	[[ -f $dir/up ]] || return 1
	for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do
		live_pid "$dir" "$c" >/dev/null || return 1
	done
	if [[ -f $dir/node-slot ]]; then live_pid "$dir" node-agent >/dev/null || return 1; fi
	return 0
}

build_node_agent() {
	export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${APIROUTES_CACHE:-$HOME/.cache/apiroutes}/target}
	log "building apiroutes-node-agent (cargo, debug profile)"
	(cd "$repo" && cargo build -q -p apiroutes-node-agent) >&2
	echo "$CARGO_TARGET_DIR/debug/apiroutes-node-agent"
}

cmd_up() {
	local dir=$1 imagemap=$2
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if is_up "$dir"; then
		log "already up: $dir"
		return 0
	fi
	# Stale or half-up DIR: stop whatever of ours still runs and start from scratch.
	cmd_down "$dir"
	rm -rf "$dir/etcd" "$dir/pki" "$dir/logs" "$dir/pids" "$dir/node" \
		"$dir/kubeconfig" "$dir/env" "$dir"/*.kubeconfig
	mkdir -p "$dir/logs" "$dir/pids"

	local bin agent=""
	bin=$("$here/build.sh")
	if [[ -n $imagemap ]]; then
		[[ $(id -u) == 0 ]] || die "--with-node needs root (it creates a network namespace)"
		[[ -f $imagemap ]] || die "image map $imagemap not found"
		imagemap=$(cd "$(dirname "$imagemap")" && pwd)/$(basename "$imagemap")
		agent=${APIROUTES_NODE_AGENT_BIN:-$(build_node_agent)}
	fi
	local t0=$SECONDS
	make_pki "$dir/pki"
	local etcd_port etcd_peer api_port kcm_port sched_port
	read -r etcd_port etcd_peer api_port kcm_port sched_port < <(free_ports 5)

	start "$dir" etcd "$bin/etcd" --name default --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" \
		--advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
		--initial-cluster "default=http://127.0.0.1:$etcd_peer" \
		--unsafe-no-fsync --log-level warn
	wait_for "$dir" etcd "etcd /health" curl -fsS "http://127.0.0.1:$etcd_port/health"

	local pki=$dir/pki
	start "$dir" kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --secure-port "$api_port" \
		--advertise-address 127.0.0.1 --endpoint-reconciler-type none \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
		--authorization-mode Node,RBAC \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" \
		--service-account-signing-key-file "$pki/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16
	local admin
	admin=$(token_of "$dir" admin)
	wait_for "$dir" kube-apiserver "kube-apiserver /readyz" \
		curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin" \
		"https://127.0.0.1:$api_port/readyz"
	log "kube-apiserver ready $((SECONDS - t0)) s after start"

	write_kubeconfig "$dir" admin "$dir/kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:kube-controller-manager "$dir/kube-controller-manager.kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:kube-scheduler "$dir/kube-scheduler.kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:node:local-node "$dir/node.kubeconfig" "$api_port"

	local kc=$dir/kube-controller-manager.kubeconfig
	start "$dir" kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
		--bind-address 127.0.0.1 --secure-port "$kcm_port" \
		--leader-elect=false --controllers '*' --use-service-account-credentials=true \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
		--service-cluster-ip-range 10.96.0.0/16
	kc=$dir/kube-scheduler.kubeconfig
	start "$dir" kube-scheduler "$bin/kube-scheduler" \
		--kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
		--bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false

	cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/kubeconfig
export PATH=$bin:\$PATH
export APIROUTES_CLUSTER_DIR=$dir
export APIROUTES_CLUSTER_BIN=$bin
export APIROUTES_APISERVER_URL=https://127.0.0.1:$api_port
export APIROUTES_APISERVER_PORT=$api_port
export APIROUTES_ETCD_PORT=$etcd_port
EOF
	wait_for "$dir" kube-controller-manager "kube-controller-manager /healthz" \
		curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
	wait_for "$dir" kube-scheduler "kube-scheduler /healthz" \
		curl -fsSk "https://127.0.0.1:$sched_port/healthz"
	# Pods cannot be created before the namespace's default ServiceAccount exists.
	wait_for "$dir" kube-controller-manager "the default ServiceAccount" \
		"$bin/kubectl" --kubeconfig "$dir/kubeconfig" get serviceaccount default -n default

	if [[ -n $agent ]]; then
		local slot
		slot=$(claim_slot "$dir")
		echo "$slot" >"$dir/node-slot"
		slot_vars "$slot"
		mkdir -p "$dir/node"
		start "$dir" node-agent "$agent" \
			--kubeconfig "$dir/node.kubeconfig" \
			--image-map "$imagemap" \
			--state-dir "$dir/node" \
			--netns "$slot_netns" --host-veth "$slot_veth" \
			--pod-cidr "$slot_pod_cidr" --cluster-cidr "$slot_cluster_cidr"
		wait_for "$dir" node-agent "Node local-node Ready" \
			"$bin/kubectl" --kubeconfig "$dir/kubeconfig" wait node/local-node \
			--for=condition=Ready --timeout=2s
		cat >>"$dir/env" <<EOF
export APIROUTES_NODE_NETNS=$slot_netns
export APIROUTES_NODE_HOST_VETH=$slot_veth
export APIROUTES_NODE_POD_CIDR=$slot_pod_cidr
export APIROUTES_NODE_CLUSTER_CIDR=$slot_cluster_cidr
export APIROUTES_NODE_IP=$slot_node_ip
EOF
	fi
	touch "$dir/up"
	log "up in $((SECONDS - t0)) s: eval \"\$($here/cluster.sh env $dir)\""
}

cmd_env() {
	local dir=$1
	[[ -f $dir/env ]] || die "no cluster in $dir (run: $0 up $dir)"
	cat "$dir/env"
}

main() {
	[[ $# -ge 2 ]] || usage
	local cmd=$1 dir=$2 imagemap=""
	shift 2
	while [[ $# -gt 0 ]]; do
		case $1 in
		--with-node)
			[[ $# -ge 2 ]] || usage
			imagemap=$2
			shift 2
			;;
		*) usage ;;
		esac
	done
	case $cmd in
	up)
		# Ports are chosen free but bound later, so another cluster starting on this
		# machine at the same moment can take one: a failed attempt stops what it
		# started and tries again, up to three times.
		local attempt
		for attempt in 1 2 3; do
			if bash "${BASH_SOURCE[0]}" __up_once "$dir" ${imagemap:+--with-node "$imagemap"}; then
				return 0
			fi
			log "up failed (attempt $attempt of 3); stopping what it started"
			cmd_down "$dir"
		done
		die "could not bring the cluster up in $dir (logs: $dir/logs)"
		;;
	__up_once)
		# One attempt; a failed attempt leaves nothing running.
		trap 'rc=$?; if ((rc != 0)); then cmd_down "$dir"; fi' EXIT
		cmd_up "$dir" "$imagemap"
		;;
	down) cmd_down "$dir" ;;
	env) cmd_env "$dir" ;;
	*) usage ;;
	esac
}

main "$@"
