//! Running pods: one task per pod, one supervisor per container, probes, status reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::command::build_command;
use crate::env::{EnvSources, container_env, referenced_objects};
use crate::error::{Error, Result};
use crate::imagemap::{ImageMap, repository};
use crate::ipam::IpPool;
use crate::netns::Netns;
use crate::probe::{ProbeSpec, probe_spec, run_once};
use crate::status::{ContainerRuntime, PodRuntime, RunState, Terminated, compute_status};
use crate::token;

/// What every pod task shares.
pub struct Ctx {
    pub client: kube::Client,
    pub node_name: String,
    pub host_ip: String,
    pub netns: Netns,
    pub image_map: PathBuf,
    pub state_dir: PathBuf,
    /// The API server as pods reach it (the forwarder inside the namespace).
    pub api_server_in_ns: String,
    pub ca_data: String,
    pub ips: Mutex<IpPool>,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Cap on the grace period when the agent itself stops.
    pub shutdown_grace: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kubelet's restart back-off: the first restart is immediate, then base·2ⁿ, capped.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (failures - 1).min(16)).min(max)
}

/// Whether a container that exited with `exit_code` runs again under `policy`.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Watches the pods bound to this node and runs one task per pod until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    struct Worker {
        tx: Option<watch::Sender<Pod>>,
        handle: JoinHandle<()>,
    }
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            e = events.try_next() => e,
            _ = shutdown.changed() => break,
        };
        workers.retain(|_, w| !w.handle.is_finished());
        let apply = |pod: Pod, workers: &mut HashMap<String, Worker>| {
            let Some(uid) = pod.metadata.uid.clone() else {
                return;
            };
            match workers.get(&uid) {
                Some(Worker { tx: Some(tx), .. }) => {
                    tx.send_replace(pod);
                }
                Some(_) => {}
                None => {
                    let (tx, rx) = watch::channel(pod);
                    let handle = tokio::spawn(run_pod(ctx.clone(), rx, shutdown.clone()));
                    workers.insert(
                        uid,
                        Worker {
                            tx: Some(tx),
                            handle,
                        },
                    );
                }
            }
        };
        match event {
            Ok(Some(watcher::Event::Init)) => listed = Some(HashSet::new()),
            Ok(Some(watcher::Event::InitApply(pod))) => {
                if let (Some(seen), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                apply(pod, &mut workers);
            }
            Ok(Some(watcher::Event::InitDone)) => {
                // Pods that vanished while the watch was down.
                if let Some(seen) = listed.take() {
                    for (uid, w) in workers.iter_mut() {
                        if !seen.contains(uid) {
                            w.tx = None;
                        }
                    }
                }
            }
            Ok(Some(watcher::Event::Apply(pod))) => apply(pod, &mut workers),
            Ok(Some(watcher::Event::Delete(pod))) => {
                if let Some(w) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| workers.get_mut(uid))
                {
                    w.tx = None;
                }
            }
            Ok(None) => break,
            Err(e) => tracing::warn!(error = %e, "pod watch"),
        }
    }
    // Each pod task sees `shutdown` and stops its processes.
    for (_, w) in workers {
        let _ = w.handle.await;
    }
    Ok(())
}

/// Shared per-pod state.
struct PodCtx {
    ctx: Arc<Ctx>,
    pod: Pod,
    key: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    runtime: Mutex<PodRuntime>,
    notify: Notify,
    kubeconfig: Option<PathBuf>,
}

impl PodCtx {
    fn update(&self, i: usize, f: impl FnOnce(&mut ContainerRuntime)) {
        f(&mut lock(&self.runtime).containers[i]);
        self.notify.notify_one();
    }
}

