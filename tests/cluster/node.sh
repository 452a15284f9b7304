# The local node: a real kubelet, containerd + runc, CNI and kube-proxy for the Node
# `local-node`, each inside the node's own network namespace. Sourced by cluster.sh, which
# defines log, die, start, stop_one, wait_for, live_pid, running_pid, write_kubeconfig,
# token_of and node_name.
#
# Network (slot N; several clusters may run at once, each with its own slot):
#   host:  veth apiroutesN, no address (addrgenmode none), one route 10.(244+N).0.0/16 via it.
#          No forwarding, no NAT, no iptables rule on the host.
#   node:  namespace apiroutes-node-N; eth0 = 10.(244+N).255.1/32 (the node IP),
#          `default dev eth0`, proxy ARP (pods sit behind the bridge), ip_forward on;
#          CNI bridge cni0 = 10.(244+N).0.1 with pods on 10.(244+N).0.0/24; kube-proxy's
#          iptables rules. A relay (socat, both ends through a Unix socket, which crosses
#          namespaces) serves the API server's port inside the namespace, on every address:
#          127.0.0.1 for the kubelet and kube-proxy, the node IP for the `kubernetes`
#          Service's endpoint, which pods reach at 10.96.0.1:443.
#   The OCI registry listens on NODE_IP:5000; containerd uses it as the mirror of every
#   registry (certs.d/_default), so a pod's image reference is pulled unchanged from it and
#   no lookup or pull ever leaves the machine.
# Private per slot: /run/apiroutes-node/sN (sockets, containerd state, runc root), the
# cgroup root /apiroutes-sN in every cgroup v1 hierarchy, kubelet ports inside the
# namespace. Per cluster DIR: DIR/node (containerd root, kubelet root, pod logs, CNI state,
# registry storage). Fixed host paths the kubelet still writes: /var/log/containers (our
# links are removed on down), /var/lib/kubelet/{device-plugins,pod-resources} (sockets).

slots_dir=/run/apiroutes-node
max_slots=8
registry_port=5000
pause_image=ghcr.io/apiroutes/pause:1.0

# Sets slot_* for slot N.
node_slot_vars() {
	local n=$1
	if ((n == 0)); then slot_netns=apiroutes-node; else slot_netns=apiroutes-node-$n; fi
	slot_veth=apiroutes$n
	slot_pod_cidr=10.$((244 + n)).0.0/24
	slot_cluster_cidr=10.$((244 + n)).0.0/16
	slot_node_ip=10.$((244 + n)).255.1
	slot_run=$slots_dir/s$n
	slot_cgroup=apiroutes-s$n
	slot_cni_net=apiroutes-s$n
}

# Runs a command inside slot N's namespace. Only the network namespace changes: `ip netns
# exec` would also remount /sys, hiding the cgroup tree from containerd and the kubelet.
node_exec() {
	local n=$1
	shift
	node_slot_vars "$n"
	nsenter --net="/run/netns/$slot_netns" "$@"
}

# Claims a free node slot for DIR and prints its number. A slot is taken while its owner's
# containerd or kubelet runs, or the `up` that claimed it does; otherwise it is stale: what
# its owner left is removed and the slot reused.
node_claim_slot() {
	local dir=$1 n f owner_dir owner_pid
	mkdir -p "$slots_dir"
	exec 8>"$slots_dir/lock"
	flock 8
	for ((n = 0; n < max_slots; n++)); do
		f=$slots_dir/slot-$n
		if [[ -f $f ]]; then
			read -r owner_dir owner_pid <"$f" || true
			if [[ $owner_dir != "$dir" ]]; then
				live_pid "$owner_dir" containerd >/dev/null && continue
				live_pid "$owner_dir" kubelet >/dev/null && continue
				[[ -n $owner_pid && -d /proc/$owner_pid ]] &&
					[[ $(tr '\0' ' ' <"/proc/$owner_pid/cmdline" 2>/dev/null) == *cluster.sh* ]] && continue
			fi
			log "reclaiming node slot $n (left by ${owner_dir:-?})"
			node_kill_pods "$n"
			node_cleanup "$n" "${owner_dir:-}"
		fi
		echo "$dir $$" >"$f"
		echo "$n"
		return 0
	done
	die "all $max_slots node slots are in use (see $slots_dir)"
}

node_release_slot() {
	local n=$1 dir=$2 owner
	owner=$(awk '{print $1}' "$slots_dir/slot-$n" 2>/dev/null || true)
	[[ $owner != "$dir" ]] || rm -f "$slots_dir/slot-$n"
}

