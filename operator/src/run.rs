//! Flags and the process: admin and autoscaler ports, leader election, then (as leader)
//! the watches, the controller and the autoscaler loop.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use apiroutes_crds::{
    ApiRoute, RouteGrant,
    labels::{LEADER, owned_selector},
};
use apiroutes_kit::{
    admin::{self, Readiness},
    reflect::{Ready, apis, drop_managed_fields, reflect},
    telemetry::Telemetry,
};
use clap::Parser;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{reflector::store::Writer, watcher},
};
use serde_json::json;
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    auth::Authenticator,
    cache::{CachedDeployment, CachedService, trim_pod, trim_route},
    controller::{self, Context},
    error::{Error, Result},
    events::{Events, Reporter},
    http::serve,
    leader::{Elector, Fence, LeaseConfig, fenced_client, lease_client_config},
    metrics::Metrics,
    resources::{Config, GatewayPeer},
    scaler::{self, Scaler},
};

pub use apiroutes_kit::LogFormat;

/// Reconciles ApiRoutes into Deployments and Services and scales them (down to zero).
#[derive(Clone, Debug, Parser)]
#[command(name = "apiroutes-operator", version, about)]
pub struct Args {
    /// Kubeconfig file; else in-cluster config or $KUBECONFIG / ~/.kube/config.
    #[arg(long, env = "APIROUTES_OPERATOR_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace to watch (repeatable, or comma-separated); default all namespaces.
    #[arg(
        long = "namespace",
        env = "APIROUTES_OPERATOR_NAMESPACE",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "APIROUTES_OPERATOR_ADMIN_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub admin_listen: SocketAddr,
    /// Identities allowed to push to the autoscaler (comma-separated, e.g.
    /// `system:serviceaccount:apiroutes-system:apiroutes-gateway`): callers present a
    /// ServiceAccount token bound to the audience `apiroutes-autoscaler`, checked with a
    /// TokenReview. Empty: pushes are not authenticated.
    #[arg(
        long = "autoscaler-allowed-identity",
        env = "APIROUTES_OPERATOR_AUTOSCALER_ALLOWED_IDENTITIES",
        value_delimiter = ','
    )]
    pub autoscaler_allowed_identities: Vec<String>,
    /// Address of the autoscaler endpoint (POST /v1/demand, /v1/load).
    #[arg(
        long,
        env = "APIROUTES_OPERATOR_AUTOSCALER_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    pub autoscaler_listen: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "APIROUTES_OPERATOR_LEASE_NAME",
        default_value = "apiroutes-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (and of this pod); default $POD_NAMESPACE, else "default".
    #[arg(long, env = "APIROUTES_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This pod's name ($POD_NAME): the leader labels its pod apiroutes.dev/leader=true.
    #[arg(long, env = "APIROUTES_OPERATOR_POD_NAME")]
    pub pod_name: Option<String>,
    /// Gateway base URL for status.url (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "APIROUTES_OPERATOR_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Namespace of the gateways' pods. With --gateway-pod-label, every route gets a
    /// NetworkPolicy admitting only those pods to its functions.
    #[arg(
        long,
        env = "APIROUTES_OPERATOR_GATEWAY_NAMESPACE",
        requires = "gateway_pod_labels"
    )]
    pub gateway_namespace: Option<String>,
    /// `KEY=VALUE` label of the gateways' pods (repeatable; all must match).
    #[arg(
        long = "gateway-pod-label",
        value_name = "KEY=VALUE",
        requires = "gateway_namespace",
        value_parser = parse_label
    )]
    pub gateway_pod_labels: Vec<(String, String)>,
    #[arg(
        long,
        env = "APIROUTES_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "APIROUTES_OPERATOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub telemetry: apiroutes_kit::telemetry::TelemetryArgs,
}