async fn run_pod(
    ctx: Arc<Ctx>,
    mut pod_rx: watch::Receiver<Pod>,
    mut shutdown: watch::Receiver<bool>,
) {
    let pod = pod_rx.borrow_and_update().clone();
    let key = pod_key(&pod);
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();

    // A pod that is already deleting or finished is not started (again).
    if pod.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed" {
        run_containers(ctx.clone(), pod.clone(), &mut pod_rx, &mut shutdown).await;
    } else {
        let deleting = |p: &Pod| p.metadata.deletion_timestamp.is_some();
        loop {
            if deleting(&pod_rx.borrow_and_update()) {
                break;
            }
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
    if *shutdown.borrow() {
        return;
    }
    // The pod was deleted gracefully and its processes are gone: finish the deletion.
    let deleting =
        pod_rx.has_changed().is_ok() && pod_rx.borrow().metadata.deletion_timestamp.is_some();
    if deleting {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => tracing::info!(pod = %key, "deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %key, error = %e, "deleting the pod"),
        }
    }
}

/// Runs the pod until it is deleted, vanishes, or the agent stops.
async fn run_containers(
    ctx: Arc<Ctx>,
    pod: Pod,
    pod_rx: &mut watch::Receiver<Pod>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let key = pod_key(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let preferred = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let Some(ip) = lock(&ctx.ips).allocate(preferred) else {
        tracing::error!(pod = %key, "no free pod address");
        return;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.state_dir.join("pods").join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
        uid.get(..8).unwrap_or(&uid)
    ));
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(pod = %key, error = %e, "creating the pod directory");
    }
    tracing::info!(pod = %key, %ip, "starting pod");

    let token = token::projected_token(&pod);
    let pc = Arc::new(PodCtx {
        ctx: ctx.clone(),
        pod: pod.clone(),
        key: key.clone(),
        ip,
        kubeconfig: token.as_ref().map(|_| dir.join("kubeconfig")),
        dir: dir.clone(),
        runtime: Mutex::new(PodRuntime {
            pod_ip: Some(ip.to_string()),
            host_ip: ctx.host_ip.clone(),
            start_time: Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map_or_else(Timestamp::now, |t| t.0),
            ),
            containers: spec
                .containers
                .iter()
                .map(|c| ContainerRuntime::new(&c.name, c.image.as_deref().unwrap_or("")))
                .collect(),
        }),
        notify: Notify::new(),
    });

    let mut background: Vec<JoinHandle<()>> =
        vec![tokio::spawn(sync_status(pc.clone(), pod.status.clone()))];
    let (token_tx, token_rx) = watch::channel(token.is_none());
    if let Some((expiration, audience)) = token {
        background.push(tokio::spawn(refresh_token(
            pc.clone(),
            expiration,
            audience,
            token_tx,
        )));
    }
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.and_then(|h| u16::try_from(h).ok()) else {
                continue;
            };
            if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
                tracing::warn!(pod = %key, host_port, "only TCP hostPorts are forwarded");
                continue;
            }
            let host_ip: Ipv4Addr = p
                .host_ip
                .as_deref()
                .and_then(|h| h.parse().ok())
                .filter(Ipv4Addr::is_loopback)
                .unwrap_or(Ipv4Addr::LOCALHOST);
            let target = SocketAddr::from((ip, u16::try_from(p.container_port).unwrap_or(0)));
            match tokio::net::TcpListener::bind((host_ip, host_port)).await {
                Ok(l) => {
                    tracing::info!(pod = %key, "forwarding {host_ip}:{host_port} to {target}");
                    background.push(tokio::spawn(crate::relay::relay(l, target)));
                }
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "hostPort {host_ip}:{host_port} is not available")
                }
            }
            // Inside the namespace too: on the node's address (as a hostPort is on a real
            // node) and on the namespace's loopback, so `127.0.0.1:<hostPort>` means the same
            // in a pod as on the host.
            let node_ip: Ipv4Addr = ctx.host_ip.parse().unwrap_or(Ipv4Addr::LOCALHOST);
            for addr in [node_ip, Ipv4Addr::LOCALHOST] {
                match ctx.netns.bind(SocketAddr::from((addr, host_port))) {
                    Ok(l) => background.push(tokio::spawn(crate::relay::relay(l, target))),
                    Err(e) => {
                        tracing::warn!(pod = %key, error = %e, "hostPort {addr}:{host_port} in the namespace")
                    }
                }
            }
        }
    }

    let (stop_tx, stop_rx) = watch::channel(None::<Duration>);
    let supervisors: Vec<JoinHandle<()>> = (0..spec.containers.len())
        .map(|i| tokio::spawn(supervise(pc.clone(), i, stop_rx.clone(), token_rx.clone())))
        .collect();

    let grace = loop {
        tokio::select! {
            r = pod_rx.changed() => match r {
                // Gone from the API (force-deleted, or deleted while we were away).
                Err(_) => break Duration::from_secs(2),
                Ok(()) => {
                    let p = pod_rx.borrow_and_update();
                    if p.metadata.deletion_timestamp.is_some() {
                        break grace_period(&p);
                    }
                }
            },
            _ = shutdown.changed() => break grace_period(&pod).min(ctx.shutdown_grace),
        }
    };
    tracing::info!(pod = %key, ?grace, "stopping pod");
    stop_tx.send_replace(Some(grace));
    for s in supervisors {
        let _ = s.await;
    }
    // The last status (containers terminated), unless the agent is going away.
    pc.notify.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for b in background {
        b.abort();
        let _ = b.await;
    }
    lock(&ctx.ips).release(ip);
    let _ = tokio::fs::remove_file(dir.join("token")).await;
    let _ = tokio::fs::remove_file(dir.join("kubeconfig")).await;
}

