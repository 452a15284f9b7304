//! The real API server refuses bad ApiRoutes with a message naming the field (the CRD's
//! schema and CEL rules, generated from crds/src/types.rs), and accepts good ones.

use apiroutes_e2e::Cluster;

fn manifest(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n"
    )
}

#[tokio::test]
async fn api_server_refuses_bad_apiroutes_naming_the_field() {
    let Some(cluster) = Cluster::from_env("crd_validation").await else {
        return;
    };
    cluster.ensure_crd();
    let ns = cluster.namespace("crd");
    let bad: &[(&str, &str, &str)] = &[
        (
            "  path: /api/[...a]/b\n  image: e",
            "spec.path",
            "Next.js route pattern",
        ),
        (
            "  path: /api/x/\n  image: e",
            "spec.path",
            "no trailing '/'",
        ),
        (
            "  path: api/x\n  image: e",
            "spec.path",
            "Next.js route pattern",
        ),
        ("  path: /api/../x\n  image: e", "spec.path", "'.' or '..'"),
        ("  path: /api/x\n  image: ''", "spec.image", "image"),
        (
            "  path: /api/x\n  image: e\n  methods: [get]",
            "spec.methods",
            "upper-case",
        ),
        (
            "  path: /api/x\n  image: e\n  methods: [GET, GET]",
            "spec.methods",
            "repeat",
        ),
        (
            "  path: /api/x\n  image: e\n  port: 70000",
            "spec.port",
            "65535",
        ),
        (
            "  path: /api/x\n  image: e\n  scaling: {minReplicas: 5, maxReplicas: 2}",
            "spec.scaling.minReplicas",
            "must not exceed maxReplicas",
        ),
        (
            "  path: /api/x\n  image: e\n  scaling: {targetConcurrency: 0}",
            "spec.scaling.targetConcurrency",
            "greater than or equal to 1",
        ),
        (
            "  path: /api/x\n  image: e\n  timeoutSeconds: -1",
            "spec.timeoutSeconds",
            "greater than or equal to 1",
        ),
        (
            "  path: /api/x\n  image: e\n  bodyLimit: 1mb",
            "spec.bodyLimit",
            "positive byte size",
        ),
        (
            // A Kubernetes quantity, but not a byte size the gateway reads.
            "  path: /api/x\n  image: e\n  bodyLimit: '1e3'",
            "spec.bodyLimit",
            "positive byte size",
        ),
        (
            "  path: /api/x\n  image: e\n  host: http://x.com",
            "spec.host",
            "DNS name",
        ),
    ];
    for (i, (spec, field, message)) in bad.iter().enumerate() {
        let out = cluster.kubectl(
            &["apply", "-f", "-"],
            Some(&manifest(&format!("bad-{i}"), &ns.name, spec)),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted a bad ApiRoute:\n{spec}");
        assert!(
            stderr.contains(&format!("{field}: Invalid value")) && stderr.contains(message),
            "for\n{spec}\nexpected {field:?} and {message:?} in: {stderr}"
        );
    }

    // `env` and `resources` are core/v1 types: the schema enforces their required fields
    // and types, not the Pod-level checks (env var name syntax, quantity format), which
    // only fail when the operator creates the Deployment.
    let bad_shape: &[(&str, &str)] = &[
        (
            "  path: /api/x\n  image: e\n  env: [{value: v}]",
            "spec.env[0].name: Required value",
        ),
        (
            "  path: /api/x\n  image: e\n  env: [{name: A, valueFrom: {configMapKeyRef: {name: c}}}]",
            "spec.env[0].valueFrom.configMapKeyRef.key: Required value",
        ),
        (
            "  path: /api/x\n  image: e\n  resources: {limits: [1Gi]}",
            "spec.resources.limits: Invalid value",
        ),
    ];
    for (i, (spec, want)) in bad_shape.iter().enumerate() {
        let out = cluster.kubectl(
            &["apply", "-f", "-"],
            Some(&manifest(&format!("bad-shape-{i}"), &ns.name, spec)),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted a bad ApiRoute:\n{spec}");
        assert!(
            stderr.contains(want),
            "for\n{spec}\nexpected {want:?} in: {stderr}"
        );
    }

    // Names the route's objects cannot be derived from (issue 13): too long for
    // `<name>-preview`, not a DNS label, or colliding with another route's preview objects.
    let long = "n".repeat(56);
    for (name, message) in [
        (long.as_str(), "at most 55 characters"),
        ("1st.route", "DNS label starting with a letter"),
        ("shop-preview", "must not end in '-preview'"),
    ] {
        let out = cluster.kubectl(
            &["apply", "-f", "-"],
            Some(&manifest(name, &ns.name, "  path: /api/x\n  image: e")),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted the name {name}");
        assert!(
            stderr.contains("metadata.name must") && stderr.contains(message),
            "for {name}: expected {message:?} in: {stderr}"
        );
    }

    let good = [
        "  path: /api/users/[id]\n  image: e",
        "  path: /\n  image: e",
        "  path: /api/a%20b/[[...rest]]\n  image: e\n  methods: [GET, POST]\n  host: shop.example.com\n  bodyLimit: 2Mi",
    ];
    for (i, spec) in good.iter().enumerate() {
        cluster.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&manifest(&format!("good-{i}"), &ns.name, spec)),
        );
    }
    // Defaults are filled in by the API server from the schema.
    let json = cluster.kubectl_ok(&["get", "ar", "good-0", "-n", &ns.name, "-o", "json"], None);
    let obj: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(obj["spec"]["port"], 8080, "{json}");
    assert_eq!(obj["spec"]["bodyLimit"], "1Mi", "{json}");
    assert_eq!(obj["spec"]["scaling"]["maxReplicas"], 10, "{json}");
    // `kubectl get ar` prints the columns the design names.
    let table = cluster.kubectl_ok(&["get", "ar", "-n", &ns.name], None);
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "PATH", "METHODS", "IMAGE", "ACCEPTED", "READY", "REPLICAS", "AGE",
    ] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    let wide = cluster.kubectl_ok(&["get", "ar", "-n", &ns.name, "-o", "wide"], None);
    let header = wide.lines().next().unwrap_or_default();
    assert!(
        header.contains("REASON"),
        "-o wide shows the reason: {header}"
    );
}

