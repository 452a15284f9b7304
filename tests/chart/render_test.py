#!/usr/bin/env python3
"""Offline tests of charts/apiroutes: renders it with `helm template` under several sets of
values and checks the properties issue 7 asks for (RBAC verbs exact, hardened pods,
replicas, flags, hostPort, namespaced Roles, NetworkPolicies, Secret, schema rejections).

    python3 tests/chart/render_test.py HELM   # exits 1 on any failure
"""
import base64
import json
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHART = os.environ.get("APIROUTES_CHART_DIR") or os.path.join(REPO, "charts", "apiroutes")
NS = "apiroutes-system"
HELM = sys.argv[1] if len(sys.argv) > 1 else "helm"

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"FAIL - {what}")


def helm_template(*args, release="apiroutes"):
    cmd = [HELM, "template", release, CHART, "-n", NS, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p


def render(*args, release="apiroutes"):
    p = helm_template(*args, release=release)
    if p.returncode != 0:
        raise SystemExit(f"helm template {' '.join(args)} failed:\n{p.stderr}")
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    return Manifests(docs)


class Manifests:
    def __init__(self, docs):
        self.docs = docs

    def of(self, kind, name=None, namespace=None):
        return [
            d
            for d in self.docs
            if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]

    def one(self, kind, name, namespace=None):
        found = self.of(kind, name, namespace)
        check(len(found) == 1, f"exactly one {kind} {namespace or ''}/{name} (found {len(found)})")
        return found[0] if found else {}

    def names(self, kind):
        return sorted(
            (d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in self.of(kind)
        )


def rules_set(role):
    """A role's rules as a set of (group, resource, verb, resourceName-or-'')."""
    out = set()
    for r in role.get("rules", []):
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    for n in r.get("resourceNames") or [""]:
                        out.add((g, res, v, n))
    return out


def expand(spec):
    return {(g, r, v, n) for (g, r, verbs, n) in spec for v in verbs.split()}


OPERATOR_RULES = expand(
    [
        ("apiroutes.dev", "apiroutes", "get list watch", ""),
        ("apiroutes.dev", "apiroutes/status", "get patch update", ""),
        ("apps", "deployments", "get list watch create patch update delete", ""),
        ("apps", "deployments/scale", "get patch update", ""),
        ("", "services", "get list watch create patch update delete", ""),
        ("networking.k8s.io", "networkpolicies", "get create patch update", ""),
        ("", "pods", "get list watch", ""),
        ("events.k8s.io", "events", "create patch", ""),
        ("", "events", "create patch", ""),
    ]
)
GATEWAY_RULES = expand(
    [
        ("apiroutes.dev", "apiroutes", "get list watch", ""),
        ("", "services", "list watch", ""),
        ("discovery.k8s.io", "endpointslices", "get list watch", ""),
    ]
)


def leader_rules(lease):
    return expand(
        [
            ("coordination.k8s.io", "leases", "get update patch", lease),
            ("", "pods", "patch", ""),
        ]
    )


GRANT_RULES = expand([("apiroutes.dev", "routegrants", "get list watch", "")])
def gateway_leader_rules(lease):
    return expand([("coordination.k8s.io", "leases", "get list watch", lease)])


DISCOVERY_RULES = expand([("discovery.k8s.io", "endpointslices", "get list watch", "")])
FORBIDDEN_RESOURCES = {"secrets", "pods/exec", "pods/attach", "pods/portforward", "configmaps",
                       "serviceaccounts/token", "nodes/proxy", "*"}
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}


def check_no_dangerous_rules(m):
    for kind in ("ClusterRole", "Role"):
        for role in m.of(kind):
            name = f"{kind} {role['metadata'].get('namespace', '')}/{role['metadata']['name']}"
            for g, res, v, _ in rules_set(role):
                check(res not in FORBIDDEN_RESOURCES, f"{name} grants no {res}")
                check(v not in FORBIDDEN_VERBS, f"{name} grants no verb {v}")
                check(g != "*", f"{name} grants no apiGroup *")


def container(dep):
    cs = dep["spec"]["template"]["spec"]["containers"]
    check(len(cs) == 1, f"{dep['metadata']['name']} has one container")
    return cs[0]


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def ports_of(c):
    return {p["name"]: p for p in c.get("ports", [])}


def check_hardened(dep):
    name = dep["metadata"]["name"]
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
    check(psc.get("runAsUser") == 65532, f"{name}: pod runAsUser 65532")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: pod seccomp RuntimeDefault")
    c = container(dep)
    sc = c.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, f"{name}: container runAsNonRoot")
    check(sc.get("runAsUser") == 65532, f"{name}: container runAsUser 65532")
    check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
    check(sc.get("privileged") is not True, f"{name}: not privileged")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: drops ALL capabilities")
    check("add" not in sc.get("capabilities", {}), f"{name}: adds no capabilities")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: container seccomp RuntimeDefault")
    check(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"),
          f"{name}: no host namespaces")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        hg = c.get(probe, {}).get("httpGet", {})
        check(hg.get("path") == path and hg.get("port") == "admin", f"{name}: {probe} GET {path} on admin")
    res = c.get("resources", {})
    check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
          and res.get("limits", {}).get("memory"), f"{name}: cpu/memory requests and a memory limit")
    for k in ("POD_NAME", "POD_NAMESPACE"):
        e = env_of(c).get(k, {})
        want = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}[k]
        check(e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == want,
              f"{name}: {k} from the downward API ({want})")