/// Patches the pod's status whenever it changes (and re-checks every 10 s).
async fn sync_status(pc: Arc<PodCtx>, initial: Option<PodStatus>) {
    let ns = pc.pod.metadata.namespace.clone().unwrap_or_default();
    let name = pc.pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(pc.ctx.client.clone(), &ns);
    let policy = pc
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".to_owned());
    let mut prev = initial;
    let mut sent: Option<PodStatus> = None;
    loop {
        let rt = lock(&pc.runtime).clone();
        let status = compute_status(prev.as_ref(), &rt, &policy, Timestamp::now());
        if sent.as_ref() != Some(&status) {
            let patch = status_patch(&status);
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    tracing::debug!(pod = %pc.key, phase = ?status.phase, "status");
                    prev = Some(status.clone());
                    sent = Some(status);
                }
                Err(e) => {
                    tracing::warn!(pod = %pc.key, error = %e, "patching pod status");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            _ = pc.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

/// A strategic-merge patch of the status. Conditions merge by type, so a field we no
/// longer set (a condition's reason and message once Ready) must be sent as null.
fn status_patch(status: &PodStatus) -> serde_json::Value {
    let mut v = serde_json::json!({ "status": status });
    if let Some(conditions) = v
        .pointer_mut("/status/conditions")
        .and_then(|c| c.as_array_mut())
    {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                for key in ["reason", "message"] {
                    c.entry(key).or_insert(serde_json::Value::Null);
                }
            }
        }
    }
    v
}

/// Keeps `<pod dir>/token` fresh and writes the pod's kubeconfig once.
async fn refresh_token(
    pc: Arc<PodCtx>,
    expiration: i64,
    audience: Option<String>,
    ready: watch::Sender<bool>,
) {
    let token_path = pc.dir.join("token");
    let Some(kubeconfig_path) = pc.kubeconfig.clone() else {
        return;
    };
    let ns = pc.pod.metadata.namespace.clone().unwrap_or_default();
    loop {
        let wait = match token::request(&pc.ctx.client, &pc.pod, expiration, audience.clone()).await
        {
            Ok((jwt, expires)) => {
                let written = async {
                    write_private(&token_path, jwt.as_bytes()).await?;
                    if !*ready.borrow() {
                        let kc = token::pod_kubeconfig(
                            &pc.ctx.api_server_in_ns,
                            &pc.ctx.ca_data,
                            &ns,
                            &token_path.to_string_lossy(),
                        );
                        write_private(&kubeconfig_path, kc.as_bytes()).await?;
                    }
                    Ok::<_, Error>(())
                }
                .await;
                match written {
                    Ok(()) => {
                        ready.send_replace(true);
                        let now = Timestamp::now();
                        let at = token::refresh_at(now, expires);
                        Duration::from_secs(
                            u64::try_from(at.as_second() - now.as_second())
                                .unwrap_or(0)
                                .max(10),
                        )
                    }
                    Err(e) => {
                        tracing::warn!(pod = %pc.key, error = %e, "writing the service-account token");
                        Duration::from_secs(2)
                    }
                }
            }
            Err(e) => {
                tracing::warn!(pod = %pc.key, error = %e, "requesting the service-account token");
                Duration::from_secs(2)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let p = tmp.clone();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)?;
        f.write_all(&bytes)
    })
    .await
    .map_err(|e| Error::Config(e.to_string()))?
    .map_err(Error::io(format!("writing {}", tmp.display())))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// What a container runs with, or the waiting reason and message.
struct Prepared {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    workdir: PathBuf,
}

async fn prepare(pc: &PodCtx, c: &Container) -> Result<Prepared, (String, String)> {
    let ctx = &pc.ctx;
    let image = c.image.as_deref().unwrap_or("");
    let map =
        ImageMap::load(&ctx.image_map).map_err(|e| ("ErrImagePull".to_owned(), e.to_string()))?;
    let Some(entry) = map.resolve(image) else {
        return Err((
            "ErrImagePull".to_owned(),
            format!(
                "image {image:?} is not in the node's image map {} (add an entry for {image:?} or {:?})",
                ctx.image_map.display(),
                repository(image)
            ),
        ));
    };
    let ns = pc.pod.metadata.namespace.as_deref().unwrap_or("default");
    let (secret_names, cm_names) = referenced_objects(&pc.pod);
    let mut secrets = BTreeMap::new();
    let mut config_maps = BTreeMap::new();
    let config_err = |e: kube::Error| ("CreateContainerConfigError".to_owned(), e.to_string());
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for n in secret_names {
        if let Some(s) = secrets_api.get_opt(&n).await.map_err(config_err)? {
            secrets.insert(n, s);
        }
    }
    let cm_api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for n in cm_names {
        if let Some(cm) = cm_api.get_opt(&n).await.map_err(config_err)? {
            config_maps.insert(n, cm);
        }
    }
    let pod_ip = pc.ip.to_string();
    let src = EnvSources {
        pod: &pc.pod,
        pod_ip: &pod_ip,
        host_ip: &ctx.host_ip,
        node_name: &ctx.node_name,
        secrets: &secrets,
        config_maps: &config_maps,
    };
    let mut env = container_env(c, &entry.env, &src)
        .map_err(|m| ("CreateContainerConfigError".to_owned(), m))?;
    for var in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(var) {
            env.entry(var.to_owned()).or_insert(v);
        }
    }
    if let Some(kc) = &pc.kubeconfig {
        env.entry("KUBECONFIG".to_owned())
            .or_insert_with(|| kc.to_string_lossy().into_owned());
    }
    let argv = build_command(entry, c.command.as_deref(), c.args.as_deref(), &|n| {
        env.get(n).cloned()
    });
    let workdir = entry
        .workdir
        .clone()
        .or_else(|| c.working_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| pc.dir.clone());
    Ok(Prepared { argv, env, workdir })
}

/// Runs one container: start, probe, restart with back-off, stop on request.
async fn supervise(
    pc: Arc<PodCtx>,
    i: usize,
    mut stop: watch::Receiver<Option<Duration>>,
    mut token_ready: watch::Receiver<bool>,
) {
    let spec = pc.pod.spec.clone().unwrap_or_default();
    let c = spec.containers[i].clone();
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".to_owned());
    let ctx = pc.ctx.clone();
    let log_path = pc.dir.join(format!("{}.log", c.name));
    let mut failures: u32 = 0;
    let mut has_run = false;

    // Wait for the ServiceAccount token (if any) before the first start.
    while !*token_ready.borrow_and_update() {
        tokio::select! {
            r = token_ready.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }

    loop {
        if stop.borrow().is_some() {
            return;
        }
        let prepared = match prepare(&pc, &c).await {
            Ok(p) => p,
            Err((mut reason, message)) => {
                let delay = backoff_delay(failures.max(1), ctx.backoff, ctx.max_backoff);
                if reason == "ErrImagePull" && failures > 0 {
                    reason = "ImagePullBackOff".to_owned();
                }
                tracing::warn!(pod = %pc.key, container = %c.name, %reason, %message, "cannot start container");
                failures += 1;
                pc.update(i, |r| {
                    r.state = RunState::Waiting {
                        reason,
                        message: Some(message),
                    }
                });
                if wait_or_stop(&mut stop, delay).await {
                    return;
                }
                continue;
            }
        };

        let started_at = Timestamp::now();
        let child = spawn(&ctx.netns, &prepared, &log_path, has_run).await;
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                let t = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".to_owned(),
                    message: Some(e.to_string()),
                    started_at: Some(started_at),
                    finished_at: Timestamp::now(),
                };
                tracing::warn!(pod = %pc.key, container = %c.name, error = %e, "start failed");
                if !should_restart(&policy, t.exit_code) {
                    pc.update(i, |r| r.state = RunState::Terminated(t));
                    let _ = stop.changed().await;
                    return;
                }
                let delay = backoff_delay(failures.max(1), ctx.backoff, ctx.max_backoff);
                failures += 1;
                pc.update(i, |r| {
                    r.last_terminated = Some(t);
                    r.state = RunState::Waiting {
                        reason: "CrashLoopBackOff".to_owned(),
                        message: Some(e.to_string()),
                    };
                });
                if wait_or_stop(&mut stop, delay).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        tracing::info!(pod = %pc.key, container = %c.name, pid, argv = ?prepared.argv, "container started");
        let pod_ip = pc.ip.to_string();
        let startup = c.startup_probe.as_ref().map(|p| probe_spec(p, &c, &pod_ip));
        let readiness = c
            .readiness_probe
            .as_ref()
            .map(|p| probe_spec(p, &c, &pod_ip));
        let liveness = c
            .liveness_probe
            .as_ref()
            .map(|p| probe_spec(p, &c, &pod_ip));
        pc.update(i, |r| {
            if has_run {
                r.restart_count += 1;
            }
            r.state = RunState::Running { started_at, pid };
            r.started = startup.is_none();
            r.ready = startup.is_none() && readiness.is_none();
        });
        has_run = true;
        let (kill_tx, mut kill_rx) = mpsc::channel::<String>(1);
        let prober = tokio::spawn(probe_container(
            pc.clone(),
            i,
            startup,
            readiness,
            liveness,
            kill_tx,
        ));

        enum Outcome {
            Exited,
            Stopped,
            Unhealthy(String),
        }
        let mut outcome = tokio::select! {
            _ = child.wait() => Outcome::Exited,
            _ = stop.changed() => Outcome::Stopped,
            Some(why) = kill_rx.recv() => Outcome::Unhealthy(why),
        };
        prober.abort();
        let _ = prober.await;
        pc.update(i, |r| r.ready = false);
        let grace = match &outcome {
            Outcome::Exited => Duration::ZERO,
            Outcome::Stopped => stop.borrow().unwrap_or(Duration::ZERO),
            Outcome::Unhealthy(why) => {
                tracing::info!(pod = %pc.key, container = %c.name, %why, "restarting an unhealthy container");
                grace_period(&pc.pod)
            }
        };
        // Either a deletion or an agent shutdown can arrive while we handle a liveness kill.
        if !matches!(outcome, Outcome::Stopped) && stop.borrow().is_some() {
            outcome = Outcome::Stopped;
        }
        let status = terminate(&mut child, pid, grace).await;
        let t = Terminated::from_exit(
            status.as_ref().and_then(std::process::ExitStatus::code),
            status
                .as_ref()
                .and_then(std::os::unix::process::ExitStatusExt::signal),
            started_at,
            Timestamp::now(),
        );
        tracing::info!(pod = %pc.key, container = %c.name, pid, exit_code = t.exit_code, "container exited");
        if matches!(outcome, Outcome::Stopped) {
            pc.update(i, |r| r.state = RunState::Terminated(t));
            return;
        }
        if !should_restart(&policy, t.exit_code) {
            pc.update(i, |r| r.state = RunState::Terminated(t));
            let _ = stop.changed().await;
            return;
        }
        // Ten minutes of good running forgets earlier crashes, as the kubelet does.
        if t.finished_at.as_second() - started_at.as_second() > 600 {
            failures = 0;
        }
        let delay = backoff_delay(failures, ctx.backoff, ctx.max_backoff);
        failures += 1;
        let message = format!(
            "back-off {}s restarting failed container={} pod={}",
            delay.as_secs(),
            c.name,
            pc.pod.metadata.name.as_deref().unwrap_or("")
        );
        pc.update(i, |r| {
            r.state = if delay.is_zero() {
                RunState::Terminated(t.clone())
            } else {
                RunState::Waiting {
                    reason: "CrashLoopBackOff".to_owned(),
                    message: Some(message),
                }
            };
            r.last_terminated = Some(t);
        });
        if wait_or_stop(&mut stop, delay).await {
            pc.update(i, |r| {
                if let Some(t) = r.last_terminated.clone() {
                    r.state = RunState::Terminated(t);
                }
            });
            return;
        }
    }
}

/// Sleeps for `delay`; true if a stop request came first.
async fn wait_or_stop(stop: &mut watch::Receiver<Option<Duration>>, delay: Duration) -> bool {
    if stop.borrow().is_some() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => stop.borrow().is_some(),
        _ = stop.changed() => true,
    }
}

