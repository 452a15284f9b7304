#!/usr/bin/env bash
# Builds the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler),
# kubectl, helm, and the node (kubelet, kube-proxy, containerd with its runc shim and ctr,
# the CNI plugins bridge/host-local/loopback/portmap in bin/cni, and the OCI registry) from
# the pinned Go modules in this directory, and prints the directory holding them. runc and
# iptables come from Debian's packages (installed here when missing, as root).
#
#   bin=$(tests/cluster/build.sh)
#
# Binaries are cached in ${APIROUTES_CACHE:-$HOME/.cache/apiroutes}/cluster/<hash>/bin,
# where <hash> covers go.mod/go.sum of the three modules and this script: a warm call only
# hashes seven files. Go's own build and module caches stay in their default places, so a
# changed pin rebuilds in a minute or two. Logs go to stderr; stdout is only the bin dir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "build.sh: $*" >&2; }
k8s_version=v1.36.3
helm_version=v4.3.1
# Release time of k8s.io/kubernetes@v1.36.3 from the module proxy, for a reproducible stamp.
build_date=2026-07-22T18:07:38Z

hash=$(cd "$here" && cat go.mod go.sum helm/go.mod helm/go.sum node/go.mod node/go.sum build.sh |
	sha256sum | cut -c1-16)
cache=${APIROUTES_CACHE:-$HOME/.cache/apiroutes}/cluster/$hash
bin=$cache/bin
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm kubelet kube-proxy
	containerd containerd-shim-runc-v2 ctr registry cni/bridge cni/host-local cni/loopback cni/portmap)
# From Debian: the node's OCI runtime, and iptables for kube-proxy and the CNI plugins
# (they run only inside the node's network namespace).
debian_packages=(runc iptables conntrack socat)
debian_commands=(runc iptables conntrack socat)

complete() {
	local t
	for t in "${tools[@]}"; do [[ -x $bin/$t ]] || return 1; done
}

install_debian_packages() {
	local c missing=false
	for c in "${debian_commands[@]}"; do command -v "$c" >/dev/null 2>&1 || missing=true; done
	$missing || return 0
	if [[ $(id -u) != 0 ]]; then
		log "missing ${debian_packages[*]} (Debian packages): the local node needs them; install as root"
		return 0
	fi
	log "installing Debian packages: ${debian_packages[*]}"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${debian_packages[@]}" >&2
}
install_debian_packages

if complete; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
# One build at a time per cache entry (tests and the platform command may race).
exec 9>"$cache/.lock"
flock 9
if complete; then
	echo "$bin"
	exit 0
fi

# -mod=readonly: a go.sum missing an entry fails here, not silently in CI.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
tmp=$(mktemp -d "$cache/bin.tmp.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=${k8s_version#v1.}
minor=${minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
common=(-trimpath -tags "selinux,notest")

start=$SECONDS
log "building Kubernetes $k8s_version (cold: 5 to 20 minutes on 2 cores) into $bin"
(cd "$here" && go build "${common[@]}" -ldflags "$k8s_ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl) >&2
log "building kubelet and kube-proxy"
(cd "$here" && go build "${common[@]}" -ldflags "$k8s_ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) >&2
log "building containerd, containerd-shim-runc-v2, ctr and the registry"
(cd "$here/node" && go build -trimpath -tags "no_btrfs,no_devmapper,no_zfs" -ldflags "-s -w" \
	-o "$tmp/" \
	github.com/containerd/containerd/v2/cmd/containerd \
	github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
	github.com/containerd/containerd/v2/cmd/ctr \
	github.com/distribution/distribution/v3/cmd/registry) >&2
log "building the CNI plugins"
mkdir -p "$tmp/cni"
(cd "$here/node" && go build -trimpath -ldflags "-s -w" -o "$tmp/cni/" \
	github.com/containernetworking/plugins/plugins/main/bridge \
	github.com/containernetworking/plugins/plugins/main/loopback \
	github.com/containernetworking/plugins/plugins/ipam/host-local \
	github.com/containernetworking/plugins/plugins/meta/portmap) >&2
log "building etcd"
(cd "$here" && go build "${common[@]}" -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) >&2
log "building helm $helm_version"
(cd "$here/helm" && go build "${common[@]}" \
	-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
	-o "$tmp/helm" helm.sh/helm/v4/cmd/helm) >&2

rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
log "built in $((SECONDS - start)) s"
echo "$bin"
