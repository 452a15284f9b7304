//! The cold-start timeline (issue 14, item 4): where the time of a wake from zero goes.
//!
//! Against a running platform (`tests/platform.sh`, or the one `tests/run.sh` starts):
//!
//! ```sh
//! eval "$(bash tests/cluster/cluster.sh env ~/.cache/apiroutes/platform)"
//! APIROUTES_GATEWAY_URL=http://127.0.0.1:8080 \
//!   cargo run -p apiroutes-e2e --example coldstart -- [WAKES] [APPLIES]
//! ```
//!
//! It makes a namespace with one sleeping echo route and wakes it WAKES times (default 10),
//! each time from a fully drained state; then it applies APPLIES new routes (default 5) and
//! times each from `kubectl apply` to its first 200. Watches on the namespace's Deployments,
//! ReplicaSets, Pods and EndpointSlices timestamp every step as this process sees it (the
//! API server is on the same machine: a watch event arrives within a millisecond or two of
//! the write). The gateway's own steps come from its `Server-Timing` header. Prints each
//! step's offset from the request and its own duration, p50 and p99. A benchmark: it
//! asserts nothing, and every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apiroutes_e2e::{Cluster, Http, echo_route};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::Pod,
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt, watcher},
};

/// The operator's label naming a pod's (and ReplicaSet's) route.
const ROUTE_LABEL: &str = "apiroutes.dev/route";

/// The steps of a wake, in the order they happen.
const STEPS: [&str; 9] = [
    "scale written (Deployment spec.replicas)",
    "ReplicaSet scaled",
    "Pod created",
    "Pod scheduled",
    "container running",
    "Pod Ready",
    "EndpointSlice ready",
    "gateway released the request",
    "answer at the client",
];

/// What the watches saw during one wake: the first time of each watched step.
#[derive(Default)]
struct Marks {
    /// Armed: steps are recorded only while a wake is under way.
    armed: bool,
    /// The route (and its Deployment, Service, pods) being timed.
    target: String,
    /// Every pod seen so far, and those that existed when the wake began (their events
    /// are not this wake's).
    seen_pods: HashSet<String>,
    old_pods: HashSet<String>,
    at: [Option<Instant>; 7],
}

impl Marks {
    fn arm(&mut self, target: &str) {
        self.target = target.to_owned();
        self.old_pods.clone_from(&self.seen_pods);
        self.at = [None; 7];
        self.armed = true;
    }

    fn disarm(&mut self) -> [Option<Instant>; 7] {
        self.armed = false;
        self.at
    }

    fn mark(&mut self, step: usize) {
        if self.armed && self.at[step].is_none() {
            self.at[step] = Some(Instant::now());
        }
    }
}

fn label<'a, K: Resource>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.meta().labels.as_ref()?.get(key).map(String::as_str)
}

type Shared = Arc<Mutex<Marks>>;

fn spawn_watch<K>(api: Api<K>, marks: Shared, on: fn(&K, &mut Marks))
where
    K: Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Ok(Some(obj)) = stream.try_next().await {
            let mut m = marks.lock().unwrap();
            on(&obj, &mut m);
        }
    });
}

fn on_deployment(d: &Deployment, m: &mut Marks) {
    if d.metadata.name.as_deref() == Some(m.target.as_str())
        && d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) >= 1
    {
        m.mark(0);
    }
}

fn on_replicaset(rs: &ReplicaSet, m: &mut Marks) {
    if label(rs, ROUTE_LABEL) == Some(m.target.as_str())
        && rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) >= 1
    {
        m.mark(1);
    }
}

fn on_pod(p: &Pod, m: &mut Marks) {
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let old = m.old_pods.contains(&uid);
    m.seen_pods.insert(uid);
    if !m.armed || old || label(p, ROUTE_LABEL) != Some(m.target.as_str()) {
        return;
    }
    m.mark(2);
    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
        m.mark(3);
    }
    let status = p.status.as_ref();
    let running = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        });
    if running {
        m.mark(4);
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        m.mark(5);
    }
}

