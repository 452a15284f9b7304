#![allow(clippy::unwrap_used)]

use apiroutes_crds::{labels::Variant, testing::route};
use k8s_openapi::api::core::v1::EnvVar;
use serde_json::{Value, json};

use super::*;

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

/// Removes the applied-hash annotation from `obj` (and the annotations if it was the only
/// one) after checking that it is the hash of the rest.
fn unstamp(mut obj: Value) -> Value {
    let annotations = obj["metadata"]["annotations"].as_object_mut().unwrap();
    let hash = annotations.remove(APPLIED_HASH).unwrap();
    if annotations.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    }
    assert_eq!(hash, json!(applied_hash(&obj)));
    obj
}

#[test]
fn main_deployment_as_data() {
    let mut r = route("hello", "/api/hello").created(5);
    r.spec.env = vec![env("GREETING", "hi"), env("PORT", "1")];
    r.spec.readiness_path = Some("/healthz".into());
    r.spec.read_only_root_filesystem = true;
    let got = unstamp(to_json(&desired_deployment(
        &r,
        Variant::Main,
        &Config::default(),
    )));
    let labels = json!({
        "app.kubernetes.io/managed-by": "apiroutes-operator",
        "apiroutes.dev/route": "hello",
        "apiroutes.dev/variant": "main",
    });
    let want = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "hello", "namespace": "default", "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute", "name": "hello",
                "uid": "uid-hello", "controller": true
            }]
        },
        "spec": {
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "containers": [{
                        "name": "function",
                        "image": "echo:test",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": "PORT", "value": "8080"},
                            {"name": "GREETING", "value": "hi"}
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": "http"},
                            "periodSeconds": 1, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
                    }]
                }
            }
        }
    });
    assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
}

#[test]
fn the_root_filesystem_is_writable_by_default_and_has_no_volume() {
    // A volume makes the kubelet's volume manager poll for its mount (≈300 ms of every cold
    // start); the image's own /tmp serves unless the route asks for a read-only root.
    let r = route("a", "/api/a");
    let d = to_json(&desired_deployment(&r, Variant::Main, &Config::default()));
    let pod = &d["spec"]["template"]["spec"];
    assert!(pod.get("volumes").is_none(), "{pod}");
    let c = &pod["containers"][0];
    assert!(c.get("volumeMounts").is_none(), "{c}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false, "{c}");
    assert_eq!(c["securityContext"]["runAsNonRoot"], true, "{c}");
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        json!(["ALL"]),
        "{c}"
    );
}

#[test]
fn deployment_never_carries_replicas() {
    let r = route("a", "/api/a").scaling(2, 5).with_preview();
    for v in [Variant::Main, Variant::Preview] {
        let d = to_json(&desired_deployment(&r, v, &Config::default()));
        assert!(d["spec"].get("replicas").is_none(), "{v:?}");
    }
}

#[test]
fn preview_deployment_uses_preview_image_and_env() {
    let mut r = route("a", "/api/a").with_preview();
    r.spec.env = vec![env("A", "main"), env("B", "main")];
    r.spec.preview.as_mut().unwrap().env = vec![env("B", "preview"), env("C", "preview")];
    let d = desired_deployment(&r, Variant::Preview, &Config::default());
    assert_eq!(d.metadata.name.as_deref(), Some("a-preview"));
    let c = &d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(c.image.as_deref(), Some("echo:preview"));
    let env: Vec<(String, String)> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap()))
        .collect();
    let want: Vec<(String, String)> = [
        ("PORT", "8080"),
        ("A", "main"),
        ("B", "preview"),
        ("C", "preview"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(env, want);
    // The main variant ignores preview env.
    assert_eq!(environment(&r, Variant::Main).len(), 3);
    let sel = &d.spec.unwrap().selector.match_labels.unwrap();
    assert_eq!(sel["apiroutes.dev/variant"], "preview");
}

#[test]
fn tcp_probe_without_readiness_path_and_resources_pass_through() {
    let mut r = route("a", "/api/a");
    r.spec.port = 3000;
    r.spec.timeout_seconds = 5;
    r.spec.resources =
        Some(serde_json::from_value(json!({"limits": {"memory": "128Mi"}})).unwrap());
    let d = to_json(&desired_deployment(&r, Variant::Main, &Config::default()));
    let pod = &d["spec"]["template"]["spec"];
    // preStop sleep + the route's deadline + the drain margin.
    assert_eq!(pod["terminationGracePeriodSeconds"], 5 + 5 + 10);
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["tcpSocket"], json!({"port": "http"}));
    assert!(c["readinessProbe"].get("httpGet").is_none());
    assert_eq!(c["resources"], json!({"limits": {"memory": "128Mi"}}));
    assert_eq!(c["env"][0], json!({"name": "PORT", "value": "3000"}));
}

