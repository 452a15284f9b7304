#!/usr/bin/env bash
# The one place that starts and stops the local control plane and its real node.
#
#   tests/cluster/cluster.sh up DIR [--with-node [--images LIST]]
#   tests/cluster/cluster.sh push DIR LIST        # push more images to the node's registry
#   tests/cluster/cluster.sh forward DIR PORT     # host 127.0.0.1:PORT -> node IP:PORT
#   tests/cluster/cluster.sh down DIR
#   tests/cluster/cluster.sh env DIR              # eval "$(tests/cluster/cluster.sh env DIR)"
#
# `up` builds the binaries (tests/cluster/build.sh, cached), then runs etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 with free ports
# from the OS, its own CA and certificates, token authentication, Node+RBAC authorization,
# service-account signing and every default controller. With --with-node (root) it also
# starts a real node, the Node `local-node`, inside its own network namespace (see node.sh):
# an OCI registry, containerd + runc, the kubelet and kube-proxy (iptables mode), with
# pods on a CNI bridge. LIST has lines `REFERENCE OCI_LAYOUT_DIR` (tests/images/build.sh
# prints them); they are pushed to the node's registry, which containerd uses as the
# mirror of every registry, so pods pull their unchanged image references. The list must
# hold the sandbox image ghcr.io/apiroutes/pause.
# DIR gets: kubeconfig (admin), env (shell-sourceable), pki/, logs/, pids/, node/.
# `up` on a DIR that is already up is a no-op; on a stale DIR it cleans up first.
# `down` signals the PIDs in reverse start order (TERM, KILL after a grace period), then
# removes what the node left: pod processes, shims, mounts, cgroups, the namespace, the
# veth and its route. It is safe on a DIR that is down, half up, or whose `up` was killed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Start order; `down` stops them in reverse. The node's come after the control plane's.
control_plane=(etcd kube-apiserver kube-controller-manager kube-scheduler)
node_components=(relay-host relay-node registry containerd kubelet kube-proxy)
components=("${control_plane[@]}" "${node_components[@]}")
grace=${APIROUTES_CLUSTER_GRACE:-10}
deadline=${APIROUTES_CLUSTER_DEADLINE:-90}
node_name=local-node

log() { echo "cluster.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# shellcheck source=node.sh
source "$here/node.sh"

# A pid file's process, if it is still the one we started (guards against PID reuse).
live_pid() {
	local dir=$1 name=$2 pid exe
	[[ -f $dir/pids/$name ]] || return 1
	pid=$(<"$dir/pids/$name")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	exe=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $name in
	relay-* | forward-*) [[ $exe == *socat* ]] || return 1 ;;
	*) [[ $exe == *"$name"* ]] || return 1 ;;
	esac
	echo "$pid"
}

