//! `apiroutes check` against the real API server of the local control plane: for each
//! manifest, offline `check` and a server-side dry-run apply (strict field validation, as
//! kubectl's) must both accept it or both refuse it, naming the same field. The few
//! places where `check` is deliberately stricter are listed and asserted as such.
//!
//! Runs only inside `tests/run.sh` (or with `tests/cluster/cluster.sh env` evaluated):
//! it needs `APIROUTES_CLUSTER_DIR` and `KUBECONFIG`, so it never touches another cluster.
//! Nothing is stored: every apply is a dry run. The CRD is created if it is missing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use apiroutes_cli::check::{Input, Severity, check};
use apiroutes_crds::ApiRoute;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Both accept.
    Accept,
    /// Both refuse, naming this field.
    Refuse(&'static str),
    /// The API server accepts it; `check` refuses it on purpose, naming this field.
    CheckStricter(&'static str),
}

const CASES: &[(&str, &str, Expect)] = &[
    ("minimal", "{path: /api/x, image: e}", Expect::Accept),
    (
        "full",
        "{path: '/api/users/[id]/[...rest]', image: e, methods: [GET, PUT], host: Shop.example.com, port: 9000, readinessPath: /healthz, timeoutSeconds: 3600, bodyLimit: 512Ki, scaling: {minReplicas: 10, maxReplicas: 10, targetConcurrency: 1}, env: [{name: A, value: b}], preview: {image: e2}}",
        Expect::Accept,
    ),
    ("root", "{path: /, image: e}", Expect::Accept),
    (
        "optional",
        "{path: '/api/[[...p]]', image: e}",
        Expect::Accept,
    ),
    ("pct", "{path: '/api/a%20b/~x', image: e}", Expect::Accept),
    (
        "catch-all-not-last",
        "{path: '/api/[...a]/b', image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "dots",
        "{path: /api/../x, image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "no-slash",
        "{path: api/x, image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "trailing-slash",
        "{path: /api/x/, image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "empty-segment",
        "{path: /api//x, image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "bad-char",
        "{path: '/api/a b', image: e}",
        Expect::Refuse("spec.path"),
    ),
    (
        "bad-escape",
        "{path: '/api/%zz', image: e}",
        Expect::Refuse("spec.path"),
    ),
    ("no-image", "{path: /api/x}", Expect::Refuse("spec.image")),
    (
        "empty-image",
        "{path: /api/x, image: ''}",
        Expect::Refuse("spec.image"),
    ),
    (
        "spaced-image",
        "{path: /api/x, image: ' e'}",
        Expect::Refuse("spec.image"),
    ),
    (
        "lower-method",
        "{path: /api/x, image: e, methods: [get]}",
        Expect::Refuse("spec.methods"),
    ),
    (
        "repeated-method",
        "{path: /api/x, image: e, methods: [GET, GET]}",
        Expect::Refuse("spec.methods"),
    ),
    (
        "no-methods",
        "{path: /api/x, image: e, methods: []}",
        Expect::Refuse("spec.methods"),
    ),
    (
        "port-high",
        "{path: /api/x, image: e, port: 70000}",
        Expect::Refuse("spec.port"),
    ),
    (
        "port-zero",
        "{path: /api/x, image: e, port: 0}",
        Expect::Refuse("spec.port"),
    ),
    (
        "port-string",
        "{path: /api/x, image: e, port: '80'}",
        Expect::Refuse("spec.port"),
    ),
    (
        "min-over-max",
        "{path: /api/x, image: e, scaling: {minReplicas: 5, maxReplicas: 2}}",
        Expect::Refuse("spec.scaling.minReplicas"),
    ),
    (
        "min-over-default-max",
        "{path: /api/x, image: e, scaling: {minReplicas: 11}}",
        Expect::Refuse("spec.scaling.minReplicas"),
    ),
    (
        "zero-target",
        "{path: /api/x, image: e, scaling: {targetConcurrency: 0}}",
        Expect::Refuse("spec.scaling.targetConcurrency"),
    ),
    (
        "zero-max",
        "{path: /api/x, image: e, scaling: {minReplicas: 0, maxReplicas: 0}}",
        Expect::Refuse("spec.scaling.maxReplicas"),
    ),
    (
        "timeout-zero",
        "{path: /api/x, image: e, timeoutSeconds: 0}",
        Expect::Refuse("spec.timeoutSeconds"),
    ),
    (
        "timeout-high",
        "{path: /api/x, image: e, timeoutSeconds: 4000}",
        Expect::Refuse("spec.timeoutSeconds"),
    ),
    (
        "body-zero",
        "{path: /api/x, image: e, bodyLimit: '0'}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "body-junk",
        "{path: /api/x, image: e, bodyLimit: 1mb}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "readiness",
        "{path: /api/x, image: e, readinessPath: healthz}",
        Expect::Refuse("spec.readinessPath"),
    ),
    (
        "host-port",
        "{path: /api/x, image: e, host: 'shop.example.com:8080'}",
        Expect::Refuse("spec.host"),
    ),
    (
        "host-scheme",
        "{path: /api/x, image: e, host: 'https://shop'}",
        Expect::Refuse("spec.host"),
    ),
    (
        "unknown-field",
        "{path: /api/x, image: e, bodylimit: 1Mi}",
        Expect::Refuse("spec"),
    ),
    (
        "preview-no-image",
        "{path: /api/x, image: e, preview: {}}",
        Expect::Refuse("spec.preview.image"),
    ),
    (
        "function",
        "{path: /api/x, image: e, function: shop}",
        Expect::Accept,
    ),
    (
        "function-name",
        "{path: /api/x, image: e, function: Shop}",
        Expect::Refuse("spec.function"),
    ),
    (
        "function-with-preview",
        "{path: /api/x, image: e, function: shop, preview: {image: e2}}",
        Expect::Refuse("spec.preview"),
    ),
    (
        "env-no-name",
        "{path: /api/x, image: e, env: [{value: x}]}",
        Expect::Refuse("spec.env[0].name"),
    ),
    // Deliberately stricter: the operator would mark the route Invalid (the pattern does not
    // parse), and the gateway reads byte quantities only.
    (
        "repeated-param",
        "{path: '/api/[a]/[a]', image: e}",
        Expect::CheckStricter("spec.path"),
    ),
    (
        "body-exponent",
        "{path: /api/x, image: e, bodyLimit: '1e3'}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "body-milli",
        "{path: /api/x, image: e, bodyLimit: 1500m}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "body-peta",
        "{path: /api/x, image: e, bodyLimit: 1Pi}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "body-plus",
        "{path: /api/x, image: e, bodyLimit: '+1Mi'}",
        Expect::Refuse("spec.bodyLimit"),
    ),
    (
        "body-fraction",
        "{path: /api/x, image: e, bodyLimit: 1.5Ki}",
        Expect::Accept,
    ),
];

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

async fn ensure_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ApiRoute::crd();
    let name = crd.metadata.name.clone().unwrap();
    if crds.get_opt(&name).await.unwrap().is_none() {
        let pp = PostParams {
            field_manager: Some("apiroutes-cli-tests".into()),
            ..PostParams::default()
        };
        if let Err(e) = crds.create(&pp, &crd).await {
            assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "{e}");
        }
    }
    for _ in 0..100 {
        let established = crds.get(&name).await.unwrap().status.is_some_and(|s| {
            s.conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ApiRoute CRD did not become Established in 10 s");
}

#[tokio::test]
async fn check_and_the_api_server_agree() {
    if !cluster_env() {
        return;
    }
    let client = Client::try_default().await.unwrap();
    ensure_crd(&client).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::erase::<ApiRoute>(&()));
    let params = PatchParams::apply("apiroutes-cli-tests")
        .dry_run()
        .validation_strict()
        .force();
    let mut disagreements = Vec::new();
    for (i, (label, spec, expect)) in CASES.iter().enumerate() {
        let name = format!("cli-agree-{i}");
        let text = manifest(&name, spec);
        let value: Value = serde_yaml::from_str(&text).unwrap();
        let server = match api.patch(&name, &params, &Patch::Apply(&value)).await {
            Ok(_) => None,
            // Server-side apply answers a type mismatch with 500 ("failed to create typed
            // patch object"), schema and CEL failures with 422, strict validation with 400.
            Err(kube::Error::Api(status)) if [400, 422, 500].contains(&status.code) => {
                Some(status.message)
            }
            Err(e) => panic!("{label}: {e}"),
        };
        let report = check(
            &[Input {
                name: label.to_string(),
                text,
            }],
            "default",
        );
        let offline: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.message.clone())
            .collect();
        let names_field = |field: &str, messages: &[String]| {
            messages
                .iter()
                .any(|m| m.starts_with(&format!("{field}: ")))
        };
        let ok = match expect {
            Expect::Accept => server.is_none() && offline.is_empty(),
            Expect::Refuse(field) => {
                let server_names_it = server.as_deref().is_some_and(|m| {
                    m.contains(&format!("{field}:"))
                        || m.contains(&format!(".{field}"))
                        || m.contains(&format!("{field}."))
                });
                server_names_it && names_field(field, &offline)
            }
            Expect::CheckStricter(field) => server.is_none() && names_field(field, &offline),
        };
        if !ok {
            disagreements.push(format!(
                "{label} ({expect:?}):\n  server: {server:?}\n  check:  {offline:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "check and the API server disagree:\n{}",
        disagreements.join("\n")
    );
}

fn cluster_env() -> bool {
    const TEST: &str = "check agrees with the API server";
    apiroutes_testkit::from_env("APIROUTES_CLUSTER_DIR", TEST).is_some()
        && apiroutes_testkit::from_env("KUBECONFIG", TEST).is_some()
}

/// What `import` writes for the example app, the API server accepts (dry run).
#[tokio::test]
async fn the_api_server_accepts_what_import_writes() {
    if !cluster_env() {
        return;
    }
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nextjs");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apiroutes"))
        .args([
            "import",
            example.to_str().unwrap(),
            "--namespace",
            "default",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = Client::try_default().await.unwrap();
    ensure_crd(&client).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::erase::<ApiRoute>(&()));
    let params = PatchParams::apply("apiroutes-cli-tests")
        .dry_run()
        .validation_strict()
        .force();
    let yaml = String::from_utf8(out.stdout).unwrap();
    let mut n = 0;
    for doc in serde_yaml::Deserializer::from_str(&yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).unwrap();
        let name = value["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(&name, &params, &Patch::Apply(&value))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        n += 1;
    }
    assert!(n >= 5, "{yaml}");
}

/// `routes` talks to a real API server (TLS, client certificates from the kubeconfig).
#[tokio::test]
async fn routes_reads_the_real_api_server() {
    if !cluster_env() {
        return;
    }
    // The tests of this file run in parallel on a fresh cluster: make sure the CRD exists.
    ensure_crd(&Client::try_default().await.unwrap()).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apiroutes"))
        .args(["routes", "-A"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("PATTERN ") || stderr.contains("No ApiRoutes found."),
        "{stdout}{stderr}"
    );
}