/// How long the leader's tasks get to stop (and each best-effort call after leading), well
/// under the lease duration: their writes are already fenced.
const STOP_GRACE: Duration = Duration::from_secs(2);

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}`: expected KEY=VALUE")),
    }
}

impl Args {
    fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_owned())
    }

    fn pod_name(&self) -> Option<String> {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
    }

    fn identity(&self) -> String {
        self.pod_name().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    pub async fn kube_config(&self) -> Result<kube::Config> {
        apiroutes_kit::cluster::config(self.kubeconfig.as_deref())
            .await
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Runs until SIGTERM (Ok) or until leadership is lost (Err, so the process restarts
    /// as a fresh candidate). With an OTLP endpoint, its `tracing` spans (reconciles) are
    /// exported, and flushed before it returns.
    pub async fn run(self) -> Result<()> {
        let telemetry = Telemetry::init(&self.telemetry, "apiroutes-operator")?;
        apiroutes_kit::init_logging_with(self.log_format, &self.log_level, telemetry.as_ref());
        if let Some(t) = &telemetry {
            t.log_started();
        }
        let result = self.operate().await;
        if let Some(t) = telemetry {
            t.shutdown().await;
        }
        result
    }

    async fn operate(self) -> Result<()> {
        let metrics = Arc::new(Metrics::new()?);
        // Three clients: plain (TokenReviews, which standbys make too), the leader's (every
        // write fenced by the Lease), and the elector's (short read timeout).
        let kube_config = self.kube_config().await?;
        let client = Client::try_from(kube_config.clone())?;
        let fence = Fence::default();
        let leader_client = fenced_client(kube_config.clone(), fence.clone())?;
        let lease_client = Client::try_from(lease_client_config(kube_config))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(apiroutes_kit::cancel_on_signal(shutdown.clone()));

        // Standby instances are ready (they can take over); the leader is not while its
        // caches sync.
        let ready = Arc::new(Readiness::default());
        ready.set_ready();
        let admin = TcpListener::bind(self.admin_listen).await?;
        let admin_task = tokio::spawn(admin::serve(
            admin,
            Arc::new(admin::Admin {
                registry: metrics.registry.clone(),
                ready: Arc::clone(&ready),
                extra: None,
            }),
            admin::AdminConfig::default(),
            shutdown.clone(),
        ));
        let slot: Arc<OnceLock<Arc<Scaler>>> = Arc::new(OnceLock::new());
        let autoscaler = TcpListener::bind(self.autoscaler_listen).await?;
        let s = slot.clone();
        let auth = Authenticator::new(client.clone(), self.autoscaler_allowed_identities.clone())
            .map(Arc::new);
        if auth.is_none() {
            warn!(
                "--autoscaler-allowed-identity is not set: pushes to the autoscaler are not authenticated"
            );
        }
        let m = metrics.clone();
        let autoscaler_task = tokio::spawn(serve(
            autoscaler,
            move |req| scaler::handle(s.clone(), auth.clone(), m.clone(), req),
            shutdown.clone(),
        ));
        info!(admin = %self.admin_listen, autoscaler = %self.autoscaler_listen, "listening");

        let lease = LeaseConfig::new(
            self.lease_name.clone(),
            self.lease_namespace(),
            self.identity(),
        );
        let mut elector = Elector::new(lease_client.clone(), lease, fence.clone());
        info!(identity = elector.identity(), lease = %self.lease_name, "waiting for the leader lease");
        // A previous process in this pod may have lost the Lease without removing the label
        // (the API server was unreachable): a standby clears it before anything else.
        let mut unlabelled = false;
        loop {
            if !unlabelled {
                unlabelled = self.set_leader_label(&lease_client, false).await;
            }
            let until = Instant::now() + elector.config().renew_deadline;
            match elector.attempt(until).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tokio::join!(admin_task, autoscaler_task);
                    return Ok(());
                }
                _ = tokio::time::sleep(elector.config().renew_every) => {}
            }
        }
        info!("became the leader");
        metrics.leader.set(1);
        ready.set(false);
        let leading = CancellationToken::new();
        // Through the fenced client: a label write cannot outlive the leadership.
        let label_task = tokio::spawn(self.clone().label_until_done(leader_client.clone()));

        let grants_installed =
            apiroutes_crds::served::resource_served(&Api::<RouteGrant>::all(leader_client.clone()))
                .await;
        if !grants_installed {
            warn!(
                "the RouteGrant CRD is not installed: isolation between namespaces is off \
                 (apply charts/apiroutes/crds/ and restart to enable it)"
            );
        }
        let (controller_task, scaler_task) = self.lead(
            &leader_client,
            &metrics,
            &ready,
            &slot,
            &leading,
            grants_installed,
        );
        let lost = tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = elector.keep() => true,
        };
        // Writes stop first (keep() closed the fence on loss; on shutdown it is closed
        // here), then the work is stopped, promptly: the fence makes waiting pointless.
        fence.close();
        metrics.leader.set(0);
        let stopping = Instant::now();
        leading.cancel();
        label_task.abort();
        for task in [controller_task, scaler_task] {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        info!(
            millis = stopping.elapsed().as_millis(),
            "stopped leading (controller and autoscaler)"
        );
        // Best effort, bounded: after a loss the API server may be the thing that is down;
        // the next process in this pod clears the label if this fails.
        let _ = tokio::time::timeout(STOP_GRACE, self.set_leader_label(&lease_client, false)).await;
        if lost {
            error!("lost the leader lease; exiting so a fresh candidate restarts");
            shutdown.cancel();
            return Err(Error::LeaseLost);
        }
        match tokio::time::timeout(STOP_GRACE, elector.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "releasing the leader lease"),
            Err(_) => warn!("releasing the leader lease timed out"),
        }
        let _ = tokio::join!(admin_task, autoscaler_task);
        info!("stopped");
        Ok(())
    }

    /// Starts the leader's work: watches, controller, autoscaler.
    fn lead(
        &self,
        client: &Client,
        metrics: &Arc<Metrics>,
        readiness: &Arc<Readiness>,
        slot: &Arc<OnceLock<Arc<Scaler>>>,
        leading: &CancellationToken,
        grants_installed: bool,
    ) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
        let owned = watcher::Config::default().labels(&owned_selector());
        let routes_w = Writer::<ApiRoute>::default();
        let deps_w = Writer::<CachedDeployment>::default();
        let svcs_w = Writer::<CachedService>::default();
        let pods_w = Writer::<Pod>::default();
        let grants_w = Writer::<RouteGrant>::default();
        let (routes, deps, svcs, pods, grants) = (
            routes_w.as_reader(),
            deps_w.as_reader(),
            svcs_w.as_reader(),
            pods_w.as_reader(),
            grants_w.as_reader(),
        );
        let ns = &self.namespaces;
        let (routes_ready, route_stream) = reflect(
            apis::<ApiRoute>(client, ns),
            watcher::Config::default(),
            trim_route,
            routes_w,
        );
        let (deps_ready, dep_stream) = reflect(
            apis::<CachedDeployment>(client, ns),
            owned.clone(),
            |_| {},
            deps_w,
        );
        let (svcs_ready, svc_stream) = reflect(
            apis::<CachedService>(client, ns),
            owned.clone(),
            |_| {},
            svcs_w,
        );
        let (pods_ready, pod_stream) = reflect(apis::<Pod>(client, ns), owned, trim_pod, pods_w);
        // The controller maps children and pods to routes from the objects themselves.
        let dep_stream = dep_stream.map(|t| t.map(|t| Arc::unwrap_or_clone(t.obj)));
        let svc_stream = svc_stream.map(|t| t.map(|t| Arc::unwrap_or_clone(t.obj)));
        let pod_stream = pod_stream.map(|t| t.map(|t| Arc::unwrap_or_clone(t.obj)));
        // RouteGrants are cluster-scoped: one watch whatever namespaces are watched. Without
        // the CRD (not yet applied after an upgrade) no grant can exist: isolation is off,
        // and with no watch the store is ready at once, so reconciles do not wait for it.
        let grant_apis = if grants_installed {
            vec![(None, Api::<RouteGrant>::all(client.clone()))]
        } else {
            vec![]
        };
        let (grants_ready, grant_stream) = reflect(
            grant_apis,
            watcher::Config::default(),
            drop_managed_fields,
            grants_w,
        );

        let reporter = Reporter {
            controller: apiroutes_crds::labels::FIELD_MANAGER.to_owned(),
            instance: self
                .pod_name()
                .unwrap_or_else(|| apiroutes_crds::labels::FIELD_MANAGER.to_owned()),
        };
        let ctx = Arc::new(Context {
            client: client.clone(),
            config: Config {
                gateway_url: self.gateway_url.clone(),
                gateway_peer: self.gateway_namespace.clone().map(|namespace| GatewayPeer {
                    namespace,
                    labels: self.gateway_pod_labels.iter().cloned().collect(),
                }),
            },
            routes: routes.clone(),
            grants,
            deployments: deps.clone(),
            services: svcs.clone(),
            pods: pods.clone(),
            events: Events::start(client.clone(), reporter, metrics.events_dropped.clone()),
            metrics: metrics.clone(),
            failures: Default::default(),
            listed: vec![
                grants_ready,
                deps_ready.clone(),
                svcs_ready.clone(),
                pods_ready.clone(),
            ],
            policies: Default::default(),
            groups: Default::default(),
        });
        let triggers = stream::select(
            controller::route_triggers(route_stream, routes.clone(), ctx.groups.clone()).boxed(),
            controller::grant_triggers(grant_stream, routes.clone()).boxed(),
        );
        let c = ctx.clone();
        let controller =
            controller::controller(triggers, dep_stream, svc_stream, pod_stream, routes.clone())
                .graceful_shutdown_on(leading.clone().cancelled_owned())
                .run(controller::reconcile, controller::error_policy, ctx)
                .for_each(move |res| controller::on_result(c.clone(), res));
        let controller_task = tokio::spawn(controller);

        let scaler = Arc::new(Scaler::new(
            client.clone(),
            routes.clone(),
            deps.clone(),
            metrics.clone(),
        ));
        let _ = slot.set(scaler.clone());
        let (r, l) = (Arc::clone(readiness), leading.clone());
        let scaler_task = tokio::spawn(async move {
            // Decide only on synced caches (a new leader starts from the replicas it finds).
            let caches = [routes_ready, deps_ready, svcs_ready, pods_ready];
            let synced = Ready::all(&caches);
            tokio::select! {
                _ = l.cancelled() => return,
                _ = synced => {}
            }
            r.set_ready();
            info!("caches synced");
            scaler.run(l).await;
        });
        (controller_task, scaler_task)
    }

    /// Labels this pod as the leader, retrying until it is done (or the task is aborted
    /// when leadership ends).
    async fn label_until_done(self, client: Client) {
        while !self.set_leader_label(&client, true).await {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Sets or removes `apiroutes.dev/leader=true` on this pod (best effort); whether done.
    async fn set_leader_label(&self, client: &Client, leader: bool) -> bool {
        let Some(pod) = self.pod_name() else {
            return true;
        };
        let ns = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| self.lease_namespace());
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let value = if leader { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"labels": {LEADER: value}}});
        let pp = PatchParams {
            field_manager: Some(apiroutes_crds::labels::FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match api.patch(&pod, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => true,
            Err(e) => {
                warn!(pod, leader, error = %e, "labelling this pod as leader");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse_with_defaults_and_repeats() {
        let a = Args::try_parse_from(["op", "--namespace", "a", "--namespace", "b,c"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.namespaces, vec!["a", "b", "c"]);
        assert_eq!(a.admin_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(a.autoscaler_listen.to_string(), "0.0.0.0:8081");
        assert_eq!(a.lease_name, "apiroutes-operator");
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!(a.gateway_namespace, None);
        assert_eq!(a.telemetry.otlp_endpoint, None);
        let a = Args::try_parse_from(["op", "--otlp-endpoint", "http://collector:4318"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
    }

    #[test]
    fn gateway_peer_flags_go_together() {
        let a = Args::try_parse_from([
            "op",
            "--gateway-namespace",
            "apiroutes-system",
            "--gateway-pod-label",
            "app.kubernetes.io/component=gateway",
            "--gateway-pod-label",
            "app.kubernetes.io/instance=apiroutes",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.gateway_pod_labels.len(), 2);
        assert!(Args::try_parse_from(["op", "--gateway-namespace", "x"]).is_err());
        assert!(Args::try_parse_from(["op", "--gateway-pod-label", "a=b"]).is_err());
        let err = Args::try_parse_from([
            "op",
            "--gateway-namespace",
            "x",
            "--gateway-pod-label",
            "ab",
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("expected KEY=VALUE"), "{err}");
    }
}
