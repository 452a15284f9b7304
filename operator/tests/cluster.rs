//! Against a real API server (tests/cluster): run with `APIROUTES_KUBECONFIG` set to an
//! admin kubeconfig of a running local control plane; skipped otherwise, except under
//! `APIROUTES_REQUIRE_CLUSTER=1` (tests/run.sh), where a missing cluster fails.
//!
//! Each test gets its own namespace and its own operator process (watching only that
//! namespace, with its own Lease), so the tests run in parallel. Pods may or may not run
//! (the runner's real node pulls only the project's images): these tests check objects and
//! status.

#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apiroutes_crds::{ApiRoute, labels::FIELD_MANAGER};
use apiroutes_testkit::eventually;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        authentication::v1::TokenRequest,
        coordination::v1::Lease,
        core::v1::{Namespace, Pod, Service, ServiceAccount},
        events::v1::Event,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

fn kubeconfig() -> Option<String> {
    apiroutes_testkit::from_env("APIROUTES_KUBECONFIG", "operator cluster tests")
}

async fn client(path: &str) -> Client {
    apiroutes_kit::cluster::client(Some(std::path::Path::new(path)))
        .await
        .unwrap()
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], apiroutes_testkit::free_port()))
}

/// The operator binary, watching one namespace.
struct Operator {
    child: Child,
    admin: SocketAddr,
    autoscaler: SocketAddr,
}

impl Operator {
    fn start(kubeconfig: &str, ns: &str) -> Operator {
        Operator::start_as(kubeconfig, ns, None)
    }

    fn start_as(kubeconfig: &str, ns: &str, pod: Option<&str>) -> Operator {
        Operator::start_with(kubeconfig, ns, pod, &[])
    }

    fn start_with(kubeconfig: &str, ns: &str, pod: Option<&str>, extra: &[&str]) -> Operator {
        let (admin, autoscaler) = (free_port(), free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apiroutes-operator"));
        cmd.args(extra);
        if let Some(pod) = pod {
            cmd.args(["--pod-name", pod]).env("POD_NAMESPACE", ns);
        }
        let child = cmd
            .args(["--kubeconfig", kubeconfig, "--namespace", ns])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--autoscaler-listen", &autoscaler.to_string()])
            .args([
                "--lease-name",
                &format!("apiroutes-operator-{ns}"),
                "--lease-namespace",
                ns,
            ])
            .args(["--gateway-url", "http://gateway.test"])
            .args(["--gateway-namespace", "apiroutes-system"])
            .args(["--gateway-pod-label", "app.kubernetes.io/component=gateway"])
            .args(["--log-level", "info,apiroutes_operator=debug"])
            .env_remove("POD_NAME")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Operator {
            child,
            admin,
            autoscaler,
        }
    }

    /// SIGTERM and wait (the operator releases its Lease).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn is_leader(&self) -> bool {
        http_body(&format!("http://{}/metrics", self.admin))
            .await
            .is_some_and(|b| b.lines().any(|l| l == "apiroutes_operator_leader 1"))
    }

    async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin);
        eventually("operator ready", TIMEOUT, || {
            let url = url.clone();
            async move { http_get(&url).await.filter(|s| *s == 200) }
        })
        .await;
        // Ready also while standby: wait for leadership (the leader gauge).
        let url = format!("http://{}/metrics", self.admin);
        eventually("operator leads", TIMEOUT, || {
            let url = url.clone();
            async move {
                let body = http_body(&url).await?;
                (body.lines().any(|l| l == "apiroutes_operator_leader 1")
                    && readyz_ok(&url.replace("/metrics", "/readyz")).await)
                    .then_some(())
            }
        })
        .await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readyz_ok(url: &str) -> bool {
    http_get(url).await == Some(200)
}

/// Minimal HTTP/1.0 client on loopback (tests only).
async fn http_request(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_request_with(addr, method, path, "", body).await
}