#[test]
fn headless_service_as_data() {
    let mut r = route("hello", "/api/hello").with_preview();
    r.spec.port = 3000;
    let got = unstamp(to_json(&desired_service(
        &r,
        Variant::Preview,
        &Config::default(),
    )));
    let labels = json!({
        "app.kubernetes.io/managed-by": "apiroutes-operator",
        "apiroutes.dev/route": "hello",
        "apiroutes.dev/variant": "preview",
    });
    let want = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "hello-preview", "namespace": "default", "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute", "name": "hello",
                "uid": "uid-hello", "controller": true
            }]
        },
        "spec": {
            "clusterIP": "None",
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]
        }
    });
    assert_eq!(got, want);
}

#[test]
fn wanted_variants_follow_spec_preview() {
    assert_eq!(wanted_variants(&route("a", "/a")), vec![Variant::Main]);
    assert_eq!(
        wanted_variants(&route("a", "/a").with_preview()),
        vec![Variant::Main, Variant::Preview]
    );
}

/// The API server drops a plain `bool` field that is false (Go's `omitempty`), so a desired
/// object sending one could never be covered by what the cache holds: applied again on
/// every reconcile. Optional bools (`*bool` in Go, e.g. `readOnlyRootFilesystem`) are kept.
#[test]
fn desired_objects_send_no_false_plain_bools() {
    let r = route("a", "/api/a").created(1).with_preview();
    for v in [Variant::Main, Variant::Preview] {
        let svc = to_json(&desired_service(&r, v, &Config::default()));
        assert!(
            !svc.to_string().contains(":false"),
            "a Service field the API server would omit: {svc}"
        );
    }
}