fn on_slice(s: &EndpointSlice, m: &mut Marks) {
    if label(s, "kubernetes.io/service-name") != Some(m.target.as_str()) {
        return;
    }
    let ready = s
        .endpoints
        .iter()
        .flatten()
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false));
    if ready {
        m.mark(6);
    }
}

/// `dur` of the named metric in a `Server-Timing` header (`activation;dur=760`).
fn server_timing(header: Option<&str>, name: &str) -> Option<f64> {
    header?.split(',').find_map(|metric| {
        let mut parts = metric.trim().split(';');
        (parts.next()? == name).then_some(())?;
        parts.find_map(|p| p.trim().strip_prefix("dur=")?.parse().ok())
    })
}

/// One wake's step offsets from the request, in ms (`None`: not seen).
type Timeline = [Option<f64>; 9];

/// Wall-clock time of day (UTC) now, to find a wake in the node's logs.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

/// Waits until `check` holds, polling; false at the deadline.
async fn until<F: AsyncFnMut() -> bool>(deadline: Duration, mut check: F) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The route is asleep: no replica wanted, no pod left (not even terminating), no ready
/// endpoint.
async fn asleep(cluster: &Cluster, ns: &str, name: &str) -> bool {
    matches!(cluster.deployment_replicas(ns, name).await, Some((0, _)))
        && cluster.route_pods(ns, name).await == 0
}

async fn run_once(marks: &Shared, http: &Http, name: &str, url: &str) -> Option<Timeline> {
    marks.lock().unwrap().arm(name);
    let t0 = Instant::now();
    eprint!("{} ", clock());
    let answer = http.get(url).await;
    let done = Instant::now();
    // The EndpointSlice and status events may trail the answer by a little.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at = marks.lock().unwrap().disarm();
    let answer = match answer {
        Ok(a) if a.status == 200 => a,
        Ok(a) => {
            eprintln!("  answer {} (not counted)", a.status);
            return None;
        }
        Err(e) => {
            eprintln!("  request failed: {e} (not counted)");
            return None;
        }
    };
    let activation = server_timing(answer.header("server-timing"), "activation");
    Some(timeline(t0, &at, activation, done))
}

/// A wake's watched steps, the gateway's release and the answer, as offsets from `t0`.
fn timeline(
    t0: Instant,
    watched: &[Option<Instant>; 7],
    activation: Option<f64>,
    done: Instant,
) -> Timeline {
    let mut line: Timeline = [None; 9];
    for (i, t) in watched.iter().enumerate() {
        line[i] = t.map(|t| ms(t0, t));
    }
    line[7] = activation;
    line[8] = Some(ms(t0, done));
    line
}

fn pct(mut v: Vec<f64>, p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len() - 1) as f64 * p) as usize;
    Some(v[i])
}

fn show(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"))
}