def anti_affinity(dep):
    return dep["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})


def check_labels(m):
    for d in m.docs:
        labels = d["metadata"].get("labels", {})
        ident = f"{d['kind']} {d['metadata']['name']}"
        check(labels.get("app.kubernetes.io/instance") == "apiroutes" or d["metadata"]["name"].startswith("ar"),
              f"{ident}: instance label")
        check(labels.get("app.kubernetes.io/managed-by") == "Helm", f"{ident}: managed-by Helm label")
        check(labels.get("app.kubernetes.io/managed-by") != "apiroutes-operator",
              f"{ident}: never looks operator-owned")


def secret_value(m, name, key="token"):
    s = m.one("Secret", name, NS)
    data = s.get("data", {})
    return base64.b64decode(data.get(key, "")).decode() if data else ""


PREVIEW_DIR = "/etc/apiroutes/preview"


def check_preview_mount(dep, secret, token_key="token", keys_key="signing-keys"):
    """The gateway reads the Preview Mode token and signing keys from the mounted Secret
    (whole directory, no subPath, so the kubelet updates it in place and the gateway
    reloads), never from the environment."""
    c = container(dep)
    args = c["args"]
    for a in (f"--preview-token-file={PREVIEW_DIR}/token", f"--preview-keys-file={PREVIEW_DIR}/signing-keys"):
        check(a in args, f"gateway arg {a}")
    check(not any(a.startswith("--preview-secret") for a in args), "gateway: no deprecated --preview-secret*")
    check(not any(k.startswith("APIROUTES_PREVIEW") or k.startswith("APIROUTES_GATEWAY_PREVIEW") for k in env_of(c)),
          "gateway: no preview secret in the environment")
    mounts = [vm for vm in c.get("volumeMounts", []) if vm["name"] == "preview"]
    check(len(mounts) == 1 and mounts[0]["mountPath"] == PREVIEW_DIR and mounts[0].get("readOnly") is True
          and "subPath" not in mounts[0], f"preview Secret mounted read-only at {PREVIEW_DIR}, no subPath ({mounts})")
    vols = [v for v in dep["spec"]["template"]["spec"].get("volumes", []) if v["name"] == "preview"]
    sv = vols[0].get("secret", {}) if vols else {}
    check(sv.get("secretName") == secret, f"preview volume from Secret {secret} ({sv.get('secretName')})")
    check(sv.get("items") == [{"key": token_key, "path": "token"}, {"key": keys_key, "path": "signing-keys"}],
          f"preview volume maps {token_key} → token, {keys_key} → signing-keys ({sv.get('items')})")
    check(sv.get("defaultMode") == 0o440, f"preview files readable by the gateway's group only ({sv.get('defaultMode')})")


# ---------------------------------------------------------------- default values
def test_defaults():
    print("# defaults")
    m = render()
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for d in m.docs:
        if d["kind"] not in cluster_scoped:
            check(d["metadata"].get("namespace") == NS,
                  f"{d['kind']} {d['metadata']['name']} is in the release namespace")

    op = m.one("Deployment", "apiroutes-operator", NS)
    gw = m.one("Deployment", "apiroutes-gateway", NS)
    check(op["spec"]["replicas"] == 2, "operator: 2 replicas")
    check(gw["spec"]["replicas"] == 2, "gateway: 2 replicas")
    for dep in (op, gw):
        check_hardened(dep)
        pref = anti_affinity(dep).get("preferredDuringSchedulingIgnoredDuringExecution", [])
        check(len(pref) == 1 and pref[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname",
              f"{dep['metadata']['name']}: soft anti-affinity by hostname")
        check("requiredDuringSchedulingIgnoredDuringExecution" not in anti_affinity(dep),
              f"{dep['metadata']['name']}: no hard anti-affinity by default")
        check("apiroutes.dev/leader" not in dep["spec"]["selector"]["matchLabels"]
              and "apiroutes.dev/leader" not in dep["spec"]["template"]["metadata"]["labels"],
              f"{dep['metadata']['name']}: leader label left to the operator")
        check(dep["spec"]["template"]["spec"]["serviceAccountName"] == dep["metadata"]["name"],
              f"{dep['metadata']['name']}: own ServiceAccount")

    oc, gc = container(op), container(gw)
    for c in (oc, gc):
        check("OTEL_EXPORTER_OTLP_ENDPOINT" not in env_of(c), f"{c['name']}: no span export by default")
        check("OTEL_EXPORTER_OTLP_CERTIFICATE" not in env_of(c)
              and not any(m["name"] == "otlp-ca" for m in c.get("volumeMounts", [])),
              f"{c['name']}: no collector CA by default")
    check(oc["image"] == "ghcr.io/apiroutes/operator:0.1.0", f"operator image = appVersion tag ({oc['image']})")
    check(gc["image"] == "ghcr.io/apiroutes/gateway:0.1.0", f"gateway image = appVersion tag ({gc['image']})")
    oargs = oc["args"]
    for a in ("--lease-namespace=$(POD_NAMESPACE)", "--pod-name=$(POD_NAME)",
              "--gateway-url=http://apiroutes-gateway.apiroutes-system.svc", "--log-format=json",
              "--log-level=info", "--admin-listen=0.0.0.0:9090", "--autoscaler-listen=0.0.0.0:8081",
              "--lease-name=apiroutes-operator"):
        check(a in oargs, f"operator arg {a}")
    check(not any(a.startswith("--namespace") for a in oargs), "operator: no --namespace (all namespaces)")
    for a in ("--gateway-namespace=$(POD_NAMESPACE)", "--gateway-pod-label=app.kubernetes.io/component=gateway",
              "--gateway-pod-label=app.kubernetes.io/instance=apiroutes"):
        check(a in oargs, f"operator arg {a} (a NetworkPolicy per route admits only the gateways)")
    gargs = gc["args"]
    for a in ("--autoscaler-service=apiroutes-system/apiroutes-autoscaler", "--listen=0.0.0.0:8080",
              "--admin-listen=0.0.0.0:9090", "--log-format=json", "--log-level=info",
              "--gateway-id=$(POD_NAME)", "--max-held-per-route=1000", "--max-held-total=10000",
              "--preview-prefix=/__apiroutes/preview", "--preview-reload-interval=10",
              "--access-log=true", "--trace-sample-ratio=1"):
        check(a in gargs, f"gateway arg {a}")
    check(not any(a.startswith("--namespace") or a.startswith("--worker-threads") for a in gargs),
          "gateway: no --namespace / --worker-threads by default")
    check("--admin-routes" not in gargs, "gateway: no --admin-routes by default (/routes is off)")
    check_preview_mount(gw, "apiroutes-preview")
    check("APIROUTES_PREVIEW_SECRET" not in env_of(oc) and not oc.get("volumeMounts")
          and not op["spec"]["template"]["spec"].get("volumes"), "operator: no preview secret")

    op_ports, gw_ports = ports_of(oc), ports_of(gc)
    check(op_ports.get("admin", {}).get("containerPort") == 9090, "operator admin port 9090")
    check(op_ports.get("autoscaler", {}).get("containerPort") == 8081, "operator port `autoscaler` 8081")
    check(gw_ports.get("http", {}).get("containerPort") == 8080, "gateway http port 8080")
    check(gw_ports.get("admin", {}).get("containerPort") == 9090, "gateway admin port 9090")
    check(all("hostPort" not in p for c in (oc, gc) for p in c["ports"]), "no hostPort by default")
    check("strategy" not in gw["spec"], "gateway: default rollout strategy without hostPort")

    svc = m.one("Service", "apiroutes-gateway", NS)
    check(svc["spec"]["type"] == "ClusterIP", "gateway Service: ClusterIP")
    check(svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
          "gateway Service: port 80 → http")
    auto = m.one("Service", "apiroutes-autoscaler", NS)
    check("apiroutes.dev/leader" not in auto["spec"]["selector"],
          "autoscaler Service selects every operator pod (gateways follow the Lease, not the label)")
    check(auto["spec"]["selector"].get("app.kubernetes.io/component") == "operator", "autoscaler Service selects operator pods")
    check([p["name"] for p in auto["spec"]["ports"]] == ["autoscaler"], "autoscaler Service port named autoscaler")
    check(auto["spec"].get("publishNotReadyAddresses") is True, "autoscaler Service publishes the leader before its readiness probe passes")
    check(auto["spec"]["ports"][0]["targetPort"] == "autoscaler", "autoscaler Service targets port autoscaler")
    for comp in ("operator", "gateway"):
        ms = m.one("Service", f"apiroutes-{comp}-metrics", NS)
        check(ms["spec"]["ports"][0]["name"] == "metrics" and ms["spec"]["ports"][0]["targetPort"] == "admin",
              f"{comp} metrics Service: port metrics → admin")
        pdb = m.one("PodDisruptionBudget", f"apiroutes-{comp}", NS)
        check(pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"],
              f"{comp} PDB maxUnavailable 1")
        sa = m.one("ServiceAccount", f"apiroutes-{comp}", NS)
        check(sa.get("automountServiceAccountToken") is False, f"{comp} SA: no automount except where the pod asks")

    # RBAC, exact.
    check(rules_set(m.one("ClusterRole", "apiroutes-operator")) == OPERATOR_RULES, "operator ClusterRole: exact rules")
    gwr = rules_set(m.one("ClusterRole", "apiroutes-gateway"))
    check(gwr == GATEWAY_RULES, f"gateway ClusterRole: exact rules (extra {gwr - GATEWAY_RULES}, missing {GATEWAY_RULES - gwr})")
    check(rules_set(m.one("Role", "apiroutes-operator-leader", NS)) == leader_rules("apiroutes-operator"),
          "operator leader Role: its own Lease by name + pods patch, no Lease create")
    lease = m.one("Lease", "apiroutes-operator", NS)
    check("spec" not in lease, "the chart owns the Lease but leaves its spec to the operator")
    check(rules_set(m.one("Role", "apiroutes-gateway-leader", NS)) == gateway_leader_rules("apiroutes-operator"),
          "gateway leader Role: reads only the leader Lease, by name")
    check(m.names("Role") == [(NS, "apiroutes-gateway-leader"), (NS, "apiroutes-operator-leader")],
          f"only the leader Roles ({m.names('Role')})")
    check("--autoscaler-lease=apiroutes-system/apiroutes-operator" in gc["args"],
          "gateway follows the operators' Lease")
    for name, sa in (("apiroutes-operator", "apiroutes-operator"), ("apiroutes-gateway", "apiroutes-gateway")):
        b = m.one("ClusterRoleBinding", name)
        check(b.get("roleRef", {}).get("name") == name and b.get("subjects") ==
              [{"kind": "ServiceAccount", "name": sa, "namespace": NS}], f"ClusterRoleBinding {name} → SA {sa}")
    b = m.one("RoleBinding", "apiroutes-operator-leader", NS)
    check(b.get("subjects") == [{"kind": "ServiceAccount", "name": "apiroutes-operator", "namespace": NS}],
          "leader RoleBinding → operator SA")
    check(sorted(d["metadata"]["name"] for d in m.of("ClusterRoleBinding")) ==
          ["apiroutes-gateway", "apiroutes-operator", "apiroutes-operator-tokenreview", "apiroutes-routegrants"],
          "no other ClusterRoleBindings")
    check(rules_set(m.one("ClusterRole", "apiroutes-operator-tokenreview")) ==
          expand([("authentication.k8s.io", "tokenreviews", "create", "")]),
          "TokenReview ClusterRole: create tokenreviews only")
    op_args = m.one("Deployment", "apiroutes-operator", NS)["spec"]["template"]["spec"]["containers"][0]["args"]
    check(f"--autoscaler-allowed-identity=system:serviceaccount:{NS}:apiroutes-gateway" in op_args,
          "operator: only the gateway SA may push to the autoscaler")
    gw_pod = m.one("Deployment", "apiroutes-gateway", NS)["spec"]["template"]["spec"]
    token = [v for v in gw_pod.get("volumes", []) if v["name"] == "autoscaler-token"]
    check(bool(token) and token[0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "apiroutes-autoscaler",
          "gateway: a projected token for the audience apiroutes-autoscaler")
    check(rules_set(m.one("ClusterRole", "apiroutes-routegrants")) == GRANT_RULES, "RouteGrants ClusterRole: read only")
    b = m.one("ClusterRoleBinding", "apiroutes-routegrants")
    check(b.get("subjects") == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}
                                for sa in ("apiroutes-operator", "apiroutes-gateway")],
          "RouteGrants ClusterRoleBinding → both SAs")
    view = rules_set(m.one("ClusterRole", "apiroutes-view"))
    check(all(v in ("get", "list", "watch") for _, _, v, _ in view), "view aggregate is read-only")
    check_no_dangerous_rules(m)

    # NetworkPolicies.
    fn = m.one("NetworkPolicy", "apiroutes-functions", NS)
    check(fn["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "apiroutes-operator"}},
          "functions policy selects operator-made pods")
    check(fn["spec"]["policyTypes"] == ["Ingress"], "functions policy: Ingress")
    peers = fn["spec"]["ingress"][0]["from"]
    check(len(fn["spec"]["ingress"]) == 1 and len(peers) == 1
          and peers[0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NS}}
          and peers[0]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "gateway",
          "functions accept ingress only from gateway pods of the release namespace")
    opnp = m.one("NetworkPolicy", "apiroutes-operator", NS)
    auto_rule = [r for r in opnp["spec"]["ingress"] if r.get("ports") == [{"port": "autoscaler", "protocol": "TCP"}]]
    check(len(auto_rule) == 1 and auto_rule[0]["from"][0]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "gateway",
          "operator autoscaler port only from gateway pods")
    check(all(r.get("ports") and all(p["port"] != "autoscaler" for p in r["ports"]) for r in opnp["spec"]["ingress"] if r not in auto_rule),
          "no other rule opens the autoscaler port")

    # Secret: a token and a separate signing key, generated, 64 characters each.
    sec = m.one("Secret", "apiroutes-preview", NS)
    check(sorted(sec.get("data", {})) == ["signing-keys", "token"], f"preview Secret keys token, signing-keys ({sorted(sec.get('data', {}))})")
    t = secret_value(m, "apiroutes-preview")
    k = secret_value(m, "apiroutes-preview", "signing-keys")
    check(len(t) == 64 and t.isalnum(), "preview token generated (64 alphanumerics)")
    check(k.endswith("\n") and len(k.strip()) == 64 and k.strip().isalnum() and k.count("\n") == 1,
          "one preview signing key generated (64 alphanumerics, one line)")
    check(k.strip() != t, "the signing key is not the token")
    fresh = render()
    check(secret_value(fresh, "apiroutes-preview") != t
          and secret_value(fresh, "apiroutes-preview", "signing-keys") != k,
          "a fresh render (no live Secret) generates a new token and key")
    check("checksum/preview-secret" not in gw["spec"]["template"]["metadata"].get("annotations", {}),
          "generated preview Secret: no checksum annotation (the gateways reload the mounted files)")

    check(not m.of("ServiceMonitor"), "no ServiceMonitor by default")
    check(not m.of("ConfigMap"), "no dashboard ConfigMap by default")
    check_labels(m)


# ---------------------------------------------------------------- non-default values
def test_nondefault():
    print("# non-default values (tests/chart/values-nondefault.yaml)")
    m = render("-f", os.path.join(HERE, "values-nondefault.yaml"))
    op = m.one("Deployment", "ar-operator", NS)
    gw = m.one("Deployment", "ar-gateway", NS)
    check(op["spec"]["replicas"] == 3 and gw["spec"]["replicas"] == 1, "replicas 3 / 1")
    for dep in (op, gw):
        check_hardened(dep)
        check(dep["spec"]["template"]["spec"].get("imagePullSecrets") == [{"name": "regcred"}],
              f"{dep['metadata']['name']}: imagePullSecrets")
    oc, gc = container(op), container(gw)
    check(oc["image"] == "registry.example/apiroutes/operator:9.9.9", "operator image repository + tag")
    check(gc["image"].startswith("ghcr.io/apiroutes/gateway@sha256:0123"), "gateway image by digest")
    for c in (oc, gc):
        ns_args = [a for a in c["args"] if a.startswith("--namespace")]
        check(ns_args == ["--namespace=team-a", "--namespace=team-b"], f"{c['name']}: --namespace per watched namespace")
        check("--log-format=text" in c["args"], f"{c['name']}: log format text")
        check(env_of(c).get("OTEL_EXPORTER_OTLP_ENDPOINT", {}).get("value")
              == "https://otel-collector.observability:4318", f"{c['name']}: OTLP endpoint in the environment")
        check(env_of(c).get("OTEL_EXPORTER_OTLP_CERTIFICATE", {}).get("value")
              == "/etc/apiroutes/otlp-ca/ca.crt", f"{c['name']}: the collector's CA file in the environment")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        check(mounts.get("otlp-ca", {}).get("mountPath") == "/etc/apiroutes/otlp-ca"
              and mounts["otlp-ca"].get("readOnly") is True, f"{c['name']}: the collector's CA mounted read-only")
    for dep in (op, gw):
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
        check(vols.get("otlp-ca", {}).get("secret", {}).get("secretName") == "otel-ca",
              f"{dep['metadata']['name']}: the otlpCaSecret volume")
    check("--log-level=trace" in oc["args"] and "--log-level=debug" in gc["args"], "per-component log level override")
    check("--gateway-url=http://gateway.example" in oc["args"] and "--lease-name=my-lease" in oc["args"],
          "operator gateway URL and lease name")
    check("--admin-listen=$(POD_IP):9090" in oc["args"] and "--listen=$(POD_IP):8080" in gc["args"],
          "listenHost $(POD_IP)")
    check(env_of(oc).get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP",
          "POD_IP from the downward API")
    check("--extra=1" in oc["args"] and "--worker-threads=4" in gc["args"], "extraArgs / workerThreads")
    check("--admin-routes" in gc["args"], "adminRoutes: --admin-routes")
    check("--access-log=false" in gc["args"] and "--trace-sample-ratio=0.25" in gc["args"],
          "accessLog false / traceSampleRatio 0.25")
    check(ports_of(gc)["http"].get("hostPort") == 8080, "gateway hostPort 8080 when set")
    check("hostPort" not in ports_of(gc)["admin"] and all("hostPort" not in p for p in oc["ports"]),
          "hostPort only on the gateway http port")
    check(gw["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge") == 0, "hostPort: maxSurge 0")
    check("lifecycle" not in gc, "preStopSleepSeconds 0: no preStop hook")
    check(anti_affinity(op).get("requiredDuringSchedulingIgnoredDuringExecution"), "operator: hard anti-affinity")
    check("affinity" not in gw["spec"]["template"]["spec"], "gateway: no anti-affinity (none)")
    check("checksum/preview-secret" in gw["spec"]["template"]["metadata"].get("annotations", {}),
          "gateway rolls when the given preview token or keys change")
    check(secret_value(m, "ar-preview") == "0123456789abcdef0123456789abcdef-given", "preview Secret holds the given token")
    check(secret_value(m, "ar-preview", "signing-keys")
          == "0123456789abcdef0123456789abcdef-new-key\n0123456789abcdef0123456789abcdef-old-key\n",
          "preview Secret holds the given signing keys in order, comments and blank lines dropped")
    check_preview_mount(gw, "ar-preview")
    check("--preview-reload-interval=30" in gc["args"], "preview.reloadInterval → --preview-reload-interval")
    other = render("-f", os.path.join(HERE, "values-nondefault.yaml"),
                   "--set", "preview.signingKeys=0123456789abcdef0123456789abcdef-newer-key")
    sums = [d.one("Deployment", "ar-gateway", NS)["spec"]["template"]["metadata"].get("annotations", {})
            .get("checksum/preview-secret") for d in (m, other)]
    check(sums[0] and sums[1] and sums[0] != sums[1], "a changed given signing key changes the checksum (rolls the gateways)")

    svc = m.one("Service", "ar-gateway", NS)
    sp = svc["spec"]
    check(sp["type"] == "LoadBalancer" and sp["ports"][0]["port"] == 8000 and sp["ports"][0].get("nodePort") == 30080,
          "gateway Service: LoadBalancer, port 8000, nodePort 30080")
    check(sp.get("externalTrafficPolicy") == "Local" and sp.get("loadBalancerSourceRanges") == ["10.0.0.0/8"],
          "gateway Service: traffic policy and source ranges")
    check(svc["metadata"].get("annotations", {}).get("service.beta.kubernetes.io/aws-load-balancer-type") == "nlb",
          "gateway Service annotations")

    # RBAC: namespaced only.
    # Cluster-wide only: reading RouteGrants (cluster-scoped), for both components.
    cluster_wide = [("", "ar-operator-tokenreview"), ("", "ar-routegrants")]
    check(m.names("ClusterRole") == cluster_wide and m.names("ClusterRoleBinding") == cluster_wide,
          f"watchNamespaces: nothing cluster-wide but RouteGrants and TokenReviews ({m.names('ClusterRole')} {m.names('ClusterRoleBinding')})")
    check(rules_set(m.one("ClusterRole", "ar-routegrants")) == GRANT_RULES, "RouteGrants ClusterRole: read only")
    for ns in ("team-a", "team-b"):
        check(rules_set(m.one("Role", "ar-operator", ns)) == OPERATOR_RULES, f"operator Role in {ns}: exact rules")
        check(rules_set(m.one("Role", "ar-gateway", ns)) == GATEWAY_RULES, f"gateway Role in {ns}: exact rules")
        for comp in ("operator", "gateway"):
            b = m.one("RoleBinding", f"ar-{comp}", ns)
            check(b.get("roleRef", {}).get("kind") == "Role" and b.get("subjects") ==
                  [{"kind": "ServiceAccount", "name": f"ar-{comp}", "namespace": NS}],
                  f"RoleBinding ar-{comp} in {ns} → SA in {NS}")
    check(rules_set(m.one("Role", "ar-gateway-discovery", NS)) == DISCOVERY_RULES,
          "gateway may read EndpointSlices of the release namespace (autoscaler discovery)")
    check(rules_set(m.one("Role", "ar-operator-leader", NS)) == leader_rules("my-lease"), "leader Role names my-lease")
    check(rules_set(m.one("Role", "ar-gateway-leader", NS)) == gateway_leader_rules("my-lease"),
          "gateway leader Role names my-lease")
    check(f"--autoscaler-lease={NS}/my-lease" in container(m.one("Deployment", "ar-gateway", NS))["args"],
          "gateway follows my-lease")
    check(m.one("Lease", "my-lease", NS) != {}, "the chart's Lease is named operator.leaseName")
    check(sorted({d["metadata"]["namespace"] for d in m.of("Role")}) == [NS, "team-a", "team-b"],
          "Roles only in watched namespaces and the release namespace")
    check_no_dangerous_rules(m)

    pdbs = m.names("PodDisruptionBudget")
    check(pdbs == [(NS, "ar-operator")], f"gateway PDB disabled ({pdbs})")
    check(m.one("PodDisruptionBudget", "ar-operator", NS)["spec"].get("minAvailable") == 2, "operator PDB minAvailable 2")

    fns = m.names("NetworkPolicy")
    check((("team-a", "ar-functions") in fns) and (("team-b", "ar-functions") in fns)
          and ((NS, "ar-functions") not in fns), f"functions policy in each watched namespace ({fns})")
    opnp = m.one("NetworkPolicy", "ar-operator", NS)
    admin_rule = [r for r in opnp["spec"]["ingress"] if r.get("ports") == [{"port": "admin", "protocol": "TCP"}]]
    check(admin_rule and admin_rule[0].get("from", [{}])[0].get("namespaceSelector", {}).get("matchLabels")
          == {"kubernetes.io/metadata.name": "monitoring"}, "admin port limited to metricsFrom")

    sm = m.one("ServiceMonitor", "ar", NS)
    check(sm.get("metadata", {}).get("labels", {}).get("release") == "prometheus", "ServiceMonitor labels")
    check(sm.get("spec", {}).get("endpoints", [{}])[0].get("port") == "metrics", "ServiceMonitor scrapes port metrics")
    cm = m.one("ConfigMap", "ar-dashboard", NS)
    dash = json.loads(cm.get("data", {}).get("apiroutes.json", "{}"))
    exprs = " ".join(t["expr"] for p in dash.get("panels", []) for t in p.get("targets", []))
    for metric in ("apiroutes_gateway_requests_total", "apiroutes_gateway_request_duration_seconds_bucket",
                   "apiroutes_gateway_activation_wait_seconds_bucket", "apiroutes_gateway_held_requests",
                   "apiroutes_operator_reconciliations_total", "apiroutes_operator_route_replicas"):
        check(metric in exprs, f"dashboard has a panel for {metric}")
    check(cm.get("metadata", {}).get("labels", {}).get("grafana_dashboard") == "1", "dashboard sidecar label")
    for d in m.docs:
        check(d["metadata"].get("labels", {}).get("team") == "platform", f"{d['kind']} {d['metadata']['name']}: commonLabels")


# ---------------------------------------------------------------- smaller variations
def test_variations():
    print("# variations")
    m = render("--set", "preview.existingSecret=my-preview", "--set", "preview.tokenKey=tok",
               "--set", "preview.signingKeysKey=keys")
    check(not m.of("Secret"), "existingSecret: no Secret rendered")
    check_preview_mount(m.one("Deployment", "apiroutes-gateway", NS), "my-preview", "tok", "keys")

    # The deprecated preview.secret is the token; the signing key is generated apart.
    m = render("--set", "preview.secret=0123456789abcdef0123456789abcdef-legacy")
    check(secret_value(m, "apiroutes-preview") == "0123456789abcdef0123456789abcdef-legacy",
          "deprecated preview.secret becomes the token")
    k = secret_value(m, "apiroutes-preview", "signing-keys").strip()
    check(len(k) == 64 and "legacy" not in k, "…and a separate signing key is generated")
    check("checksum/preview-secret" in m.one("Deployment", "apiroutes-gateway", NS)["spec"]["template"]["metadata"].get("annotations", {}),
          "a given deprecated preview.secret rolls the gateways when it changes")

    m = render("--set", "preview.reloadInterval=0")
    check("--preview-reload-interval=0" in container(m.one("Deployment", "apiroutes-gateway", NS))["args"],
          "preview.reloadInterval=0 → --preview-reload-interval=0 (no reload)")

    m = render("--set", "rbac.create=false")
    check(not any(m.of(k) for k in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")), "rbac.create=false: no RBAC")

    m = render("--set", "networkPolicy.enabled=false")
    check(not m.of("NetworkPolicy"), "networkPolicy.enabled=false: no NetworkPolicy")

    m = render("--set", "metrics.enabled=false")
    check(not [s for s in m.of("Service") if s["metadata"]["name"].endswith("-metrics")], "metrics.enabled=false: no metrics Services")

    m = render("--set-json", f'watchNamespaces=["{NS}","team-a"]')
    check(not m.of("Role", "apiroutes-gateway-discovery"), "release namespace watched: no separate discovery Role")
    check(rules_set(m.one("Role", "apiroutes-gateway", NS)) == GATEWAY_RULES, "gateway Role in the release namespace")

    m = render("--set-json", 'networkPolicy.functionNamespaces=["shop","blog"]')
    check([n for n in m.names("NetworkPolicy") if n[1] == "apiroutes-functions"]
          == [("blog", "apiroutes-functions"), ("shop", "apiroutes-functions")],
          f"functionNamespaces chooses the policy namespaces ({m.names('NetworkPolicy')})")

    m = render("--set", "gateway.service.type=NodePort", "--set", "gateway.service.nodePort=30080", "--set", "gateway.replicas=0")
    check(m.one("Service", "apiroutes-gateway", NS)["spec"]["ports"][0].get("nodePort") == 30080, "NodePort with a fixed nodePort")
    check(m.one("Deployment", "apiroutes-gateway", NS)["spec"]["replicas"] == 0, "replicas 0 allowed")

    m = render("-f", os.path.join(CHART, "ci", "local-values.yaml"), "--set", "gateway.service.nodePort=41234")
    gw = m.one("Deployment", "apiroutes-gateway", NS)
    gc = container(gw)
    check("hostPort" not in ports_of(gc)["http"] and "--listen=0.0.0.0:8080" in gc["args"],
          "ci/local-values.yaml: no hostPort, listeners on 0.0.0.0 (pods have their own network)")
    svc = m.one("Service", "apiroutes-gateway", NS)["spec"]
    check(svc["type"] == "NodePort" and svc["ports"][0].get("nodePort") == 41234,
          "ci/local-values.yaml: the gateway behind a NodePort Service at the given port")
    check(gw["spec"]["replicas"] == 2 and "strategy" not in gw["spec"],
          "ci/local-values.yaml: two gateways, rolled one at a time (default strategy)")
    check(gc.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds") == 2,
          "ci/local-values.yaml: a 2 s preStop sleep")

    p = helm_template("--kube-version", "1.29.0")
    check(p.returncode != 0 and "kubeVersion" in p.stderr, f"Kubernetes 1.29 refused (kubeVersion >=1.30): {p.stderr.strip()[:200]}")
    check(helm_template("--kube-version", "1.30.0").returncode == 0, "Kubernetes 1.30 accepted")

    m = render(release="my-platform")
    check(m.one("Deployment", "my-platform-apiroutes-operator", NS) != {}, "fullname <release>-<chart>")
    check("--autoscaler-service=apiroutes-system/my-platform-apiroutes-autoscaler"
          in container(m.one("Deployment", "my-platform-apiroutes-gateway", NS))["args"],
          "autoscaler Service name follows the fullname")


# ---------------------------------------------------------------- rejections
def test_rejections():
    print("# rejections (schema and template checks)")
    cases = [
        (["--set", "gateway.replicas=two"], "/gateway/replicas"),
        (["--set", "foo=1"], "additional properties 'foo' not allowed"),
        (["--set", "gateway.replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "logging.format=xml"], "/logging/format"),
        (["--set", "logging.level=verbose"], "/logging/level"),
        (["--set", "gateway.hostPort=70000"], "/gateway/hostPort"),
        (["--set", "gateway.traceSampleRatio=1.5"], "/gateway/traceSampleRatio"),
        (["--set", "gateway.accessLog=maybe"], "/gateway/accessLog"),
        (["--set", "gateway.service.type=ExternalName"], "/gateway/service/type"),
        (["--set-json", 'watchNamespaces=["Bad_NS"]'], "/watchNamespaces/0"),
        (["--set", "operator.image.digest=latest"], "/operator/image/digest"),
        (["--set", "operator.replicas=-1"], "/operator/replicas"),
        (["--set", "preview.token=short"], "at least 32 characters"),
        (["--set", "preview.secret=short"], "at least 32 characters"),
        (["--set", "preview.token=0123456789abcdef0123456789abcdef", "--set", "preview.existingSecret=x"],
         "mutually exclusive"),
        (["--set", "preview.signingKeys=0123456789abcdef0123456789abcdef", "--set", "preview.existingSecret=x"],
         "mutually exclusive"),
        (["--set", "preview.token=0123456789abcdef0123456789abcdef", "--set", "preview.secret=0123456789abcdef0123456789abcdef"],
         "set only preview.token"),
        (["--set-string", "preview.signingKeys=0123456789abcdef0123456789abcdef-ok\nshort"],
         "each line of preview.signingKeys must be at least 32 characters"),
        (["--set", "preview.token=0123456789abcdef0123456789abcdef",
          "--set", "preview.signingKeys=0123456789abcdef0123456789abcdef"], "must not contain preview.token"),
        (["--set-string", "preview.signingKeys=# only a comment"], "holds no key"),
        (["--set-string", "preview.signingKeys=" + "\n".join(f"0123456789abcdef0123456789abcdef-{i}" for i in range(9))],
         "more than 8 keys"),
        (["--set", "preview.secretKey=key"], "preview.secretKey is gone"),
        (["--set", "preview.reloadInterval=-1"], "/preview/reloadInterval"),
        (["--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"], "needs metrics.enabled"),
        (["--set", "operator.serviceAccount.create=false"], "operator.serviceAccount.name is required"),
    ]
    for args, want in cases:
        p = helm_template(*args)
        check(p.returncode != 0 and want in p.stderr,
              f"helm template {' '.join(args)} fails naming {want!r} (rc {p.returncode}: {p.stderr.strip()[:300]})")


# ---------------------------------------------------------------- flags vs the binaries
def expand_downward(arg):
    """The kubelet's $(VAR) expansion of the env vars the chart sets."""
    for var, val in (("POD_IP", "10.244.0.7"), ("POD_NAME", "pod-0"), ("POD_NAMESPACE", NS)):
        arg = arg.replace(f"$({var})", val)
    return arg


def test_binaries():
    """Each rendered container's args must parse with the real binary (clap rejects an
    unknown flag or a bad value before it reaches --help)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.environ.get("APIROUTES_CACHE") or os.path.expanduser("~/.cache/apiroutes"), "target")
    print("# rendered flags against the built binaries")
    for comp in ("operator", "gateway"):
        binary = os.environ.get(f"APIROUTES_{comp.upper()}_BIN") or os.path.join(target, "debug", f"apiroutes-{comp}")
        if not os.access(binary, os.X_OK):
            print(f"SKIP flags of apiroutes-{comp}: no binary at {binary} (cargo build -p apiroutes-{comp})")
            continue
        for label, args in (("defaults", []), ("non-default", ["-f", os.path.join(HERE, "values-nondefault.yaml")])):
            m = render(*args)
            dep = [d for d in m.of("Deployment") if d["metadata"]["name"].endswith(f"-{comp}")]
            if not dep:
                check(False, f"{comp} Deployment rendered ({label})")
                continue
            argv = [expand_downward(a) for a in container(dep[0])["args"] if not a.startswith("--extra=")]
            p = subprocess.run([binary, *argv, "--help"], capture_output=True, text=True, timeout=30)
            check(p.returncode == 0, f"apiroutes-{comp} accepts the chart's flags ({label}): {p.stderr.strip()[:300]}")


def main():
    test_defaults()
    test_nondefault()
    test_variations()
    test_rejections()
    test_binaries()
    print(f"render_test: {checks - len(failures)}/{checks} checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