# A process that exists and is not a zombie (our own exited child counts as gone).
running_pid() {
	[[ -d /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

stop_one() {
	local dir=$1 name=$2 pid i
	if pid=$(live_pid "$dir" "$name"); then
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 10; i++)); do
			running_pid "$pid" || break
			sleep 0.1
		done
		if running_pid "$pid"; then
			log "$name did not stop within ${grace}s: KILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				running_pid "$pid" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/pids/$name"
}

cmd_down() {
	local dir=$1 i f slot
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	for f in "$dir"/pids/forward-*; do
		[[ -e $f ]] && stop_one "$dir" "$(basename "$f")"
	done
	if [[ -f $dir/node-slot ]]; then
		# Pods first, while nothing can restart them: stop kube-proxy and the kubelet, kill
		# every pod process and shim, then the rest of the node.
		slot=$(<"$dir/node-slot")
		stop_one "$dir" kube-proxy
		stop_one "$dir" kubelet
		node_kill_pods "$slot"
	fi
	for ((i = ${#components[@]} - 1; i >= 0; i--)); do
		stop_one "$dir" "${components[i]}"
	done
	if [[ -f $dir/node-slot ]]; then
		node_cleanup "$slot" "$dir"
		node_release_slot "$slot" "$dir"
		rm -f "$dir/node-slot"
	fi
	rm -f "$dir/up"
}

free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Signs a certificate with the cluster CA: sign_cert PKI NAME SUBJECT EXTENSION...
sign_cert() {
	local pki=$1 name=$2 subject=$3
	shift 3
	(
		cd "$pki"
		umask 077
		openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
		openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr" 2>/dev/null
		printf '%s\n' "$@" >"$name.ext"
		openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
		rm -f "$name.csr" "$name.ext" ca.srl
	)
}

# make_pki PKI [NODE_IP]: the CA, the API server's serving cert (with a node also for the
# node IP and the `kubernetes` Service's ClusterIP, which pods dial), the service-account
# key, static tokens; with a node, the kubelet's serving cert and the API server's client
# cert for the kubelet.
make_pki() {
	local pki=$1 node_ip=${2:-}
	mkdir -p "$pki"
	(
		cd "$pki"
		umask 077
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=apiroutes-local-ca" \
			-out ca.crt 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# Static tokens: admin in system:masters; the controller manager, scheduler, kubelet
		# and kube-proxy with their own identities, so the built-in RBAC roles and the Node
		# authorizer decide what each may do.
		t() { openssl rand -hex 24; }
		{
			echo "$(t),admin,uid-admin,\"system:masters\""
			echo "$(t),system:kube-controller-manager,uid-kcm"
			echo "$(t),system:kube-scheduler,uid-scheduler"
			echo "$(t),system:node:$node_name,uid-node,\"system:nodes\""
			echo "$(t),system:kube-proxy,uid-kube-proxy"
		} >tokens.csv
	)
	local sans="IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default"
	sans+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	[[ -z $node_ip ]] || sans+=",IP:$node_ip,IP:10.96.0.1"
	sign_cert "$pki" apiserver "/CN=kube-apiserver" "subjectAltName=$sans" \
		"extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment"
	if [[ -n $node_ip ]]; then
		sign_cert "$pki" kubelet "/O=system:nodes/CN=system:node:$node_name" \
			"subjectAltName=IP:$node_ip,DNS:$node_name" \
			"extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment"
		sign_cert "$pki" apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" \
			"extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment"
	fi
}

token_of() { awk -F, -v u="$2" '$2 == u { print $1 }' "$1/pki/tokens.csv"; }

# write_kubeconfig DIR USER OUT PORT: a kubeconfig for USER's static token.
write_kubeconfig() {
	local dir=$1 user=$2 out=$3 port=$4
	local ca
	ca=$(base64 -w0 <"$dir/pki/ca.crt")
	(
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
	)
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
	for c in "${control_plane[@]}"; do
		live_pid "$dir" "$c" >/dev/null || return 1
	done
	if [[ -f $dir/node-slot ]]; then
		for c in "${node_components[@]}"; do
			live_pid "$dir" "$c" >/dev/null || return 1
		done
	fi
	return 0
}

cmd_up() {
	local dir=$1 with_node=$2 images=$3
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if is_up "$dir"; then
		log "already up: $dir"
		[[ -z $images ]] || node_push "$dir" "$images"
		return 0
	fi
	# Stale or half-up DIR: stop whatever of ours still runs and start from scratch.
	cmd_down "$dir"
	rm -rf "$dir/etcd" "$dir/pki" "$dir/logs" "$dir/pids" "$dir/node" \
		"$dir/kubeconfig" "$dir/env" "$dir"/*.kubeconfig
	mkdir -p "$dir/logs" "$dir/pids"

	local bin
	bin=$("$here/build.sh")
	local node_ip="" slot=""
	if $with_node; then
		[[ $(id -u) == 0 ]] || die "--with-node needs root (it creates a network namespace)"
		slot=$(node_claim_slot "$dir")
		echo "$slot" >"$dir/node-slot"
		node_slot_vars "$slot"
		node_ip=$slot_node_ip
	fi
	local t0=$SECONDS
	make_pki "$dir/pki" "$node_ip"
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
	local node_flags=(--advertise-address 127.0.0.1 --endpoint-reconciler-type none)
	if $with_node; then
		# The API server publishes the `kubernetes` Service's endpoint as NODE_IP:PORT, which
		# the node's relay serves; it reaches the kubelet at the node's InternalIP (no name
		# lookup) with its own client certificate, and checks the kubelet's serving cert.
		node_flags=(--advertise-address "$node_ip"
			--kubelet-preferred-address-types InternalIP
			--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
			--kubelet-client-key "$pki/apiserver-kubelet-client.key"
			--kubelet-certificate-authority "$pki/ca.crt"
			--enable-admission-plugins NodeRestriction)
	fi
	start "$dir" kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --secure-port "$api_port" \
		"${node_flags[@]}" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
		--authorization-mode Node,RBAC \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" \
		--service-account-signing-key-file "$pki/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16 \
		--service-node-port-range 1024-65535
	local admin
	admin=$(token_of "$dir" admin)
	wait_for "$dir" kube-apiserver "kube-apiserver /readyz" \
		curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin" \
		"https://127.0.0.1:$api_port/readyz"
	log "kube-apiserver ready $((SECONDS - t0)) s after start"

	write_kubeconfig "$dir" admin "$dir/kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:kube-controller-manager "$dir/kube-controller-manager.kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:kube-scheduler "$dir/kube-scheduler.kubeconfig" "$api_port"

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

	if $with_node; then
		node_up "$dir" "$bin" "$slot" "$api_port" "$images"
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
	local cmd=$1 dir=$2 with_node=false images=""
	shift 2
	case $cmd in
	push | forward)
		[[ $# -eq 1 && -f $dir/up ]] || usage
		dir=$(cd "$dir" && pwd)
		if [[ $cmd == push ]]; then node_push "$dir" "$(realpath "$1")"; else node_forward "$dir" "$1"; fi
		return 0
		;;
	esac
	while [[ $# -gt 0 ]]; do
		case $1 in
		--with-node)
			with_node=true
			shift
			;;
		--images)
			[[ $# -ge 2 ]] || usage
			images=$(realpath "$2")
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
		local attempt args=()
		$with_node && args+=(--with-node)
		[[ -z $images ]] || args+=(--images "$images")
		for attempt in 1 2 3; do
			if bash "${BASH_SOURCE[0]}" __up_once "$dir" "${args[@]}"; then
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
		cmd_up "$dir" "$with_node" "$images"
		;;
	down) cmd_down "$dir" ;;
	env) cmd_env "$dir" ;;
	*) usage ;;
	esac
}

main "$@"
