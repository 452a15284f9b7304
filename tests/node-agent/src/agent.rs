//! Flags and the agent's life: namespace, API forwarder, Node, pods, clean exit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use k8s_openapi::jiff::Timestamp;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::imagemap::ImageMap;
use crate::ipam::IpPool;
use crate::netns::Netns;
use crate::node::{self, NodeInfo};
use crate::pods::{self, Ctx};

/// A kubelet for one local Node: runs the pods bound to it as processes inside a network
/// namespace (tests and demo only; run as root).
#[derive(Debug, Parser)]
#[command(name = "apiroutes-node-agent", version)]
pub struct Args {
    /// Kubeconfig of the node's identity (system:node:<name> in system:nodes).
    #[arg(long, env = "APIROUTES_NODE_KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// YAML map from container image to local command.
    #[arg(long, env = "APIROUTES_NODE_IMAGE_MAP")]
    pub image_map: PathBuf,
    /// Where pod logs, tokens and kubeconfigs go.
    #[arg(long, env = "APIROUTES_NODE_STATE_DIR")]
    pub state_dir: PathBuf,
    #[arg(long, env = "APIROUTES_NODE_NAME", default_value = "local-node")]
    pub node_name: String,
    /// Network namespace created for the node (a stale one of this name is removed).
    #[arg(long, env = "APIROUTES_NODE_NETNS", default_value = "apiroutes-node")]
    pub netns: String,
    /// Host end of the veth pair (never gets an address).
    #[arg(long, env = "APIROUTES_NODE_HOST_VETH", default_value = "apiroutes0")]
    pub host_veth: String,
    /// This node's pod addresses (the first one is the node's own).
    #[arg(long, env = "APIROUTES_NODE_POD_CIDR", default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    /// The range routed to the namespace and bindable inside it.
    #[arg(
        long,
        env = "APIROUTES_NODE_CLUSTER_CIDR",
        default_value = "10.244.0.0/16"
    )]
    pub cluster_cidr: String,
    /// First restart back-off (doubles per crash).
    #[arg(long, env = "APIROUTES_NODE_BACKOFF_SECONDS", default_value_t = 10)]
    pub backoff_seconds: u64,
    #[arg(
        long,
        env = "APIROUTES_NODE_MAX_BACKOFF_SECONDS",
        default_value_t = 300
    )]
    pub max_backoff_seconds: u64,
    /// Cap on pods' grace periods when the agent itself stops.
    #[arg(
        long,
        env = "APIROUTES_NODE_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 5
    )]
    pub shutdown_grace_seconds: u64,
    /// Logs as JSON lines.
    #[arg(long, env = "APIROUTES_NODE_LOG_JSON")]
    pub log_json: bool,
}

impl Args {
    pub async fn run(self) -> Result<()> {
        init_tracing(self.log_json);
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let ca_data = current_ca_data(&kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let api_target = loopback_target(&config.cluster_url)?;
        let client = kube::Client::try_from(config)?;
        ImageMap::load(&self.image_map)?;
        let pool = IpPool::new(&self.pod_cidr).map_err(Error::Config)?;
        let host_ip = pool.node_ip().to_string();
        let state_dir = std::path::absolute(&self.state_dir).map_err(Error::io("state dir"))?;
        std::fs::create_dir_all(&state_dir)
            .map_err(Error::io(format!("creating {}", state_dir.display())))?;

        let netns = Netns {
            name: self.netns.clone(),
            host_veth: self.host_veth.clone(),
            pod_veth: "eth0".to_owned(),
            cluster_cidr: self.cluster_cidr.clone(),
        };
        netns.setup().await?;
        tracing::info!(netns = %netns.name, cidr = %netns.cluster_cidr, "network namespace ready");
        let ctx = Arc::new(Ctx {
            client,
            node_name: self.node_name.clone(),
            host_ip: host_ip.clone(),
            netns: netns.clone(),
            image_map: std::path::absolute(&self.image_map).map_err(Error::io("image map path"))?,
            state_dir,
            api_server_in_ns: format!("https://127.0.0.1:{}", api_target.port()),
            ca_data,
            ips: Mutex::new(pool),
            backoff: Duration::from_secs(self.backoff_seconds),
            max_backoff: Duration::from_secs(self.max_backoff_seconds),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
        });
        let result = self.serve(ctx, api_target, host_ip).await;
        netns.teardown().await;
        tracing::info!(netns = %netns.name, "network namespace removed");
        result
    }

    async fn serve(&self, ctx: Arc<Ctx>, api_target: SocketAddr, host_ip: String) -> Result<()> {
        // Pods reach the API server on the namespace's own 127.0.0.1 at the same port.
        let listener = ctx
            .netns
            .bind(SocketAddr::from(([127, 0, 0, 1], api_target.port())))?;
        let forwarder = tokio::spawn(crate::relay::relay(listener, api_target));

        let info = NodeInfo {
            name: self.node_name.clone(),
            pod_cidr: self.pod_cidr.clone(),
            internal_ip: host_ip,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib: node::memory_kib(),
            max_pods: 110,
        };
        let node = node::register(&ctx.client, &info).await?;
        let node_uid = node.metadata.uid.unwrap_or_default();
        let since = Timestamp::now();
        node::heartbeat(&ctx.client, &info, &node_uid, since).await?;
        tracing::info!(node = %info.name, "node registered and ready");
        let heartbeat_client = ctx.client.clone();
        let heartbeats = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if let Err(e) = node::heartbeat(&heartbeat_client, &info, &node_uid, since).await {
                    tracing::warn!(error = %e, "node heartbeat");
                }
            }
        });

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut pods = tokio::spawn(pods::run(ctx.clone(), shutdown_rx));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::io("installing the SIGTERM handler"))?;
        let early = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = term.recv() => None,
            r = &mut pods => Some(r),
        };
        tracing::info!("stopping: pods first, then the namespace");
        shutdown_tx.send_replace(true);
        let result = match early {
            Some(r) => r,
            None => pods.await,
        };
        heartbeats.abort();
        forwarder.abort();
        result.map_err(|e| Error::Config(format!("pod loop: {e}")))?
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The base64 CA of the kubeconfig's current cluster (pods' kubeconfigs carry it).
fn current_ca_data(kc: &Kubeconfig) -> Result<String> {
    let ctx_name = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| Error::Config(format!("kubeconfig has no context {ctx_name:?}")))?;
    kc.clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| {
            Error::Config("the kubeconfig's cluster needs certificate-authority-data".to_owned())
        })
}

/// The API server's address; it must be on loopback (that is all the forwarder relays to).
fn loopback_target(url: &http::Uri) -> Result<SocketAddr> {
    let host = url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .map_err(|_| Error::Config(format!("API server {url} must be a loopback IP address")))?;
    if !ip.is_loopback() {
        return Err(Error::Config(format!(
            "API server {url} is not on loopback"
        )));
    }
    let port = url.port_u16().unwrap_or(443);
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn api_server_must_be_loopback() {
        let ok: http::Uri = "https://127.0.0.1:6443".parse().expect("uri");
        assert_eq!(
            loopback_target(&ok).expect("ok"),
            SocketAddr::from(([127, 0, 0, 1], 6443))
        );
        let bad: http::Uri = "https://10.0.0.1:6443".parse().expect("uri");
        assert!(loopback_target(&bad).is_err());
        let name: http::Uri = "https://localhost:6443".parse().expect("uri");
        assert!(loopback_target(&name).is_err());
    }
}