/// The same, with extra header lines (each ending in CRLF).
async fn http_request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    (addr.to_owned(), format!("/{path}"))
}

async fn http_get(url: &str) -> Option<u16> {
    let (addr, path) = split_url(url);
    http_request(&addr, "GET", &path, "").await.map(|(s, _)| s)
}

async fn http_body(url: &str) -> Option<String> {
    let (addr, path) = split_url(url);
    http_request(&addr, "GET", &path, "").await.map(|(_, b)| b)
}

/// A namespace, the CRD and an operator for one test.
struct Env {
    client: Client,
    kubeconfig: String,
    ns: String,
    operator: Option<Operator>,
}

impl Env {
    async fn new(test: &str) -> Option<Env> {
        let kubeconfig = kubeconfig()?;
        let client = client(&kubeconfig).await;
        install_crd(&client).await;
        let ns = format!("op-{test}-{}", std::process::id());
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
        let operator = Operator::start(&kubeconfig, &ns);
        operator.wait_ready().await;
        Some(Env {
            client,
            kubeconfig,
            ns,
            operator: Some(operator),
        })
    }

    fn routes(&self) -> Api<ApiRoute> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn apply(&self, manifest: serde_json::Value) -> ApiRoute {
        let name = manifest["metadata"]["name"].as_str().unwrap().to_owned();
        let mut m = manifest;
        m["apiVersion"] = json!("apiroutes.dev/v1alpha1");
        m["kind"] = json!("ApiRoute");
        self.routes()
            .patch(
                &name,
                &PatchParams::apply("apiroutes-tests").force(),
                &Patch::Apply(&m),
            )
            .await
            .unwrap()
    }

    /// Waits until the route's status describes its current generation and `check` holds.
    async fn status_where(&self, name: &str, check: impl Fn(&ApiRoute) -> bool) -> ApiRoute {
        eventually(&format!("status of {name}"), TIMEOUT, || async {
            let r = self.routes().get_opt(name).await.ok()??;
            let s = r.status.as_ref()?;
            (s.observed_generation == r.metadata.generation && check(&r)).then_some(r)
        })
        .await
    }

    async fn deployment(&self, name: &str) -> Deployment {
        eventually(&format!("deployment {name}"), TIMEOUT, || async {
            self.deployments().get_opt(name).await.ok()?
        })
        .await
    }