async fn spawn(
    netns: &Netns,
    p: &Prepared,
    log_path: &Path,
    restart: bool,
) -> Result<tokio::process::Child> {
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(Error::io(format!("opening {}", log_path.display())))?;
    let _ = writeln!(
        log,
        "--- {} {} at {}: {:?}",
        if restart { "restarted" } else { "started" },
        log_path
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        Timestamp::now(),
        p.argv
    );
    let stderr = log.try_clone().map_err(Error::io("cloning the log file"))?;
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", &netns.name])
        .args(&p.argv)
        .env_clear()
        .envs(&p.env)
        .current_dir(&p.workdir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // Its own process group: signals reach the whole container.
        .process_group(0)
        .kill_on_drop(false);
    cmd.spawn()
        .map_err(|e| Error::Config(format!("starting {:?}: {e}", p.argv)))
}

/// SIGTERM to the process group, SIGKILL after `grace`; then SIGKILL to any stray left in
/// the group. Returns the main process's exit status.
async fn terminate(
    child: &mut tokio::process::Child,
    pid: u32,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    let group = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
    if let Ok(Some(status)) = child.try_wait() {
        let _ = killpg(group, Signal::SIGKILL);
        return Some(status);
    }
    let _ = killpg(group, Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::info!(pid, "grace period over: SIGKILL");
            let _ = killpg(group, Signal::SIGKILL);
            child.wait().await.ok()
        }
    };
    let _ = killpg(group, Signal::SIGKILL);
    status
}

