//! Harness for the end-to-end tests: the cluster the test runner started
//! (`tests/cluster/cluster.sh up DIR`, exported as `APIROUTES_CLUSTER_DIR`), `kubectl`, a
//! namespace per test, and an HTTP client aimed at the gateway on 127.0.0.1.
//!
//! Tests call [`Cluster::from_env`] and return early, saying why, when no cluster was
//! started (plain `cargo test` on a laptop); `tests/run.sh` always starts one and sets
//! `APIROUTES_REQUIRE_CLUSTER=1`, under which a missing cluster fails the test instead.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use kube::Client;

/// The running local cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub client: Client,
    /// Where the gateway serves, e.g. `http://127.0.0.1:18080` (`APIROUTES_GATEWAY_URL`).
    pub gateway: Option<String>,
}

impl Cluster {
    /// The cluster named by `APIROUTES_CLUSTER_DIR`, or `None` (the test should skip).
    pub async fn from_env(test: &str) -> Option<Cluster> {
        let dir = PathBuf::from(apiroutes_testkit::from_env("APIROUTES_CLUSTER_DIR", test)?);
        let bin = std::env::var_os("APIROUTES_CLUSTER_BIN")
            .map(PathBuf::from)
            .expect("APIROUTES_CLUSTER_BIN set with APIROUTES_CLUSTER_DIR");
        let kubeconfig = Kubeconfig::read_from(dir.join("kubeconfig")).expect("read kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
        let client = Client::try_from(config).expect("kube client");
        let gateway = std::env::var("APIROUTES_GATEWAY_URL").ok();
        Some(Cluster {
            dir,
            bin,
            client,
            gateway,
        })
    }

    /// The cluster with the platform installed (gateway reachable), or `None` (skip).
    pub async fn platform_from_env(test: &str) -> Option<Cluster> {
        let cluster = Self::from_env(test).await?;
        apiroutes_testkit::from_env("APIROUTES_GATEWAY_URL", test)?;
        Some(cluster)
    }

    /// Runs kubectl with the admin kubeconfig, optionally feeding `stdin`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies the committed CRDs (server-side, as the README tells users to upgrade them)
    /// and waits until they are established.
    pub fn ensure_crd(&self) {
        let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/");
        self.kubectl_ok(
            &["apply", "--server-side", "--force-conflicts", "-f", crd],
            None,
        );
        self.kubectl_ok(
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=30s",
                "crd/apiroutes.apiroutes.dev",
                "crd/routegrants.apiroutes.dev",
            ],
            None,
        );
    }

    /// A fresh namespace for one test, deleted (without waiting) when dropped.
    pub fn namespace(&self, prefix: &str) -> Namespace<'_> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}-{:x}", nanos & 0xffffff);
        self.kubectl_ok(&["create", "namespace", &name], None);
        Namespace {
            cluster: self,
            name,
        }
    }
}

pub struct Namespace<'a> {
    cluster: &'a Cluster,
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

/// An ApiRoute manifest for the echo function (image `ghcr.io/apiroutes/echo:<tag>`).
pub fn echo_route(name: &str, ns: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  path: \"{path}\"\n  image: ghcr.io/apiroutes/echo:0.1.0\n  readinessPath: /healthz\n{extra}\n"
    )
}

impl Cluster {
    /// `spec.replicas` and `status.readyReplicas` of a Deployment, if it exists.
    pub async fn deployment_replicas(&self, ns: &str, name: &str) -> Option<(i32, i32)> {
        use k8s_openapi::api::apps::v1::Deployment;
        let api: kube::Api<Deployment> = kube::Api::namespaced(self.client.clone(), ns);
        let d = api.get_opt(name).await.ok()??;
        let spec = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        Some((spec, ready))
    }