    /// Scales `deployment` to zero as an autoscaler would (the scale subresource) and
    /// waits until `route` says so (`Ready` is `ScaledToZero`).
    async fn scale_to_zero(&self, deployment: &str, route: &str) {
        self.deployments()
            .patch_scale(
                deployment,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
            .unwrap();
        eventually("scaled to zero", TIMEOUT, || async {
            let r = self.routes().get(route).await.ok()?;
            (condition(&r, "Ready")?.1 == "ScaledToZero").then_some(())
        })
        .await;
    }

    /// Tells the operator's autoscaler that a gateway holds a request for `route`; returns
    /// the answer's status.
    async fn demand(&self, route: &str) -> u16 {
        let op = self.operator.as_ref().unwrap();
        let demand = json!({"gateway": "gw-test", "route": {"namespace": self.ns, "name": route, "variant": "main"}, "held": 1});
        let (status, _) = http_request(
            &op.autoscaler.to_string(),
            "POST",
            "/v1/demand",
            &demand.to_string(),
        )
        .await
        .unwrap();
        status
    }

    async fn gone(&self, name: &str) {
        eventually(
            &format!("{name} deleted"),
            Duration::from_secs(60),
            || async {
                let d = self.deployments().get_opt(name).await.ok()?;
                let s = self.services().get_opt(name).await.ok()?;
                (d.is_none() && s.is_none()).then_some(())
            },
        )
        .await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.operator.take());
        // Best effort: the namespace controller removes the rest.
        let _ = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &self.kubeconfig,
                "delete",
                "namespace",
                &self.ns,
                "--wait=false",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn install_crd(client: &Client) {
    // The operator waits for RouteGrants to list before it reconciles: both CRDs.
    let grants = include_str!("../../crds/apiroutes.dev_routegrants.yaml");
    install_one_crd(client, grants).await;
    install_one_crd(
        client,
        include_str!("../../crds/apiroutes.dev_apiroutes.yaml"),
    )
    .await;
}

async fn install_one_crd(client: &Client, yaml: &str) {
    let crd: CustomResourceDefinition = serde_yaml::from_str(yaml).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    api.patch(
        &name,
        &PatchParams::apply("apiroutes-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    eventually("CRD established", TIMEOUT, || async {
        let crd = api.get(&name).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

fn condition<'a>(r: &'a ApiRoute, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

/// The function container of a Deployment's pod template.
fn container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn image_of(d: &Deployment) -> String {
    container(d).image.clone().unwrap()
}

#[tokio::test]
async fn apply_creates_children_status_and_events_then_follows_spec_changes() {
    let Some(env) = Env::new("apply").await else {
        return;
    };
    env.apply(json!({
        "metadata": {"name": "hello"},
        "spec": {"path": "/api/hello/[id]", "image": "ghcr.io/apiroutes/echo:1", "port": 3000,
                 "readinessPath": "/healthz", "preview": {"image": "ghcr.io/apiroutes/echo:draft"}}
    }))
    .await;
    let r = env
        .status_where("hello", |r| condition(r, "Accepted").is_some())
        .await;
    assert_eq!(condition(&r, "Accepted").unwrap().0, "True");
    assert_eq!(
        r.status.as_ref().unwrap().url.as_deref(),
        Some("http://gateway.test/api/hello/[id]")
    );

    let d = env.deployment("hello").await;
    assert_eq!(image_of(&d), "ghcr.io/apiroutes/echo:1");
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ApiRoute", "hello", Some(true))
    );
    assert_eq!(d.labels()["apiroutes.dev/variant"], "main");
    // Replicas are defaulted by the API server, never owned by the reconciler's apply.
    let managed = serde_json::to_string(&d.metadata.managed_fields).unwrap();
    let apply_entry = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
        })
        .unwrap_or_else(|| panic!("no apply entry: {managed}"));
    let fields = serde_json::to_string(&apply_entry.fields_v1).unwrap();
    assert!(!fields.contains("f:replicas"), "{fields}");

    let preview = env.deployment("hello-preview").await;
    assert_eq!(image_of(&preview), "ghcr.io/apiroutes/echo:draft");
    let svc = env.services().get("hello").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.ports.unwrap()[0].port, 3000);
    env.services().get("hello-preview").await.unwrap();
    // Its pods admit only the gateways, on the route's port.
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(env.client.clone(), &env.ns);
    let np = serde_json::to_value(policies.get("hello").await.unwrap()).unwrap();
    assert_eq!(
        np["spec"]["ingress"],
        json!([{
            "from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apiroutes-system"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
            }],
            "ports": [{"port": 3000, "protocol": "TCP"}],
        }]),
        "{np}"
    );
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"]["apiroutes.dev/route"],
        "hello"
    );
    assert_eq!(np["metadata"]["ownerReferences"][0]["name"], "hello");

    // Events for what the operator did.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    eventually("Created event", TIMEOUT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Created")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hello")
            })
            .then_some(())
    })
    .await;

    // Image change → the Deployment follows (rolling update, surge 1, unavailable 0).
    env.apply(json!({
        "metadata": {"name": "hello"},
        "spec": {"path": "/api/hello/[id]", "image": "ghcr.io/apiroutes/echo:2", "port": 3000,
                 "readinessPath": "/healthz", "preview": {"image": "ghcr.io/apiroutes/echo:draft"}}
    }))
    .await;
    eventually("image rolled", TIMEOUT, || async {
        let d = env.deployments().get("hello").await.ok()?;
        (image_of(&d) == "ghcr.io/apiroutes/echo:2").then_some(())
    })
    .await;
    let d = env.deployments().get("hello").await.unwrap();
    let ru = d.spec.unwrap().strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        serde_json::to_value(&ru).unwrap(),
        json!({"maxSurge": 1, "maxUnavailable": 0})
    );

    // Drift is repaired: a manual edit of the image is put back.
    env.deployments()
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "function", "image": "tampered:1"}]}}}})),
        )
        .await
        .unwrap();
    eventually("drift repaired", TIMEOUT, || async {
        let d = env.deployments().get("hello").await.ok()?;
        (image_of(&d) == "ghcr.io/apiroutes/echo:2").then_some(())
    })
    .await;

    // Preview removed → the preview pair is deleted.
    env.apply(json!({
        "metadata": {"name": "hello"},
        "spec": {"path": "/api/hello/[id]", "image": "ghcr.io/apiroutes/echo:2", "port": 3000,
                 "readinessPath": "/healthz"}
    }))
    .await;
    env.gone("hello-preview").await;

    // Delete → garbage collection removes the children.
    env.routes()
        .delete("hello", &DeleteParams::default())
        .await
        .unwrap();
    env.gone("hello").await;
}