/// Startup probe first; then readiness and liveness side by side. A failed startup or
/// liveness probe asks the supervisor (through `kill`) to restart the container.
async fn probe_container(
    pc: Arc<PodCtx>,
    i: usize,
    startup: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
    liveness: Option<ProbeSpec>,
    kill: mpsc::Sender<String>,
) {
    let ns = pc.ctx.netns.name.clone();
    if let Some(spec) = startup {
        tokio::time::sleep(spec.initial_delay).await;
        let mut failures = 0;
        loop {
            match run_once(&spec, &ns).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if failures >= spec.failure_threshold {
                        let _ = kill.send(format!("startup probe failed: {e}")).await;
                        return;
                    }
                }
            }
            tokio::time::sleep(spec.period).await;
        }
        let no_readiness = readiness.is_none();
        pc.update(i, |r| {
            r.started = true;
            r.ready = no_readiness;
        });
    }
    let ready_loop = async {
        let Some(spec) = readiness else { return };
        tokio::time::sleep(spec.initial_delay).await;
        let (mut ok, mut bad) = (0, 0);
        loop {
            match run_once(&spec, &ns).await {
                Ok(()) => {
                    ok += 1;
                    bad = 0;
                    if ok >= spec.success_threshold {
                        let changed = !lock(&pc.runtime).containers[i].ready;
                        if changed {
                            tracing::info!(pod = %pc.key, container = i, "ready");
                            pc.update(i, |r| r.ready = true);
                        }
                    }
                }
                Err(e) => {
                    bad += 1;
                    ok = 0;
                    if bad >= spec.failure_threshold && lock(&pc.runtime).containers[i].ready {
                        tracing::info!(pod = %pc.key, container = i, error = %e, "not ready");
                        pc.update(i, |r| r.ready = false);
                    }
                }
            }
            tokio::time::sleep(spec.period).await;
        }
    };
    let live_loop = async {
        let Some(spec) = liveness else { return };
        tokio::time::sleep(spec.initial_delay).await;
        let mut bad = 0;
        loop {
            match run_once(&spec, &ns).await {
                Ok(()) => bad = 0,
                Err(e) => {
                    bad += 1;
                    if bad >= spec.failure_threshold {
                        let _ = kill.send(format!("liveness probe failed: {e}")).await;
                        return;
                    }
                }
            }
            tokio::time::sleep(spec.period).await;
        }
    };
    tokio::join!(ready_loop, live_loop);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_restart_and_caps() {
        let (b, m) = (Duration::from_secs(10), Duration::from_secs(300));
        let d: Vec<u64> = (0..8).map(|n| backoff_delay(n, b, m).as_secs()).collect();
        assert_eq!(d, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff_delay(40, b, m), m);
    }

    #[test]
    fn status_patch_clears_stale_condition_fields() {
        let status = PodStatus {
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..PodStatus::default()
        };
        let patch = status_patch(&status);
        assert_eq!(
            patch.pointer("/status/conditions/0/reason"),
            Some(&serde_json::Value::Null)
        );
        assert_eq!(
            patch.pointer("/status/conditions/0/message"),
            Some(&serde_json::Value::Null)
        );
        assert_eq!(
            patch.pointer("/status/conditions/0/status"),
            Some(&serde_json::json!("True"))
        );
    }

    #[test]
    fn restart_policy() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn grace_prefers_the_deletion_request() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [], "terminationGracePeriodSeconds": 7}
        }))
        .expect("pod");
        assert_eq!(grace_period(&pod), Duration::from_secs(7));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(grace_period(&pod), Duration::from_secs(2));
        pod.spec = None;
        pod.metadata.deletion_grace_period_seconds = None;
        assert_eq!(grace_period(&pod), Duration::from_secs(30));
    }
}
