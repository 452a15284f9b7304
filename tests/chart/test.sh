#!/usr/bin/env bash
# Tests of the Helm chart charts/apiroutes (issue 7). Bounded; exits non-zero on failure.
#
#   bash tests/chart/test.sh                       # helm lint + helm template checks, and
#                                                  # the cluster part if KUBECONFIG is set
#   APIROUTES_CHART_CLUSTER=up bash tests/chart/test.sh
#                                                  # starts its own local control plane
#                                                  # (tests/cluster/cluster.sh) and stops it
#
# Offline: `helm lint --strict` (default, non-default and local values);
# tests/chart/render_test.py (`helm template` under several sets of values: exact RBAC,
# hardened pods, flags, ports, hostPort, namespaced Roles, NetworkPolicies, Secret, schema
# and kubeVersion rejections; and the rendered args parsed by the built apiroutes-operator
# and apiroutes-gateway binaries when they exist); docs/helm-values.md in sync with
# values.yaml (tests/chart/values_doc.py).
# Cluster (KUBECONFIG pointing at the local control plane, or APIROUTES_CHART_CLUSTER=up):
# `helm install`, `kubectl auth can-i --as=system:serviceaccount:...` for what each
# component may and may not do, `helm upgrade` with changed values (namespaced RBAC, the
# Preview Mode token and signing keys kept, an old single `secret` migrated to the token),
# `helm uninstall` leaving nothing of the release but the CRD.
# Pods are not required to run (that is the end-to-end test's job): no --wait; but they
# must be admitted in a namespace enforcing the `restricted` Pod Security Standard.
#
# Environment: HELM / KUBECTL (default: the binaries of tests/cluster/build.sh),
# APIROUTES_CHART_TIMEOUT (whole run, seconds; default 1200), KEEP=1 keeps the temp dir.
set -euo pipefail

if [[ -z ${_APIROUTES_CHART_BOUNDED:-} ]]; then
	export _APIROUTES_CHART_BOUNDED=1
	exec timeout -k 30 "${APIROUTES_CHART_TIMEOUT:-1200}" bash "$0" "$@"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=$repo/charts/apiroutes
cd "$repo"