    /// A condition of an ApiRoute as `(status, reason, message)`; empty strings when the
    /// route or the condition is missing.
    pub fn condition(&self, ns: &str, name: &str, type_: &str) -> (String, String, String) {
        let field = |f: &str| format!(r#"{{.status.conditions[?(@.type=="{type_}")].{f}}}"#);
        let jsonpath = format!(
            "jsonpath={}|{}|{}",
            field("status"),
            field("reason"),
            field("message")
        );
        let out = self.kubectl(&["get", "apiroute", name, "-n", ns, "-o", &jsonpath], None);
        let out = String::from_utf8_lossy(&out.stdout);
        let mut parts = out.splitn(3, '|').map(str::to_owned);
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    }

    /// Number of pods of a route (any phase) in a namespace.
    pub async fn route_pods(&self, ns: &str, route: &str) -> usize {
        use k8s_openapi::api::core::v1::Pod;
        let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), ns);
        let lp = kube::api::ListParams::default().labels(&format!("apiroutes.dev/route={route}"));
        api.list(&lp)
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX)
    }

    /// The gateway's base URL; panics if the runner did not install the platform.
    pub fn gateway_url(&self) -> &str {
        self.gateway
            .as_deref()
            .expect("APIROUTES_GATEWAY_URL: the test runner installs the platform and sets it")
    }
}

/// Outcome counts of a bounded load loop.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    pub servers: std::collections::BTreeMap<String, u64>,
    /// GETs sent again because their connection closed under them (`load_retrying`).
    pub retried: u64,
}

/// Sends GETs to `url` from `clients` concurrent loops until `stop` is set or `max`
/// elapses (bounded in time and count), pausing `pause` between requests.
pub async fn load(
    url: String,
    clients: usize,
    pause: Duration,
    max: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> LoadResult {
    load_with(url, clients, pause, max, stop, false).await
}

/// [`load`] by clients that, as browsers do (RFC 9112 §9.3.1), send a GET once more when
/// the kept-alive connection it went out on was closed under it before any answer; such
/// retries are counted in [`LoadResult::retried`].
pub async fn load_retrying(
    url: String,
    clients: usize,
    pause: Duration,
    max: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> LoadResult {
    load_with(url, clients, pause, max, stop, true).await
}

async fn load_with(
    url: String,
    clients: usize,
    pause: Duration,
    max: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    retry_closed: bool,
) -> LoadResult {
    use std::sync::atomic::Ordering;
    let http = Http::default();
    let deadline = Instant::now() + max;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let mut answer = http.get(&url).await;
                // hyper's "SendRequest": the connection closed before an answer came.
                if retry_closed && matches!(&answer, Err(e) if e.contains("SendRequest")) {
                    r.retried += 1;
                    answer = http.get(&url).await;
                }
                match answer {
                    Ok(a) if a.status == 200 => {
                        r.ok += 1;
                        let server = a.json()["server"].as_str().unwrap_or("?").to_owned();
                        *r.servers.entry(server).or_default() += 1;
                    }
                    Ok(a) => {
                        r.failed += 1;
                        if r.failures.len() < 10 {
                            r.failures.push(format!(
                                "{} {}",
                                a.status,
                                String::from_utf8_lossy(&a.body)
                            ));
                        }
                    }
                    Err(e) => {
                        r.failed += 1;
                        if r.failures.len() < 10 {
                            r.failures.push(e);
                        }
                    }
                }
                tokio::time::sleep(pause).await;
            }
            r
        }));
    }
    let mut total = LoadResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.ok += r.ok;
            total.failed += r.failed;
            total.retried += r.retried;
            total.failures.extend(r.failures);
            for (k, v) in r.servers {
                *total.servers.entry(k).or_default() += v;
            }
        }
    }
    total
}

/// Polls until an event happens (the test kit's, shared by every crate's tests).
pub use apiroutes_testkit::eventually;

/// A small HTTP/1.1 client for talking to the gateway.
#[derive(Clone)]
pub struct Http {
    client: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: HttpClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
        }
    }
}

impl Http {
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&self, url: &str) -> Result<Answer, String> {
        self.request("GET", url, &[], "").await
    }
}