#[tokio::test]
async fn api_server_refuses_bad_routegrants_naming_the_field() {
    let Some(cluster) = Cluster::from_env("crd_validation_grants").await else {
        return;
    };
    cluster.ensure_crd();
    let grant = |name: &str, spec: &str| {
        format!(
            "apiVersion: apiroutes.dev/v1alpha1\nkind: RouteGrant\nmetadata: {{name: {name}}}\nspec:\n{spec}\n"
        )
    };
    // Dry runs: a RouteGrant, even a valid one, turns isolation on for the whole cluster.
    let bad: &[(&str, &str)] = &[
        ("  namespaces: [Shop]\n  hosts: ['*']", "spec.namespaces[0]"),
        ("  namespaces: []\n  hosts: ['*']", "spec.namespaces"),
        (
            "  namespaces: [shop]\n  hosts: ['http://shop.example.com']",
            "spec.hosts[0]",
        ),
        (
            "  namespaces: [shop]\n  hosts: ['a.*.example.com']",
            "spec.hosts[0]",
        ),
        (
            "  namespaces: [shop]\n  hosts: ['*']\n  pathPrefixes: [/api/]",
            "spec.pathPrefixes[0]",
        ),
        (
            "  namespaces: [shop]\n  hosts: ['*']\n  pathPrefixes: ['/api/[id]']",
            "spec.pathPrefixes[0]",
        ),
        (
            "  namespaces: [shop]\n  hosts: ['*']\n  pathPrefixes: [api]",
            "spec.pathPrefixes[0]",
        ),
    ];
    for (spec, field) in bad {
        let out = cluster.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&grant("bad", spec)),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted a bad RouteGrant:\n{spec}");
        assert!(
            stderr.contains(field),
            "for {spec}: expected {field} in: {stderr}"
        );
    }
    let out = cluster.kubectl_ok(
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&grant(
            "good",
            "  namespaces: [shop, shop-2]\n  hosts: [shop.example.com, '*.shop.example.com', '*']",
        )),
    );
    let obj: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(
        obj["spec"]["pathPrefixes"],
        serde_json::json!(["/"]),
        "{out}"
    );
}