# The cgroup v1 hierarchies' mount points (the host is cgroup v1, hybrid).
cgroup_v1_mounts() {
	awk '$9 == "cgroup" { print $5 }' /proc/self/mountinfo | sort -u
}

# Every process in slot N's cgroup tree: the pods' processes (sandboxes and containers).
node_pod_pids() {
	local n=$1 m
	node_slot_vars "$n"
	for m in $(cgroup_v1_mounts); do
		[[ -d $m/$slot_cgroup ]] || continue
		find "$m/$slot_cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null || true
	done | sort -un
}

# The containerd shims of slot N (they daemonize; their command line names our socket).
node_shim_pids() {
	local n=$1 p cmd
	node_slot_vars "$n"
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		[[ $cmd == *containerd-shim-runc-v2*"-address $slot_run/containerd.sock"* ]] && echo "${p#/proc/}"
	done
}

# Kills slot N's pod processes and shims (only processes in its own cgroups, and shims
# that serve its own containerd socket).
node_kill_pods() {
	local n=$1 pids i
	for ((i = 0; i < 20; i++)); do
		mapfile -t pids < <(node_pod_pids "$n"; node_shim_pids "$n")
		((${#pids[@]} > 0)) || return 0
		((i > 0)) || log "killing ${#pids[@]} pod and shim processes of node slot $n"
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.2
	done
	log "warning: processes of node slot $n survived KILL: ${pids[*]}"
}

# Removes everything slot N's node left on the host: mounts under its state paths,
# its cgroups, the namespace with its veth (the host route goes with the link), CNI and
# kubelet leftovers in fixed host paths. DIR (optional) is the owning cluster directory.
node_cleanup() {
	local n=$1 dir=${2:-} prefixes=() m i left
	node_slot_vars "$n"
	prefixes=("$slot_run/")
	[[ -z $dir ]] || prefixes+=("$dir/node/")
	# Deepest first: a pod's volumes before the pod's directory.
	for ((i = 0; i < 3; i++)); do
		mapfile -t mounts < <(awk '{ print $5 }' /proc/self/mountinfo |
			grep -F "${prefixes[@]/#/-e}" | sort -r)
		((${#mounts[@]} > 0)) || break
		for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	done
	for m in $(cgroup_v1_mounts); do
		[[ -d $m/$slot_cgroup ]] || continue
		for ((i = 0; i < 25; i++)); do
			find "$m/$slot_cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[[ -d $m/$slot_cgroup ]] || break
			sleep 0.2
		done
		[[ ! -d $m/$slot_cgroup ]] || log "warning: could not remove cgroup $m/$slot_cgroup"
	done
	if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$slot_netns"; then
		mapfile -t left < <(ip netns pids "$slot_netns" 2>/dev/null || true)
		if ((${#left[@]} > 0)); then
			# Processes of our own node that escaped the cgroups above (a relay, a daemon
			# of a killed `up`): they live in our namespace, so they are ours.
			log "killing processes left in $slot_netns: ${left[*]}"
			kill -KILL "${left[@]}" 2>/dev/null || true
			sleep 0.2
		fi
		ip netns del "$slot_netns" 2>/dev/null || log "warning: could not delete netns $slot_netns"
	fi
	ip link del "$slot_veth" 2>/dev/null || true
	rm -rf "$slot_run" "/var/lib/cni/results/$slot_cni_net"-* 2>/dev/null || true
	if [[ -n $dir && -d /var/log/containers ]]; then
		find /var/log/containers -maxdepth 1 -type l -lname "$dir/node/*" -delete 2>/dev/null || true
	fi
}

node_netns_create() {
	local n=$1
	node_slot_vars "$n"
	ip netns add "$slot_netns"
	ip link add "$slot_veth" type veth peer name eth0 netns "$slot_netns"
	# No address on the host end, not even an IPv6 link-local one.
	ip link set dev "$slot_veth" addrgenmode none
	ip link set dev "$slot_veth" up
	ip route add "$slot_cluster_cidr" dev "$slot_veth"
	node_exec "$n" ip link set lo up
	node_exec "$n" ip addr add "$slot_node_ip/32" dev eth0
	node_exec "$n" ip link set eth0 up
	node_exec "$n" ip route add default dev eth0
	node_exec "$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.eth0.proxy_arp=1
}

# Makes the cgroup root in every v1 hierarchy (the kubelet wants it to exist).
node_cgroups_create() {
	local n=$1 m
	node_slot_vars "$n"
	for m in $(cgroup_v1_mounts); do
		mkdir -p "$m/$slot_cgroup"
		if [[ -f $m/cpuset.cpus ]]; then
			cat "$m/cpuset.cpus" >"$m/$slot_cgroup/cpuset.cpus"
			cat "$m/cpuset.mems" >"$m/$slot_cgroup/cpuset.mems"
		fi
	done
}

# The `apiroutes` CLI, whose `image push` loads the node's registry.
node_cli() {
	if [[ -n ${APIROUTES_CLI:-} ]]; then
		echo "$APIROUTES_CLI"
		return
	fi
	export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${APIROUTES_CACHE:-$HOME/.cache/apiroutes}/target}
	log "building the apiroutes CLI (cargo, debug profile) to push images"
	(cd "$here/../.." && cargo build -q -p apiroutes-cli --bin apiroutes) >&2
	echo "$CARGO_TARGET_DIR/debug/apiroutes"
}

# Pushes every image of LIST (lines `REFERENCE OCI_LAYOUT_DIR`) to DIR's node registry.
node_push() {
	local dir=$1 list=$2 ref layout cli n
	[[ -f $dir/node-slot ]] || die "no node in $dir"
	n=$(<"$dir/node-slot")
	node_slot_vars "$n"
	cli=$(node_cli)
	while read -r ref layout; do
		[[ -n $ref && $ref != \#* ]] || continue
		[[ -d $layout ]] || die "image layout $layout (for $ref) not found"
		# The node's registry is plain HTTP at a private address: said so (push is HTTPS
		# by default).
		"$cli" image push "$layout" --registry "http://$slot_node_ip:$registry_port" >&2 ||
			die "pushing $ref to $slot_node_ip:$registry_port failed"
	done <"$list"
}

# Host 127.0.0.1:PORT -> NODE_IP:PORT (a hostPort or a NodePort), for as long as the cluster is up.
node_forward() {
	local dir=$1 port=$2 n
	[[ $port =~ ^[0-9]+$ ]] || die "forward: port '$port' is not a number"
	[[ -f $dir/node-slot ]] || die "no node in $dir"
	n=$(<"$dir/node-slot")
	node_slot_vars "$n"
	stop_one "$dir" "forward-$port"
	start "$dir" "forward-$port" socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" \
		"TCP:$slot_node_ip:$port"
	wait_for "$dir" "forward-$port" "127.0.0.1:$port to listen" \
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)"
}

node_write_configs() {
	local dir=$1 bin=$2 n=$3 api_port=$4 node=$dir/node
	node_slot_vars "$n"
	mkdir -p "$node"/{containerd,kubelet/pki,pods,cni/net.d,cni/ipam,registry,certs.d/_default} "$slot_run"
	cat >"$node/registry.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $node/registry}
  delete: {enabled: true}
http: {addr: "$slot_node_ip:$registry_port"}
EOF
	# Every registry is mirrored by the node's own: nothing is pulled from outside.
	cat >"$node/certs.d/_default/hosts.toml" <<EOF
server = "http://$slot_node_ip:$registry_port"

[host."http://$slot_node_ip:$registry_port"]
  capabilities = ["pull", "resolve"]
EOF
	cat >"$node/containerd.toml" <<EOF
version = 4
root = '$node/containerd'
state = '$slot_run/containerd'
# Nothing from /etc/containerd: this node is configured here only.
imports = []

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '$slot_run/containerd.sock'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '$slot_run/containerd.sock.ttrpc'
  [plugins.'io.containerd.server.v1.debug']
    address = ''
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = '$slot_run/s'

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$pause_image'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '$node/certs.d'
  [plugins.'io.containerd.transfer.v1.local']
    config_path = '$node/certs.d'

  [plugins.'io.containerd.cri.v1.runtime']
    # This machine withholds CAP_SYS_RESOURCE: lowering a sandbox's OOM score fails
    # ("can't get final child's PID from pipe: EOF").
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          Root = '$slot_run/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$bin/cni']
      conf_dir = '$node/cni/net.d'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true
EOF
	cat >"$node/cni/net.d/10-apiroutes.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$slot_cni_net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node/cni/ipam",
        "ranges": [[{"subnet": "$slot_pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	# Pods have no cluster DNS: their resolver is their own loopback, so a lookup fails at
	# once instead of leaving the machine. They find Services by environment variables
	# and EndpointSlices.
	echo "nameserver 127.0.0.1" >"$node/resolv.conf"
	write_kubeconfig "$dir" "system:node:$node_name" "$node/kubelet.kubeconfig" "$api_port"
	write_kubeconfig "$dir" system:kube-proxy "$node/kube-proxy.kubeconfig" "$api_port"
	cat >"$node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Served on the node IP only, inside the namespace; every request is authenticated
# (client certificate or bearer token, checked with the API server) and authorized by it.
address: $slot_node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$slot_run/containerd.sock
# The host is cgroup v1 (hybrid); runc drives cgroupfs directly.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$slot_cgroup
failSwapOn: false
podCIDR: $slot_pod_cidr
podLogsDir: $node/pods
resolvConf: $node/resolv.conf
maxPods: 110
serializeImagePulls: false
# A shared disk: evict only when it is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 5s
EOF
	cat >"$node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $node_name
clientConnection: {kubeconfig: $node/kube-proxy.kubeconfig}
clusterCIDR: $slot_cluster_cidr
nodePortAddresses: ["$slot_node_ip/32"]
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Conntrack sysctls are not the node's to change here.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
}

# node_up DIR BIN SLOT API_PORT [IMAGES]: starts the node of DIR's cluster in slot SLOT.
node_up() {
	local dir=$1 bin=$2 n=$3 api_port=$4 images=${5:-} t0=$SECONDS
	local kubectl=("$bin/kubectl" --kubeconfig "$dir/kubeconfig")
	node_slot_vars "$n"
	command -v runc >/dev/null && command -v iptables >/dev/null && command -v socat >/dev/null ||
		die "the node needs runc, iptables and socat (Debian packages; tests/cluster/build.sh installs them)"
	node_netns_create "$n"
	node_cgroups_create "$n"
	node_write_configs "$dir" "$bin" "$n" "$api_port"
	local netns=(nsenter --net="/run/netns/$slot_netns")

	# The API server inside the namespace, on every address of it, through a Unix socket.
	start "$dir" relay-host socat "UNIX-LISTEN:$slot_run/apiserver.sock,fork,unlink-early,mode=600" \
		"TCP:127.0.0.1:$api_port"
	start "$dir" relay-node "${netns[@]}" socat "TCP-LISTEN:$api_port,fork,reuseaddr" \
		"UNIX-CONNECT:$slot_run/apiserver.sock"
	wait_for "$dir" relay-node "the API server through the node's relay" \
		"${netns[@]}" curl -fsS --cacert "$dir/pki/ca.crt" "https://$slot_node_ip:$api_port/readyz" \
		-H "Authorization: Bearer $(token_of "$dir" admin)"
	# The API server reaches the kubelet with this certificate (kubeadm's binding).
	"${kubectl[@]}" create clusterrolebinding apiroutes:kube-apiserver-kubelet-client \
		--clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null

	start "$dir" registry "${netns[@]}" "$bin/registry" serve "$dir/node/registry.yml"
	wait_for "$dir" registry "the registry on $slot_node_ip:$registry_port" \
		curl -fsS "http://$slot_node_ip:$registry_port/v2/"
	if [[ -n $images ]]; then
		node_push "$dir" "$images"
	fi

	start "$dir" containerd env PATH="$bin:$PATH" "${netns[@]}" "$bin/containerd" \
		--config "$dir/node/containerd.toml"
	wait_for "$dir" containerd "containerd's socket" \
		"$bin/ctr" --address "$slot_run/containerd.sock" version

	start "$dir" kubelet env PATH="$bin:$PATH" "${netns[@]}" "$bin/kubelet" \
		--config "$dir/node/kubelet.yaml" --kubeconfig "$dir/node/kubelet.kubeconfig" \
		--hostname-override "$node_name" --node-ip "$slot_node_ip" \
		--root-dir "$dir/node/kubelet" --cert-dir "$dir/node/kubelet/pki" --v 1
	wait_for "$dir" kubelet "Node $node_name Ready" \
		"${kubectl[@]}" wait "node/$node_name" --for=condition=Ready --timeout=2s
	start "$dir" kube-proxy "${netns[@]}" "$bin/kube-proxy" --config "$dir/node/kube-proxy.yaml"
	wait_for "$dir" kube-proxy "kube-proxy /healthz" "${netns[@]}" curl -fsS http://127.0.0.1:10256/healthz

	cat >>"$dir/env" <<EOF
export APIROUTES_NODE_NAME=$node_name
export APIROUTES_NODE_NETNS=$slot_netns
export APIROUTES_NODE_HOST_VETH=$slot_veth
export APIROUTES_NODE_POD_CIDR=$slot_pod_cidr
export APIROUTES_NODE_CLUSTER_CIDR=$slot_cluster_cidr
export APIROUTES_NODE_IP=$slot_node_ip
export APIROUTES_NODE_RUN=$slot_run
export APIROUTES_NODE_CGROUP=$slot_cgroup
export APIROUTES_REGISTRY=$slot_node_ip:$registry_port
export CONTAINERD_ADDRESS=$slot_run/containerd.sock
EOF
	log "node $node_name Ready in slot $n ($slot_netns, $slot_node_ip) $((SECONDS - t0)) s after start"
}