#[tokio::test]
async fn conflict_is_reported_and_resolved_when_the_winner_goes_away() {
    let Some(env) = Env::new("conflict").await else {
        return;
    };
    env.apply(json!({"metadata": {"name": "old"}, "spec": {"path": "/api/users/[id]", "image": "echo:1"}}))
        .await;
    env.status_where("old", |r| {
        condition(r, "Accepted").is_some_and(|c| c.0 == "True")
    })
    .await;
    // Creation timestamps have second resolution: make sure "new" is younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply(json!({"metadata": {"name": "new"}, "spec": {"path": "/api/users/[slug]", "image": "echo:1"}}))
        .await;
    let r = env
        .status_where("new", |r| {
            condition(r, "Accepted").is_some_and(|c| c.0 == "False")
        })
        .await;
    let (_, reason, message) = condition(&r, "Accepted").unwrap();
    assert_eq!(reason, "Conflict");
    assert!(message.contains(&format!("{}/old", env.ns)), "{message}");
    assert_eq!(condition(&r, "Ready").unwrap().1, "NotAccepted");
    assert!(env.deployments().get_opt("new").await.unwrap().is_none());

    // An invalid-looking spec is refused by the API server, naming the field.
    let bad = env
        .routes()
        .patch(
            "bad",
            &PatchParams::apply("apiroutes-tests"),
            &Patch::Apply(json!({
                "apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute",
                "metadata": {"name": "bad"},
                "spec": {"path": "/api/[...x]/y", "image": "echo:1"}
            })),
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("spec.path"), "{bad}");

    // The winner goes away: the loser is accepted and gets its Deployment.
    env.routes()
        .delete("old", &DeleteParams::default())
        .await
        .unwrap();
    env.status_where("new", |r| {
        condition(r, "Accepted").is_some_and(|c| c.0 == "True")
    })
    .await;
    env.deployment("new").await;
}

fn container_of(d: &Deployment) -> serde_json::Value {
    serde_json::to_value(container(d)).unwrap()
}