fn report(title: &str, lines: &[Timeline]) {
    println!("\n{title} (n={}; ms, p50 / p99)", lines.len());
    println!(
        "{:<42} {:>16} {:>16}",
        "step", "offset from t0", "step's own time"
    );
    for (i, name) in STEPS.iter().enumerate() {
        let offsets: Vec<f64> = lines.iter().filter_map(|l| l[i]).collect();
        // The step's own time: from the latest earlier step seen in the same wake.
        let own: Vec<f64> = lines
            .iter()
            .filter_map(|l| {
                let here = l[i]?;
                // Steps can overtake each other (the gateway's own check of a starting pod
                // comes before the pod's Ready): time since the latest earlier step.
                let before = (0..i)
                    .filter_map(|j| l[j])
                    .filter(|t| *t <= here)
                    .fold(0.0, f64::max);
                Some(here - before)
            })
            .collect();
        println!(
            "{:<42} {:>7} / {:>6} {:>7} / {:>6}",
            name,
            show(pct(offsets.clone(), 0.5)),
            show(pct(offsets, 0.99)),
            show(pct(own.clone(), 0.5)),
            show(pct(own, 0.99)),
        );
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let wakes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let applies: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let Some(cluster) = Cluster::platform_from_env("coldstart").await else {
        eprintln!("coldstart: set APIROUTES_CLUSTER_DIR and APIROUTES_GATEWAY_URL");
        std::process::exit(2);
    };
    let ns = cluster.namespace("coldstart");
    let ns = ns.name.clone();
    let gw = cluster.gateway_url().to_owned();
    let marks: Shared = Arc::default();
    let client = cluster.client.clone();
    spawn_watch(
        Api::<Deployment>::namespaced(client.clone(), &ns),
        marks.clone(),
        on_deployment,
    );
    spawn_watch(
        Api::<ReplicaSet>::namespaced(client.clone(), &ns),
        marks.clone(),
        on_replicaset,
    );
    spawn_watch(
        Api::<Pod>::namespaced(client.clone(), &ns),
        marks.clone(),
        on_pod,
    );
    spawn_watch(
        Api::<EndpointSlice>::namespaced(client.clone(), &ns),
        marks.clone(),
        on_slice,
    );
    let http = Http::default();

    // Wakes of one route from zero: the echo function (a Rust binary that listens at
    // once) and a Node.js function of the runtime (listens some 200 ms after its start).
    let sleepy = "  scaling: {minReplicas: 0, scaleToZeroAfterSeconds: 1}";
    let node = format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: sleepy-node, namespace: {ns}}}\n\
         spec:\n  path: /api/{ns}/sleepy-node\n  image: ghcr.io/apiroutes/e2e-fixtures:0.1.0\n  readinessPath: /healthz\n  \
         env: [{{name: APIROUTES_HANDLER, value: pages/api/whoami.mjs}}]\n{sleepy}\n"
    );
    let kinds = [
        (
            "sleepy",
            "cold start from zero, echo (Rust)",
            echo_route("sleepy", &ns, &format!("/api/{ns}/sleepy"), sleepy),
        ),
        ("sleepy-node", "cold start from zero, Node.js runtime", node),
    ];
    for (_, _, manifest) in &kinds {
        cluster.kubectl_ok(&["apply", "-f", "-"], Some(manifest));
    }
    for (name, title, _) in &kinds {
        let url = format!("{gw}/api/{ns}/{name}");
        let mut lines = Vec::new();
        for i in 0..wakes {
            let slept = until(Duration::from_secs(90), async || {
                asleep(&cluster, &ns, name).await
            })
            .await;
            if !slept {
                eprintln!("{name} wake {i}: the route did not go to sleep within 90 s; stopping");
                break;
            }
            // Let the gateway's table catch up with the endpoint's removal.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(line) = run_once(&marks, &http, name, &url).await {
                eprintln!(
                    "{name} wake {i}: {}",
                    line.iter().map(|x| show(*x)).collect::<Vec<_>>().join(" ")
                );
                lines.push(line);
            }
        }
        report(title, &lines);
    }

    // New routes: apply → first 200.
    let mut lines = Vec::new();
    for i in 0..applies {
        let name = format!("fresh{i}");
        let path = format!("/api/{ns}/{name}");
        let url = format!("{gw}{path}");
        marks.lock().unwrap().arm(&name);
        let t0 = Instant::now();
        eprint!("{} ", clock());
        cluster.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&echo_route(&name, &ns, &path, "")),
        );
        let mut answered = None;
        let end = t0 + Duration::from_secs(60);
        while Instant::now() < end {
            if let Ok(a) = http.get(&url).await
                && a.status == 200
            {
                answered = Some(Instant::now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at = marks.lock().unwrap().disarm();
        let Some(done) = answered else {
            eprintln!("apply {i}: no 200 within 60 s (not counted)");
            continue;
        };
        let line = timeline(t0, &at, None, done);
        eprintln!(
            "apply {i}: {}",
            line.iter().map(|x| show(*x)).collect::<Vec<_>>().join(" ")
        );
        lines.push(line);
    }
    report("kubectl apply of a new route -> first 200", &lines);
}