#[test]
fn covers_ignores_server_defaults_and_sees_drift() {
    let r = route("a", "/api/a").created(1);
    let desired = desired_deployment(&r, Variant::Main, &Config::default());
    let mut actual = to_json(&desired);
    // Defaults and status the API server adds.
    actual["metadata"]["resourceVersion"] = json!("42");
    actual["spec"]["replicas"] = json!(0);
    actual["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    actual["status"] = json!({"replicas": 0});
    let actual: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(actual).unwrap();
    assert!(covers(&actual, &desired));
    // Drift in one of our fields.
    let mut drifted = actual.clone();
    drifted
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("tampered".into());
    assert!(!covers(&drifted, &desired));
    // A second container (lists must match in length).
    let mut extra = actual.clone();
    let c = extra
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .clone();
    extra
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers
        .push(c);
    assert!(!covers(&extra, &desired));
}

#[test]
fn applied_hash_is_sha256_of_canonical_json() {
    // Keys sorted at every level, nulls left out, no whitespace, UTF-8 as is: pinned, so
    // that another run or version of the operator computes the same hash.
    let v = json!({"b": {"z": "é", "y": 1, "n": null}, "a": [true, null, "x"]});
    // sha256 of {"a":[true,null,"x"],"b":{"y":1,"z":"é"}}
    assert_eq!(
        applied_hash(&v),
        "6f56544fb03406bc6b84892f241dd8be59331ef9cc699ecd49df4a14efb36465"
    );
    let r = route("a", "/api/a").with_preview();
    for v in [Variant::Main, Variant::Preview] {
        let c = Config::default();
        assert_eq!(
            to_json(&desired_deployment(&r, v, &c)),
            to_json(&desired_deployment(&r.clone(), v, &c))
        );
        assert_eq!(
            to_json(&desired_service(&r, v, &c)),
            to_json(&desired_service(&r.clone(), v, &c))
        );
    }
    // Stamping is idempotent: the annotation is not part of what is hashed.
    let d = desired_deployment(&r, Variant::Main, &Config::default());
    assert_eq!(to_json(&stamped(d.clone())), to_json(&d));
}

fn hash_of(obj: &impl Resource) -> String {
    obj.meta().annotations.as_ref().unwrap()[APPLIED_HASH].clone()
}

#[test]
fn applied_hash_changes_with_every_spec_change_removals_included() {
    let mut full = route("a", "/api/a").with_preview();
    full.spec.resources =
        Some(serde_json::from_value(json!({"limits": {"memory": "128Mi"}})).unwrap());
    full.spec.env = vec![env("A", "1")];
    full.spec.readiness_path = Some("/healthz".into());
    full.spec.preview.as_mut().unwrap().env = vec![env("B", "2")];
    let c = Config::default();
    let deployment = |r: &ApiRoute, v| hash_of(&desired_deployment(r, v, &c));
    let service = |r: &ApiRoute, v| hash_of(&desired_service(r, v, &c));

    type Removal = (&'static str, fn(&mut ApiRoute));
    let removals: [Removal; 5] = [
        ("resources", |r| r.spec.resources = None),
        ("resources.limits", |r| {
            r.spec.resources = Some(Default::default())
        }),
        ("env", |r| r.spec.env.clear()),
        ("readinessPath", |r| r.spec.readiness_path = None),
        ("preview.env", |r| {
            r.spec.preview.as_mut().unwrap().env.clear()
        }),
    ];
    for (what, remove) in removals {
        let mut r = full.clone();
        remove(&mut r);
        assert_ne!(
            deployment(&full, Variant::Preview),
            deployment(&r, Variant::Preview),
            "{what}"
        );
    }
    // Changes, not only removals; and the Service follows the port.
    let mut r = full.clone();
    r.spec.image = "echo:other".into();
    assert_ne!(
        deployment(&full, Variant::Main),
        deployment(&r, Variant::Main)
    );
    let mut r = full.clone();
    r.spec.port = 3000;
    assert_ne!(service(&full, Variant::Main), service(&r, Variant::Main));
    assert_ne!(
        deployment(&full, Variant::Main),
        deployment(&r, Variant::Main)
    );
    // The variants differ, and an unchanged route hashes the same.
    assert_ne!(
        deployment(&full, Variant::Main),
        deployment(&full, Variant::Preview)
    );
    assert_eq!(
        service(&full, Variant::Main),
        service(&full.clone(), Variant::Main)
    );
}

#[test]
fn a_removed_field_is_not_covered_so_the_apply_is_sent() {
    let mut before = route("a", "/api/a").created(1);
    before.spec.resources =
        Some(serde_json::from_value(json!({"limits": {"memory": "128Mi"}})).unwrap());
    before.spec.env = vec![env("A", "1")];
    before.spec.readiness_path = Some("/healthz".into());
    let c = Config::default();
    // What the API server holds after applying `before`: defaults added.
    let mut live = to_json(&desired_deployment(&before, Variant::Main, &c));
    live["metadata"]["resourceVersion"] = json!("42");
    live["spec"]["replicas"] = json!(0);
    live["status"] = json!({"replicas": 0});
    let live: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(live).unwrap();
    assert!(covers(
        &live,
        &desired_deployment(&before, Variant::Main, &c)
    ));
    let mut after = before.clone();
    after.spec.resources = None;
    let desired = desired_deployment(&after, Variant::Main, &c);
    assert!(!covers(&live, &desired));
    // Without the annotation, the live object is a superset of the desired one: the bug
    // this guards against (no apply, the limits stay).
    let mut bare = desired.clone();
    bare.metadata.annotations = None;
    let mut live_bare = live.clone();
    live_bare.metadata.annotations = None;
    assert!(covers(&live_bare, &bare));
    // Lists shorter, a probe handler swapped: not covered either way.
    after.spec.env.clear();
    after.spec.readiness_path = None;
    assert!(!covers(
        &live,
        &desired_deployment(&after, Variant::Main, &c)
    ));
}

#[test]
fn network_policy_admits_only_the_gateways_on_the_route_port() {
    let mut r = route("hello", "/api/hello").created(5);
    r.spec.port = 9000;
    let peer = GatewayPeer {
        namespace: "apiroutes-system".into(),
        labels: BTreeMap::from([("app.kubernetes.io/component".into(), "gateway".into())]),
    };
    let got = to_json(&desired_network_policy(&r, &peer));
    let route_pods = json!({
        "app.kubernetes.io/managed-by": "apiroutes-operator",
        "apiroutes.dev/route": "hello",
    });
    assert_eq!(got["metadata"]["name"], "hello");
    assert_eq!(got["metadata"]["ownerReferences"][0]["kind"], "ApiRoute");
    assert_eq!(got["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        got["spec"],
        json!({
            "podSelector": {"matchLabels": route_pods},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apiroutes-system"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
                }],
                "ports": [{"port": 9000, "protocol": "TCP"}],
            }],
        })
    );
}