#[tokio::test]
async fn removed_spec_fields_are_removed_from_the_children() {
    let Some(env) = Env::new("converge").await else {
        return;
    };
    env.apply(json!({
        "metadata": {"name": "c"},
        "spec": {"path": "/api/c", "image": "echo:1", "port": 3000,
                 "resources": {"limits": {"memory": "128Mi"}},
                 "env": [{"name": "GREETING", "value": "hi"}],
                 "readinessPath": "/healthz", "readOnlyRootFilesystem": true}
    }))
    .await;
    let d = env.deployment("c").await;
    let pod = serde_json::to_value(d.spec.as_ref().unwrap().template.spec.as_ref()).unwrap();
    assert_eq!(
        pod["volumes"],
        json!([{"name": "tmp", "emptyDir": {}}]),
        "{pod}"
    );
    let c = container_of(&d);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{c}");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi", "{c}");
    assert_eq!(
        c["env"][1],
        json!({"name": "GREETING", "value": "hi"}),
        "{c}"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz", "{c}");

    // Without the limits alone (every other field of the Deployment unchanged): they go.
    env.apply(json!({
        "metadata": {"name": "c"},
        "spec": {"path": "/api/c", "image": "echo:1", "port": 3000,
                 "env": [{"name": "GREETING", "value": "hi"}],
                 "readinessPath": "/healthz", "readOnlyRootFilesystem": true}
    }))
    .await;
    eventually("limits removed", TIMEOUT, || async {
        let c = container_of(&env.deployments().get("c").await.ok()?);
        c["resources"].get("limits").is_none().then_some(())
    })
    .await;

    // Without the variable and the probe path: they go, the probe is TCP again.
    env.apply(json!({
        "metadata": {"name": "c"},
        "spec": {"path": "/api/c", "image": "echo:1", "port": 3000}
    }))
    .await;
    let c = eventually("env and probe path removed", TIMEOUT, || async {
        let c = container_of(&env.deployments().get("c").await.ok()?);
        (c["env"] == json!([{"name": "PORT", "value": "3000"}])
            && c["readinessProbe"].get("httpGet").is_none())
        .then_some(c)
    })
    .await;
    // Without readOnlyRootFilesystem: the /tmp volume and its mount go too.
    let d = env.deployment("c").await;
    let pod = serde_json::to_value(d.spec.as_ref().unwrap().template.spec.as_ref()).unwrap();
    assert!(pod.get("volumes").is_none(), "{pod}");
    assert!(c.get("volumeMounts").is_none(), "{c}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false, "{c}");
    assert_eq!(
        c["readinessProbe"]["tcpSocket"],
        json!({"port": "http"}),
        "{c}"
    );

    // A Service change converges too.
    env.apply(json!({
        "metadata": {"name": "c"},
        "spec": {"path": "/api/c", "image": "echo:1", "port": 4000}
    }))
    .await;
    eventually("service port follows", TIMEOUT, || async {
        let svc = env.services().get("c").await.ok()?;
        let ports = svc.spec?.ports?;
        (ports.len() == 1 && ports[0].port == 4000).then_some(())
    })
    .await;
    let c = container_of(&env.deployment("c").await);
    assert_eq!(c["ports"][0]["containerPort"], 4000, "{c}");
    // And once converged, a status-only reconcile sends nothing.
    env.status_where("c", |_| true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (d, s) = (
        env.deployments().get("c").await.unwrap(),
        env.services().get("c").await.unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.deployments()
            .get("c")
            .await
            .unwrap()
            .metadata
            .generation,
        d.metadata.generation
    );
    assert_eq!(
        env.services().get("c").await.unwrap().resource_version(),
        s.resource_version()
    );
}

#[tokio::test]
async fn a_restarted_operator_writes_nothing() {
    let Some(mut env) = Env::new("restart").await else {
        return;
    };
    env.apply(json!({"metadata": {"name": "a"}, "spec": {"path": "/api/a", "image": "echo:1"}, }))
        .await;
    env.apply(json!({"metadata": {"name": "b"}, "spec": {"path": "/api/b", "image": "echo:1", "preview": {"image": "echo:2"}}}))
        .await;
    for n in ["a", "b"] {
        env.status_where(n, |r| {
            condition(r, "Ready").is_some_and(|c| c.1 == "Progressing")
        })
        .await;
    }
    env.deployment("b-preview").await;
    // Let the Deployment controller and the operator settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let versions = |env: &Env| {
        let (routes, deps, svcs) = (env.routes(), env.deployments(), env.services());
        async move {
            let mut v = vec![];
            for r in routes.list(&ListParams::default()).await.unwrap() {
                v.push((format!("ar/{}", r.name_any()), r.resource_version()));
            }
            for d in deps.list(&ListParams::default()).await.unwrap() {
                v.push((format!("deploy/{}", d.name_any()), d.resource_version()));
            }
            for s in svcs.list(&ListParams::default()).await.unwrap() {
                v.push((format!("svc/{}", s.name_any()), s.resource_version()));
            }
            v
        }
    };
    let before = versions(&env).await;
    assert_eq!(before.len(), 2 + 3 + 3, "{before:?}");
    env.operator.take().unwrap().stop();
    let operator = Operator::start(&env.kubeconfig, &env.ns);
    operator.wait_ready().await;
    env.operator = Some(operator);
    // The new leader has reconciled everything by now; give it a few more seconds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(versions(&env).await, before);
}

#[tokio::test]
async fn demand_for_a_route_at_zero_writes_the_scale_subresource() {
    let Some(env) = Env::new("demand").await else {
        return;
    };
    env.apply(
        json!({"metadata": {"name": "cold"}, "spec": {"path": "/api/cold", "image": "echo:1"}}),
    )
    .await;
    env.deployment("cold").await;
    env.scale_to_zero("cold", "cold").await;
    let op = env.operator.as_ref().unwrap();
    assert_eq!(env.demand("cold").await, 202);
    let start = Instant::now();
    eventually("woken", Duration::from_secs(5), || async {
        let d = env.deployments().get("cold").await.ok()?;
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    eprintln!(
        "demand → replicas 1 seen by the test after {:?}",
        start.elapsed()
    );
    // The activation is counted once the scale write has returned: the test may see the
    // new replicas (by its own watch) a moment before that.
    let activation = "apiroutes_operator_activation_duration_seconds_count{result=\"ok\"} 1";
    eventually("the activation counted", Duration::from_secs(5), || async {
        let metrics = http_body(&format!("http://{}/metrics", op.admin)).await?;
        metrics.contains(activation).then_some(())
    })
    .await;
    // Load reports above what one replica takes scale it up (panic window, at most x4).
    let load = json!({"gateway": "gw-test", "intervalSeconds": 1.0, "routes": [{
        "route": {"namespace": env.ns, "name": "cold", "variant": "main"},
        "averageConcurrency": 35.0, "maxConcurrency": 40, "requests": 100, "held": 0
    }]})
    .to_string();
    eventually("scaled up by load", Duration::from_secs(15), || async {
        let (status, _) =
            http_request(&op.autoscaler.to_string(), "POST", "/v1/load", &load).await?;
        assert_eq!(status, 202);
        let d = env.deployments().get("cold").await.ok()?;
        (d.spec?.replicas == Some(4)).then_some(())
    })
    .await;
    // Malformed pushes are refused.
    let (status, _) = http_request(&op.autoscaler.to_string(), "POST", "/v1/load", "{}")
        .await
        .unwrap();
    assert_eq!(status, 400);
    let _ = (PostParams::default(), FIELD_MANAGER);
}

#[tokio::test]
async fn autoscaler_pushes_need_an_allowed_service_account_token() {
    let Some(mut env) = Env::new("autoscaler-auth").await else {
        return;
    };
    // Two ServiceAccounts: `gw` is allowed (as the chart allows the gateways'), `other` not.
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    for name in ["gw", "other"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }
    let token = |sa: &'static str, audience: &'static str| {
        let sas = sas.clone();
        async move {
            let request: TokenRequest = serde_json::from_value(json!({
                "spec": {"audiences": [audience], "expirationSeconds": 600}
            }))
            .unwrap();
            sas.create_token_request(sa, &PostParams::default(), &request)
                .await
                .unwrap()
                .status
                .and_then(|s| s.token)
                .unwrap()
        }
    };
    let allowed = format!("system:serviceaccount:{}:gw", env.ns);
    env.operator.take().unwrap().stop();
    let operator = Operator::start_with(
        &env.kubeconfig,
        &env.ns,
        None,
        &["--autoscaler-allowed-identity", &allowed],
    );
    operator.wait_ready().await;
    env.operator = Some(operator);
    let op = env.operator.as_ref().unwrap();
    let addr = op.autoscaler.to_string();
    let load = json!({"gateway": "gw-test", "intervalSeconds": 1.0, "routes": []}).to_string();
    let push = |authorization: Option<String>| {
        let (addr, load) = (addr.clone(), load.clone());
        async move {
            let headers = authorization
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default();
            http_request_with(&addr, "POST", "/v1/load", &headers, &load)
                .await
                .unwrap()
        }
    };
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let (status, body) = push(None).await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = push(bearer("not-a-token")).await;
    assert_eq!(status, 401, "a made-up token: {body}");
    // A real token, but for the API server's default audience: not ours.
    let (status, body) = push(bearer(&token("gw", "https://kubernetes.default.svc").await)).await;
    assert_eq!(status, 401, "another audience: {body}");
    let (status, body) = push(bearer(&token("other", "apiroutes-autoscaler").await)).await;
    assert_eq!(status, 403, "a ServiceAccount not allowed: {body}");
    assert!(body.contains(":other may not push"), "{body}");
    let good = token("gw", "apiroutes-autoscaler").await;
    let (status, body) = push(bearer(&good)).await;
    assert_eq!(status, 202, "the allowed ServiceAccount: {body}");
    // The verdict is cached: the second push needs no review.
    let (status, _) = push(bearer(&good)).await;
    assert_eq!(status, 202);
    let metrics = http_body(&format!("http://{}/metrics", op.admin))
        .await
        .unwrap();
    for (reason, n) in [("unauthenticated", 3), ("forbidden", 1)] {
        let line =
            format!("apiroutes_operator_autoscaler_rejected_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn one_leader_labels_its_pod_and_a_standby_takes_over() {
    let Some(mut env) = Env::new("leader").await else {
        return;
    };
    // The fixture's operator holds this namespace's Lease; stop it, then run two with pods.
    env.operator.take().unwrap().stop();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    for name in ["op-a", "op-b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "operator", "image": "ghcr.io/apiroutes/operator:test"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let leader_label = |name: &'static str| {
        let pods = pods.clone();
        async move {
            pods.get(name)
                .await
                .ok()
                .and_then(|p| p.labels().get("apiroutes.dev/leader").cloned())
        }
    };
    let a = Operator::start_as(&env.kubeconfig, &env.ns, Some("op-a"));
    a.wait_ready().await;
    eventually("op-a labelled", TIMEOUT, || async {
        (leader_label("op-a").await.as_deref() == Some("true")).then_some(())
    })
    .await;
    let b = Operator::start_as(&env.kubeconfig, &env.ns, Some("op-b"));
    eventually("op-b up", TIMEOUT, || async {
        http_get(&format!("http://{}/healthz", b.admin))
            .await
            .filter(|s| *s == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b.is_leader().await);
    assert_eq!(leader_label("op-b").await, None);
    // The standby's autoscaler refuses pushes so gateways retry against the leader.
    let load = json!({"gateway": "gw", "intervalSeconds": 1.0, "routes": []}).to_string();
    let (status, _) = http_request(&b.autoscaler.to_string(), "POST", "/v1/load", &load)
        .await
        .unwrap();
    assert_eq!(status, 503);
    let (status, _) = http_request(&a.autoscaler.to_string(), "POST", "/v1/load", &load)
        .await
        .unwrap();
    assert_eq!(status, 202);

    // SIGTERM to the leader: label removed, Lease released, the standby leads at once.
    a.stop();
    assert_eq!(leader_label("op-a").await, None);
    b.wait_ready().await;
    eventually("op-b labelled", TIMEOUT, || async {
        (leader_label("op-b").await.as_deref() == Some("true")).then_some(())
    })
    .await;
    let lease: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let lease = lease
        .get(&format!("apiroutes-operator-{}", env.ns))
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("op-b"));
    env.operator = Some(b);
}

#[tokio::test]
async fn routes_naming_one_function_share_one_deployment_woken_once() {
    let Some(env) = Env::new("function").await else {
        return;
    };
    let spec = |path: &str, image: &str| json!({"path": path, "image": image, "function": "shop", "readinessPath": "/healthz"});
    env.apply(json!({"metadata": {"name": "users"}, "spec": spec("/api/users", "echo:1")}))
        .await;
    // Creation timestamps have second resolution: "users" is the older, the controller.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply(json!({"metadata": {"name": "count"}, "spec": spec("/api/count", "echo:1")}))
        .await;
    for name in ["users", "count"] {
        env.status_where(name, |r| {
            condition(r, "Accepted").is_some_and(|c| c.0 == "True")
        })
        .await;
    }
    // One Deployment, owned by both routes; no Deployment of their own.
    eventually("fn.shop owned by both routes", TIMEOUT, || async {
        let d = env.deployments().get_opt("fn.shop").await.ok()??;
        let mut owners: Vec<(String, Option<bool>)> = d
            .owner_references()
            .iter()
            .map(|o| (o.name.clone(), o.controller))
            .collect();
        owners.sort();
        (owners == [("count".to_owned(), None), ("users".to_owned(), Some(true))]).then_some(())
    })
    .await;
    for name in ["users", "count"] {
        assert!(env.deployments().get_opt(name).await.unwrap().is_none());
        // Each route's own Service selects the function's pods.
        let svc = env.services().get(name).await.unwrap();
        let selector = svc.spec.unwrap().selector.unwrap();
        assert_eq!(selector["apiroutes.dev/function"], "shop", "{selector:?}");
    }

    // A route that disagrees with the function's oldest route is refused, naming the field.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply(json!({"metadata": {"name": "odd"}, "spec": spec("/api/odd", "echo:2")}))
        .await;
    let odd = env
        .status_where("odd", |r| {
            condition(r, "Accepted").is_some_and(|c| c.0 == "False")
        })
        .await;
    let (_, reason, message) = condition(&odd, "Accepted").unwrap();
    assert_eq!(reason, "FunctionMismatch");
    assert!(message.contains("spec.image"), "{message}");
    let d = env.deployments().get("fn.shop").await.unwrap();
    assert_eq!(d.owner_references().len(), 2);
    assert_eq!(container_of(&d)["image"], "echo:1");

    // At zero, demand for both routes wakes the function with one scale write.
    env.scale_to_zero("fn.shop", "count").await;
    let op = env.operator.as_ref().unwrap();
    for name in ["users", "count"] {
        assert_eq!(env.demand(name).await, 202, "{name}");
    }
    eventually("woken", Duration::from_secs(5), || async {
        let d = env.deployments().get("fn.shop").await.ok()?;
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    // The test can see the new replicas before the operator has read its write's answer
    // and counted it: wait for the count, then check it is one.
    let want = "apiroutes_operator_activation_duration_seconds_count{result=\"ok\"}";
    let metrics = eventually("the wake counted", Duration::from_secs(10), || async {
        let m = http_body(&format!("http://{}/metrics", op.admin)).await?;
        m.contains(want).then_some(m)
    })
    .await;
    assert!(metrics.contains(&format!("{want} 1")), "{metrics}");

    // Kubernetes deletes the shared Deployment with the last of its routes.
    for name in ["users", "count", "odd"] {
        env.routes()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("fn.shop deleted", Duration::from_secs(60), || async {
        let d = env.deployments().get_opt("fn.shop").await.ok()?;
        d.is_none().then_some(())
    })
    .await;
}