failures=0
log() { echo "chart-test: $*" >&2; }
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
step() { printf '\n==> %s\n' "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/apiroutes-chart-test.XXXXXX")
own_cluster=""
cleanup() {
	local rc=$?
	if [[ -n ${cluster_cleanup:-} ]]; then
		$cluster_cleanup || true
	fi
	if [[ -n $own_cluster ]]; then
		"$repo/tests/cluster/cluster.sh" down "$own_cluster" || true
	fi
	if [[ ${KEEP:-} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# ------------------------------------------------------------------ tools
if [[ -z ${HELM:-} || -z ${KUBECTL:-} ]]; then
	step "helm and kubectl from tests/cluster/build.sh (cached)"
	bin=$(timeout 1800 "$repo/tests/cluster/build.sh")
	HELM=${HELM:-$bin/helm}
	KUBECTL=${KUBECTL:-$bin/kubectl}
fi
"$HELM" version --short >&2
python3 -c 'import yaml' 2>/dev/null || {
	echo "missing python3 PyYAML (apt-get install python3-yaml)" >&2
	exit 1
}

# ------------------------------------------------------------------ offline
step "helm lint"
for args in "" "-f $here/values-nondefault.yaml" "-f $chart/ci/local-values.yaml"; do
	# shellcheck disable=SC2086
	if out=$(timeout 60 "$HELM" lint --strict "$chart" $args 2>&1); then
		pass "helm lint --strict ${args:-(defaults)}"
	else
		fail "helm lint --strict ${args:-(defaults)}"
		echo "$out"
	fi
done

step "helm template checks (tests/chart/render_test.py)"
if timeout 300 python3 "$here/render_test.py" "$HELM"; then
	pass "render_test.py"
else
	fail "render_test.py"
fi

step "values reference docs/helm-values.md up to date (tests/chart/values_doc.py)"
if timeout 60 python3 "$here/values_doc.py" --check; then
	pass "docs/helm-values.md matches values.yaml and values.schema.json"
else
	fail "docs/helm-values.md matches values.yaml and values.schema.json"
fi

# ------------------------------------------------------------------ cluster
kc() { timeout 60 "$KUBECTL" "$@"; }
h() { timeout 180 "$HELM" "$@"; }

if [[ ${APIROUTES_CHART_CLUSTER:-} == up ]]; then
	step "starting a local control plane (tests/cluster/cluster.sh up)"
	own_cluster=$tmp/cluster
	timeout 1800 "$repo/tests/cluster/cluster.sh" up "$own_cluster" >&2
	export KUBECONFIG=$own_cluster/kubeconfig
fi

if [[ -z ${KUBECONFIG:-} ]]; then
	echo "SKIP cluster tests: KUBECONFIG is not set (point it at the local control plane," \
		"or run with APIROUTES_CHART_CLUSTER=up)"
elif ! kc get --raw /readyz >/dev/null 2>&1; then
	fail "cluster at KUBECONFIG=$KUBECONFIG is not ready (kubectl get --raw /readyz)"
else
	rel=apiroutes-ct
	ns=apiroutes-ct-system
	team_a=apiroutes-ct-a
	team_b=apiroutes-ct-b
	op_sa=system:serviceaccount:$ns:$rel-operator
	gw_sa=system:serviceaccount:$ns:$rel-gateway
	step "cluster tests on $(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

	if h status "$rel" -n "$ns" >/dev/null 2>&1; then
		fail "release $rel already exists in $ns (a previous run?): not touching it"
		exit 1
	fi
	cluster_cleanup=cluster_teardown
	cluster_teardown() {
		h uninstall "$rel" -n "$ns" --timeout 60s >/dev/null 2>&1 || true
		kc delete namespace "$ns" "$team_a" "$team_b" --ignore-not-found --wait=false >/dev/null 2>&1 || true
	}
	kc create namespace "$team_a" >/dev/null
	kc create namespace "$team_b" >/dev/null
	# The release namespace enforces the `restricted` Pod Security Standard: the pods'
	# security contexts are judged by the API server's own admission.
	kc create namespace "$ns" >/dev/null
	kc label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null

	# can WHO VERB RESOURCE [kubectl args...]: expects yes.  cannot: expects no.
	can() {
		local who=$1
		shift
		if kc auth can-i "$@" --as="$who" >/dev/null 2>&1; then
			pass "${who##*:} can $*"
		else
			fail "${who##*:} can $*"
		fi
	}
	cannot() {
		local who=$1 out
		shift
		out=$(kc auth can-i "$@" --as="$who" 2>&1) && {
			fail "${who##*:} cannot $* (got: $out)"
			return
		}
		# A resource the server does not know would make the check vacuous.
		if [[ $(tail -n1 <<<"$out") == no* && $out != *"doesn't have a resource type"* ]]; then
			pass "${who##*:} cannot $*"
		else
			fail "${who##*:} cannot $* (kubectl: $out)"
		fi
	}
	# A key of the Preview Mode Secret (default: token), decoded.
	secret_value() {
		kc get secret "$rel-preview" -n "$ns" -o go-template="{{index .data \"${1:-token}\" | base64decode}}"
	}
	# Polls a command (for objects that controllers create or remove asynchronously).
	eventually() {
		local what=$1 i
		shift
		for ((i = 0; i < 60; i++)); do
			if "$@" >/dev/null 2>&1; then
				pass "$what"
				return 0
			fi
			sleep 1
		done
		fail "$what (after 60 s)"
	}

	step "helm install"
	if h install "$rel" "$chart" -n "$ns" --create-namespace >"$tmp/install.txt" 2>&1; then
		pass "helm install $rel"
		grep -q "Apply a first ApiRoute" "$tmp/install.txt" && pass "NOTES.txt shown" || fail "NOTES.txt shown"
	else
		fail "helm install $rel"
		cat "$tmp/install.txt"
		exit 1
	fi
	kc get crd apiroutes.apiroutes.dev >/dev/null && pass "CRD installed" || fail "CRD installed"
	for obj in deployment/$rel-operator deployment/$rel-gateway service/$rel-gateway \
		service/$rel-autoscaler service/$rel-operator-metrics service/$rel-gateway-metrics \
		secret/$rel-preview serviceaccount/$rel-operator serviceaccount/$rel-gateway \
		poddisruptionbudget/$rel-operator poddisruptionbudget/$rel-gateway \
		networkpolicy/$rel-functions networkpolicy/$rel-operator role/$rel-operator-leader \
		lease/apiroutes-operator; do
		kc get -n "$ns" "$obj" >/dev/null 2>&1 && pass "$obj exists" || fail "$obj exists"
	done
	pods_of() {
		[[ $(kc get pods -n "$ns" -l "app.kubernetes.io/instance=$rel,app.kubernetes.io/component=$1" \
			-o name | wc -l) -ge $2 ]]
	}
	eventually "2 operator pods admitted under Pod Security 'restricted'" pods_of operator 2
	eventually "2 gateway pods admitted under Pod Security 'restricted'" pods_of gateway 2
	if kc get events -n "$ns" --field-selector reason=FailedCreate -o name | grep -q .; then
		fail "no FailedCreate events: $(kc get events -n "$ns" --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}')"
	else
		pass "no FailedCreate events (PodSecurity)"
	fi
	key1=$(secret_value)
	skey1=$(secret_value signing-keys)
	[[ ${#key1} -ge 32 ]] && pass "preview token generated (${#key1} chars)" || fail "preview token generated"
	[[ ${#skey1} -ge 32 && $skey1 != *"$key1"* ]] && pass "a separate preview signing key generated" ||
		fail "a separate preview signing key generated"

	step "RBAC: the complete list of what each ServiceAccount may do (kubectl auth can-i --list)"
	# Resource rules only (the self-review rules and non-resource URLs every
	# authenticated user has are left out), normalized and sorted.
	rules_of() {
		kc auth can-i --list --as="$1" -n "$2" | awk 'NR > 1 && $1 !~ /^\[/ && $1 !~ /^self/ {
			$1 = $1; print }' | sort
	}
	same_rules() {
		local who=$1 where=$2 want=$3 got
		got=$(rules_of "$who" "$where")
		if [[ $got == "$(sort <<<"$want")" ]]; then
			pass "${who##*:} may do exactly the expected in $where"
		else
			fail "${who##*:} may do exactly the expected in $where"
			diff <(sort <<<"$want") <(echo "$got") || true
		fi
	}
	op_everywhere='apiroutes.apiroutes.dev [] [] [get list watch]
apiroutes.apiroutes.dev/status [] [] [get patch update]
routegrants.apiroutes.dev [] [] [get list watch]
deployments.apps [] [] [get list watch create patch update delete]
deployments.apps/scale [] [] [get patch update]
events [] [] [create patch]
events.events.k8s.io [] [] [create patch]
networkpolicies.networking.k8s.io [] [] [get create patch update]
pods [] [] [get list watch]
services [] [] [get list watch create patch update delete]
tokenreviews.authentication.k8s.io [] [] [create]'
	same_rules "$op_sa" default "$op_everywhere"
	same_rules "$op_sa" "$ns" "$(grep -v '^pods ' <<<"$op_everywhere")
pods [] [] [get list watch patch]
leases.coordination.k8s.io [] [apiroutes-operator] [get update patch]"
	gw_everywhere='apiroutes.apiroutes.dev [] [] [get list watch]
routegrants.apiroutes.dev [] [] [get list watch]
endpointslices.discovery.k8s.io [] [] [get list watch]
services [] [] [list watch]'
	same_rules "$gw_sa" default "$gw_everywhere"
	gw_lease='leases.coordination.k8s.io [] [apiroutes-operator] [get list watch]'
	same_rules "$gw_sa" "$ns" "$gw_everywhere
$gw_lease"

	step "RBAC: operator (all namespaces)"
	can "$op_sa" list apiroutes.apiroutes.dev -A
	can "$op_sa" watch apiroutes.apiroutes.dev -A
	can "$op_sa" patch apiroutes.apiroutes.dev --subresource=status -n default
	can "$op_sa" update apiroutes.apiroutes.dev --subresource=status -n "$team_a"
	can "$op_sa" create deployments.apps -n default
	can "$op_sa" delete deployments.apps -n "$team_a"
	can "$op_sa" patch deployments.apps --subresource=scale -n default
	can "$op_sa" create services -n default
	can "$op_sa" delete services -n "$team_b"
	can "$op_sa" patch networkpolicies.networking.k8s.io -n "$team_b"
	cannot "$op_sa" delete networkpolicies.networking.k8s.io -n "$team_b"
	can "$op_sa" list pods -A
	can "$op_sa" create events.events.k8s.io -n default
	can "$op_sa" create events -n default
	can "$op_sa" create tokenreviews.authentication.k8s.io
	cannot "$op_sa" create leases.coordination.k8s.io -n "$ns"
	can "$op_sa" get leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	can "$op_sa" update leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	can "$op_sa" patch pods -n "$ns"
	cannot "$op_sa" get secrets -n "$ns"
	cannot "$op_sa" list secrets -A
	cannot "$op_sa" create pods --subresource=exec -n default
	cannot "$op_sa" create pods -n default
	cannot "$op_sa" delete pods -n default
	cannot "$op_sa" patch pods -n default
	cannot "$op_sa" update leases.coordination.k8s.io/other-lease -n "$ns"
	cannot "$op_sa" create leases.coordination.k8s.io -n default
	cannot "$op_sa" create apiroutes.apiroutes.dev -n default
	cannot "$op_sa" delete apiroutes.apiroutes.dev -n default
	cannot "$op_sa" update apiroutes.apiroutes.dev -n default
	cannot "$op_sa" get configmaps -n "$ns"
	cannot "$op_sa" list nodes
	cannot "$op_sa" create clusterroles.rbac.authorization.k8s.io
	cannot "$op_sa" create rolebindings.rbac.authorization.k8s.io -n default
	cannot "$op_sa" create serviceaccounts --subresource=token -n "$ns"
	cannot "$op_sa" impersonate serviceaccounts -n "$ns"
	cannot "$op_sa" '*' '*'
	cannot "$op_sa" '*' '*' -n "$ns"

	step "RBAC: gateway (all namespaces)"
	can "$gw_sa" list apiroutes.apiroutes.dev -A
	can "$gw_sa" watch apiroutes.apiroutes.dev -A
	can "$gw_sa" get apiroutes.apiroutes.dev -n default
	can "$gw_sa" list endpointslices.discovery.k8s.io -A
	can "$gw_sa" watch endpointslices.discovery.k8s.io -n "$ns"
	cannot "$gw_sa" get secrets -n "$ns"
	cannot "$gw_sa" get secrets/"$rel-preview" -n "$ns"
	cannot "$gw_sa" list pods -A
	can "$gw_sa" list services -A
	can "$gw_sa" watch services -n "$ns"
	cannot "$gw_sa" get services -n default
	cannot "$gw_sa" create services -n default
	cannot "$gw_sa" patch services -n default
	cannot "$gw_sa" list endpoints -A
	cannot "$gw_sa" create apiroutes.apiroutes.dev -n default
	cannot "$gw_sa" patch apiroutes.apiroutes.dev --subresource=status -n default
	cannot "$gw_sa" create endpointslices.discovery.k8s.io -n default
	cannot "$gw_sa" create deployments.apps -n default
	cannot "$gw_sa" get leases.coordination.k8s.io -n "$ns"
	can "$gw_sa" get leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	can "$gw_sa" watch leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	cannot "$gw_sa" update leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	cannot "$gw_sa" get leases.coordination.k8s.io/other-lease -n "$ns"
	cannot "$gw_sa" get leases.coordination.k8s.io/apiroutes-operator -n default
	cannot "$gw_sa" create tokenreviews.authentication.k8s.io
	cannot "$gw_sa" create pods --subresource=exec -n "$ns"
	cannot "$gw_sa" '*' '*'

	step "RBAC: ApiRoutes aggregated into the built-in edit and view roles"
	kc create serviceaccount ct-user -n "$team_a" >/dev/null
	kc create rolebinding ct-user-edit --clusterrole=edit --serviceaccount="$team_a:ct-user" -n "$team_a" >/dev/null
	eventually "edit role lets a namespace user apply ApiRoutes" \
		kc auth can-i create apiroutes.apiroutes.dev -n "$team_a" --as="system:serviceaccount:$team_a:ct-user"
	cannot "system:serviceaccount:$team_a:ct-user" patch apiroutes.apiroutes.dev --subresource=status -n "$team_a"

	step "helm upgrade: watch two namespaces, 3 gateways, debug logs"
	if h upgrade "$rel" "$chart" -n "$ns" --set-json "watchNamespaces=[\"$team_a\",\"$team_b\"]" \
		--set gateway.replicas=3 --set logging.level=debug >"$tmp/upgrade.txt" 2>&1; then
		pass "helm upgrade $rel"
	else
		fail "helm upgrade $rel"
		cat "$tmp/upgrade.txt"
	fi
	[[ $(secret_value) == "$key1" ]] && pass "preview token kept across the upgrade" || fail "preview token kept across the upgrade"
	[[ $(secret_value signing-keys) == "$skey1" ]] && pass "preview signing keys kept across the upgrade" ||
		fail "preview signing keys kept across the upgrade"
	[[ $(kc get deployment "$rel-gateway" -n "$ns" -o jsonpath='{.spec.replicas}') == 3 ]] &&
		pass "gateway scaled to 3" || fail "gateway scaled to 3"
	args=$(kc get deployment "$rel-operator" -n "$ns" -o jsonpath='{.spec.template.spec.containers[0].args}')
	[[ $args == *"--namespace=$team_a"* && $args == *"--log-level=debug"* ]] &&
		pass "operator args updated" || fail "operator args updated ($args)"
	for r in clusterrole/$rel-operator clusterrole/$rel-gateway clusterrolebinding/$rel-operator clusterrolebinding/$rel-gateway; do
		kc get "$r" >/dev/null 2>&1 && fail "$r removed" || pass "$r removed"
	done
	kc get role "$rel-operator" -n "$team_a" >/dev/null 2>&1 && pass "Role in $team_a" || fail "Role in $team_a"
	can "$op_sa" create deployments.apps -n "$team_a"
	can "$op_sa" patch deployments.apps --subresource=scale -n "$team_b"
	can "$op_sa" list apiroutes.apiroutes.dev -n "$team_b"
	can "$op_sa" update leases.coordination.k8s.io/apiroutes-operator -n "$ns"
	can "$op_sa" patch pods -n "$ns"
	cannot "$op_sa" create deployments.apps -n kube-system
	cannot "$op_sa" create deployments.apps -n default
	cannot "$op_sa" delete services -n kube-system
	cannot "$op_sa" list apiroutes.apiroutes.dev -A
	cannot "$op_sa" list pods -A
	cannot "$op_sa" get secrets -n "$team_a"
	# Outside the watched namespaces: only reading RouteGrants (cluster-scoped).
	grants_rule='routegrants.apiroutes.dev [] [] [get list watch]'
	same_rules "$op_sa" "$team_a" "$op_everywhere"
	# Reviewing the gateways' autoscaler tokens is cluster-scoped too.
	tr_rule='tokenreviews.authentication.k8s.io [] [] [create]'
	same_rules "$op_sa" default "$grants_rule
$tr_rule"
	same_rules "$op_sa" "$ns" "leases.coordination.k8s.io [] [apiroutes-operator] [get update patch]
pods [] [] [patch]
$grants_rule
$tr_rule"
	same_rules "$gw_sa" "$team_b" "$gw_everywhere"
	same_rules "$gw_sa" "$ns" "endpointslices.discovery.k8s.io [] [] [get list watch]
$gw_lease
$grants_rule"
	same_rules "$gw_sa" default "$grants_rule"
	can "$gw_sa" list endpointslices.discovery.k8s.io -n "$team_a"
	can "$gw_sa" list endpointslices.discovery.k8s.io -n "$ns"
	can "$gw_sa" watch apiroutes.apiroutes.dev -n "$team_b"
	can "$gw_sa" watch services -n "$team_a"
	cannot "$gw_sa" list services -n default
	cannot "$gw_sa" list services -A
	cannot "$gw_sa" list endpointslices.discovery.k8s.io -n default
	cannot "$gw_sa" list apiroutes.apiroutes.dev -A
	cannot "$gw_sa" list apiroutes.apiroutes.dev -n "$ns"
	kc get networkpolicy "$rel-functions" -n "$team_a" >/dev/null 2>&1 &&
		pass "functions NetworkPolicy in $team_a" || fail "functions NetworkPolicy in $team_a"

	step "helm upgrade: a given preview token and keys replace the generated ones, and are then kept"
	given=0123456789abcdef0123456789abcdef-chart-test
	given_keys=$'0123456789abcdef0123456789abcdef-key-new\n0123456789abcdef0123456789abcdef-key-old'
	h upgrade "$rel" "$chart" -n "$ns" --set preview.token="$given" --set-string preview.signingKeys="$given_keys" >/dev/null 2>&1 &&
		pass "helm upgrade with preview.token and preview.signingKeys" || fail "helm upgrade with preview.token and preview.signingKeys"
	[[ $(secret_value) == "$given" ]] && pass "preview token = the given one" || fail "preview token = the given one"
	[[ $(secret_value signing-keys) == "$given_keys" ]] && pass "preview signing keys = the given ones" ||
		fail "preview signing keys = the given ones"
	# --reset-values: without values Helm reuses the last release's (the given token).
	h upgrade "$rel" "$chart" -n "$ns" --reset-values >/dev/null 2>&1 && pass "helm upgrade back to defaults" || fail "helm upgrade back to defaults"
	[[ $(secret_value) == "$given" && $(secret_value signing-keys) == "$given_keys" ]] &&
		pass "preview token and keys kept when the values are unset again" ||
		fail "preview token and keys kept when the values are unset again"

	step "helm upgrade from the single preview secret: it becomes the token, a signing key is added"
	old=0123456789abcdef0123456789abcdef-single-secret
	kc patch secret "$rel-preview" -n "$ns" --type=json \
		-p "[{\"op\":\"replace\",\"path\":\"/data\",\"value\":{\"secret\":\"$(printf %s "$old" | base64 | tr -d '\n')\"}}]" >/dev/null
	h upgrade "$rel" "$chart" -n "$ns" --reset-values >/dev/null 2>&1 && pass "helm upgrade over an old Secret" || fail "helm upgrade over an old Secret"
	[[ $(secret_value) == "$old" ]] && pass "the old secret is the token" || {
		fail "the old secret is the token"
		kc get secret "$rel-preview" -n "$ns" -o yaml --show-managed-fields
	}
	migrated=$(secret_value signing-keys)
	[[ ${#migrated} -ge 32 && $migrated != *"$old"* ]] && pass "a new signing key was generated" ||
		fail "a new signing key was generated"
	kc get clusterrole "$rel-operator" >/dev/null 2>&1 && pass "back to ClusterRoles" || fail "back to ClusterRoles"
	kc get role "$rel-operator" -n "$team_a" >/dev/null 2>&1 && fail "Role in $team_a removed" || pass "Role in $team_a removed"

	# Every listable type (events aside), in one request per scope.
	types_ns=$(kc api-resources --verbs=list --namespaced=true -o name | grep -v '^events' | paste -sd, -)
	types_cluster=$(kc api-resources --verbs=list --namespaced=false -o name | paste -sd, -)
	leftovers() {
		local types=$types_cluster
		[[ $1 == true ]] && types=$types_ns
		local out
		# A failing kubectl must not pass for "nothing left".
		out=$(kc get "$types" -A -l "app.kubernetes.io/instance=$rel" -o name 2>&1) || {
			echo "kubectl failed: $out"
			return
		}
		grep -v -e '^No resources found' -e '^Warning:' <<<"$out" || true
	}
	step "helm uninstall"
	# The leftover check below must see the release while it is there.
	present=$(leftovers true)$(leftovers false)
	[[ $present == *"deployment.apps/$rel-gateway"* && $present == *"clusterrole.rbac.authorization.k8s.io/$rel-operator"* ]] &&
		pass "leftover check sees the installed release" || fail "leftover check sees the installed release ($present)"
	if h uninstall "$rel" -n "$ns" --timeout 120s >"$tmp/uninstall.txt" 2>&1; then
		pass "helm uninstall $rel"
	else
		fail "helm uninstall $rel"
		cat "$tmp/uninstall.txt"
	fi
	no_leftovers() { [[ -z $(leftovers "$1") ]]; }
	eventually "no namespaced object of the release is left (pods included)" no_leftovers true
	eventually "no cluster-scoped object of the release is left" no_leftovers false
	[[ -z $(leftovers true)$(leftovers false) ]] || echo "left: $(leftovers true) $(leftovers false)"
	kc get secret "$rel-preview" -n "$ns" >/dev/null 2>&1 && fail "preview Secret removed" || pass "preview Secret removed"
	kc get crd apiroutes.apiroutes.dev >/dev/null 2>&1 && pass "CRD kept (Helm convention)" || fail "CRD kept"
	kc get clusterrole "$rel-view" "$rel-edit" >/dev/null 2>&1 && fail "aggregated ClusterRoles removed" ||
		pass "aggregated ClusterRoles removed"
fi

echo
if ((failures > 0)); then
	echo "chart tests: $failures failure(s)"
	exit 1
fi
echo "chart tests: all passed ($SECONDS s)"
