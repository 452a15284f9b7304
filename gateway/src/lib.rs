//! The apiroutes gateway: receives all HTTP traffic, matches each request to its ApiRoute
//! exactly as Next.js would, wakes a sleeping function and proxies to a ready replica.
//!
//! Pure parts: [`path`] (request-path normalization), [`table`] (the route table and its
//! trie matcher), [`preview`] (Preview Mode crypto), [`trace_context`] (W3C `traceparent`).
//! Edges: [`proxy`] (the request path), [`activator`] (cold starts and autoscaler pushes),
//! [`server`] (listeners), [`access_log`] (one JSON line per request), the route sources
//! [`static_file`] and [`k8s`].

pub mod access_log;
pub mod activator;
pub mod body;
pub mod conn;
pub mod error;
pub mod host;
pub mod k8s;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod preview;
pub mod probe;
pub mod proxy;
pub mod route;
pub mod server;
pub mod static_file;
pub mod table;
pub mod trace_context;
pub mod variant;

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::{ArgAction, Parser, builder::BoolishValueParser};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use apiroutes_kit::telemetry::Telemetry;

use crate::{
    access_log::AccessLog,
    metrics::Metrics,
    proxy::{Gateway, PreviewConfig, ProxyConfig},
    server::{Readiness, ServerConfig},
    static_file::StaticRoutes,
    trace_context::Sampler,
};

pub use apiroutes_kit::LogFormat;

/// The apiroutes gateway.
#[derive(Debug, Parser)]
#[command(name = "apiroutes-gateway", version, about)]
pub struct Args {
    /// Address of the proxy listener (HTTP/1.1 and h2c).
    #[arg(long, env = "APIROUTES_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the admin listener: /metrics, /healthz, /readyz.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_ADMIN_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub admin_listen: SocketAddr,

    /// Serve the routes and backends of this YAML file instead of watching a cluster.
    #[arg(long = "static", env = "APIROUTES_GATEWAY_STATIC", value_name = "FILE")]
    pub static_file: Option<String>,

    /// Namespace to watch (repeatable); default all namespaces.
    #[arg(
        long = "namespace",
        env = "APIROUTES_GATEWAY_NAMESPACE",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// Base URL of the operator's autoscaler (e.g. http://127.0.0.1:8081).
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_AUTOSCALER_URL",
        conflicts_with = "autoscaler_service"
    )]
    pub autoscaler_url: Option<String>,

    /// Service NS/NAME whose EndpointSlices give the autoscaler address (port `autoscaler`).
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_AUTOSCALER_SERVICE",
        value_name = "NS/NAME"
    )]
    pub autoscaler_service: Option<String>,

    /// Lease NS/NAME of the operators' leader election: with --autoscaler-service, pushes
    /// go to the endpoint of the pod holding it (its holderIdentity is the pod name).
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_AUTOSCALER_LEASE",
        value_name = "NS/NAME",
        requires = "autoscaler_service"
    )]
    pub autoscaler_lease: Option<String>,

    /// File holding the ServiceAccount token sent with every autoscaler push (a projected
    /// token for the audience `apiroutes-autoscaler`; the chart mounts one).
    #[arg(long, env = "APIROUTES_GATEWAY_AUTOSCALER_TOKEN_FILE")]
    pub autoscaler_token_file: Option<String>,

    /// File of Preview Mode signing keys, one per line: the first signs, all verify
    /// (enables Preview Mode). Reloaded when it changes.
    #[arg(long, env = "APIROUTES_GATEWAY_PREVIEW_KEYS_FILE", value_name = "PATH")]
    pub preview_keys_file: Option<String>,

    /// File holding the token of the preview enable endpoint (`?secret=`); it signs nothing.
    /// Without it the enable endpoint is off. Needs --preview-keys-file; reloaded likewise.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_PREVIEW_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub preview_token_file: Option<String>,

    /// Seconds between checks of the preview files for changes; 0: never reload.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_PREVIEW_RELOAD_INTERVAL",
        default_value_t = 10
    )]
    pub preview_reload_interval: u64,

    /// Deprecated: one secret as both the enable token and the root of the signing key
    /// (whoever sees an enable URL can sign). Use --preview-keys-file and
    /// --preview-token-file.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_PREVIEW_SECRET_FILE",
        value_name = "PATH"
    )]
    pub preview_secret_file: Option<String>,

    /// Deprecated: the single preview secret itself (see --preview-secret-file).
    #[arg(long, env = "APIROUTES_PREVIEW_SECRET", hide_env_values = true)]
    pub preview_secret: Option<String>,

    /// Path prefix of the preview enable/disable endpoints.
    #[arg(long, env = "APIROUTES_GATEWAY_PREVIEW_PREFIX", default_value = preview::DEFAULT_PREFIX)]
    pub preview_prefix: String,

    /// Most requests held for one route variant while it wakes.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_MAX_HELD_PER_ROUTE",
        default_value_t = 1000
    )]
    pub max_held_per_route: u32,

    /// Most requests held in total.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_MAX_HELD_TOTAL",
        default_value_t = 10_000
    )]
    pub max_held_total: u32,

    /// Most client connections open at once.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Most admin-port connections open at once.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_ADMIN_MAX_CONNECTIONS",
        default_value_t = 64
    )]
    pub admin_max_connections: usize,

    /// Serve the admin `/routes` view (every route with its pod addresses, all namespaces);
    /// off by default since anyone reaching the admin port could read it. Off: 404.
    #[arg(long, env = "APIROUTES_GATEWAY_ADMIN_ROUTES")]
    pub admin_routes: bool,

    /// Seconds a client has to send a complete request head: from connecting (also before
    /// HTTP/1 vs h2 is known), or from the first byte of a later HTTP/1 request.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_HEADER_READ_TIMEOUT",
        default_value_t = 10
    )]
    pub header_read_timeout: u64,

    /// Seconds a connection may sit idle between requests (HTTP/1 keep-alive and h2).
    #[arg(long, env = "APIROUTES_GATEWAY_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,

    /// Seconds an HTTP/1 connection to a function may sit idle in the pool before it is
    /// closed instead of reused; keep it below the functions' keep-alive timeout (Node's
    /// default is 5 s). 0 never reuses a connection.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_UPSTREAM_IDLE_TIMEOUT",
        default_value_t = 4
    )]
    pub upstream_idle_timeout: u64,

    /// HTTP/1 connections open at once to one function endpoint (pod); more requests wait
    /// (within their route's timeout) for one to come free.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_UPSTREAM_MAX_CONNECTIONS",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub upstream_max_connections: u32,

    /// Largest request head in bytes: HTTP/1 gets 431 over it; h2's header list limit.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_MAX_HEADER_BYTES",
        default_value_t = 64 * 1024
    )]
    pub max_header_bytes: usize,

    /// Most concurrent streams on one h2 connection.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_H2_MAX_CONCURRENT_STREAMS",
        default_value_t = 250
    )]
    pub h2_max_concurrent_streams: u32,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "APIROUTES_GATEWAY_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,

    /// Pass on upgrades to any protocol; by default only WebSocket upgrades are, and other
    /// `Upgrade` requests are served as plain HTTP (RFC 9110 §7.8 lets a server ignore them).
    #[arg(long, env = "APIROUTES_GATEWAY_ALLOW_ANY_UPGRADE")]
    pub allow_any_upgrade: bool,

    /// Seconds a function that sent a 1xx status (e.g. 103 Early Hints, or 100 Continue
    /// nobody expected) has to send its final status; then the client gets a 502.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_INFORMATIONAL_TIMEOUT",
        default_value_t = 5
    )]
    pub informational_timeout: u64,

    /// Log format.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. info or apiroutes_gateway=debug).
    #[arg(long, env = "APIROUTES_GATEWAY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Write one JSON line per request to stdout (the access log), whatever the log format
    /// and level; `--access-log=false` or `--no-access-log` turns it off.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_ACCESS_LOG",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        overrides_with_all = ["access_log", "no_access_log"]
    )]
    pub access_log: bool,

    /// No access log (the same as `--access-log=false`).
    #[arg(long, overrides_with_all = ["access_log", "no_access_log"])]
    pub no_access_log: bool,

    /// Share of the traces the gateway starts (requests without a valid `traceparent`) that
    /// are marked sampled toward functions, 0 to 1; a caller's sampled flag is kept as is.
    #[arg(
        long,
        env = "APIROUTES_GATEWAY_TRACE_SAMPLE_RATIO",
        default_value_t = 1.0,
        value_parser = parse_ratio
    )]
    pub trace_sample_ratio: f64,

    #[command(flatten)]
    pub telemetry: apiroutes_kit::telemetry::TelemetryArgs,

    /// Runtime worker threads (default: one per core).
    #[arg(long, env = "APIROUTES_GATEWAY_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// This gateway's name in autoscaler pushes (default $POD_NAME, else the hostname).
    #[arg(long, env = "APIROUTES_GATEWAY_GATEWAY_ID")]
    pub gateway_id: Option<String>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Static(#[from] static_file::StaticError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("preview keys: {0}")]
    Preview(String),
    #[error("kubernetes: {0}")]
    Kube(String),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] apiroutes_kit::telemetry::TelemetryError),
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err("a ratio from 0 to 1".into())
    }
}

fn default_gateway_id() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "gateway".to_owned())
}

impl Args {
    /// Whether the access log is on (`--access-log[=BOOL]`, `--no-access-log`).
    pub fn access_log_enabled(&self) -> bool {
        self.access_log && !self.no_access_log
    }

    /// Runs the gateway until SIGTERM/SIGINT (builds the runtime and the logger).
    pub fn run(self) -> ExitCode {
        self.init_logging();
        // One worker: a current-thread runtime (no work-stealing or cross-thread wakeups
        // on the request path); otherwise the multi-threaded one.
        let mut rt = match self.worker_threads {
            Some(1) => tokio::runtime::Builder::new_current_thread(),
            Some(n) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n.max(1));
                b
            }
            None => tokio::runtime::Builder::new_multi_thread(),
        };
        rt.enable_all();
        let result = match rt.build() {
            Ok(rt) => rt.block_on(self.serve()),
            Err(e) => Err(StartError::Runtime(e)),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "gateway failed");
                eprintln!("apiroutes-gateway: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn init_logging(&self) {
        apiroutes_kit::init_logging(self.log_format, &self.log_level);
    }

    fn preview(&self) -> Result<Option<PreviewConfig>, StartError> {
        let legacy = match (&self.preview_secret_file, &self.preview_secret) {
            (Some(path), _) => Some(
                std::fs::read(path)
                    .map_err(|e| StartError::Preview(format!("reading {path}: {e}")))?,
            ),
            (None, Some(s)) => Some(s.as_bytes().to_vec()),
            (None, None) => None,
        };
        if self.preview_token_file.is_some() && self.preview_keys_file.is_none() {
            return Err(StartError::Preview(
                "--preview-token-file needs --preview-keys-file (the token signs nothing)".into(),
            ));
        }
        let keys = match (&self.preview_keys_file, legacy) {
            (Some(_), Some(_)) => {
                return Err(StartError::Preview(
                    "--preview-keys-file replaces the deprecated --preview-secret-file / APIROUTES_PREVIEW_SECRET: give only the new files".into(),
                ));
            }
            (None, None) => return Ok(None),
            (None, Some(secret)) => {
                tracing::warn!(
                    "deprecated: one preview secret (--preview-secret-file / APIROUTES_PREVIEW_SECRET) is both the enable token and the signing root, so whoever sees an enable URL can sign preview cookies; use --preview-token-file and --preview-keys-file"
                );
                preview::PreviewKeys::legacy(&secret)
                    .map_err(|e| StartError::Preview(e.to_string()))?
            }
            (Some(keys_file), None) => {
                let files = preview::files::KeyFiles {
                    token: self.preview_token_file.as_ref().map(Into::into),
                    signing_keys: keys_file.into(),
                };
                let (keys, seen) = files
                    .load()
                    .map_err(|e| StartError::Preview(e.to_string()))?;
                if self.preview_reload_interval > 0 && tokio::runtime::Handle::try_current().is_ok()
                {
                    // Ends by itself once the gateway (every clone of the keys) is gone.
                    drop(files.spawn_reload(
                        &keys,
                        seen,
                        Duration::from_secs(self.preview_reload_interval),
                    ));
                }
                keys
            }
        };
        tracing::info!(
            signing_keys = keys.signing_keys(),
            token = keys.has_token(),
            "Preview Mode on"
        );
        let endpoints = preview::Endpoints::new(&self.preview_prefix)
            .map_err(|e| StartError::Preview(e.to_string()))?;
        Ok(Some(PreviewConfig { keys, endpoints }))
    }

    /// Runs the gateway on the current runtime until SIGTERM/SIGINT.
    pub async fn serve(self) -> Result<(), StartError> {
        let metrics = Metrics::new();
        let telemetry = Telemetry::init(&self.telemetry, "apiroutes-gateway")?;
        if let Some(t) = &telemetry {
            t.log_started();
        }
        let access_log = self
            .access_log_enabled()
            .then(|| AccessLog::stdout(Some(metrics.access_log_dropped.clone())));
        let gateway = Gateway::new(
            ProxyConfig {
                gateway_id: self.gateway_id.clone().unwrap_or_else(default_gateway_id),
                max_held_per_route: self.max_held_per_route,
                max_held_total: self.max_held_total,
                autoscaler_url: self.autoscaler_url.clone(),
                preview: self.preview()?,
                allow_any_upgrade: self.allow_any_upgrade,
                informational_timeout: Duration::from_secs(self.informational_timeout),
                pool: pool::PoolConfig {
                    idle_timeout: Duration::from_secs(self.upstream_idle_timeout),
                    max_per_endpoint: usize::try_from(self.upstream_max_connections)
                        .unwrap_or(usize::MAX),
                },
                access_log: access_log.clone(),
                sampler: Sampler::new(self.trace_sample_ratio),
                spans: telemetry.as_ref().map(Telemetry::spans),
                ..ProxyConfig::default()
            },
            metrics,
        );
        if let Some(file) = &self.autoscaler_token_file {
            gateway.autoscaler.use_token_file(file.into());
        }
        let ready = Arc::new(Readiness::default());
        let shutdown = CancellationToken::new();

        let mut background = Vec::new();
        match &self.static_file {
            Some(file) => {
                let routes = StaticRoutes::load(file)?;
                gateway.install(routes.build(&gateway.registry));
                tracing::info!(
                    file,
                    routes = gateway.table().routes,
                    "static routes loaded"
                );
                ready.set_ready();
            }
            None => {
                let source = k8s::Source::start(
                    Arc::clone(&gateway),
                    Arc::clone(&ready),
                    self.namespaces.clone(),
                    self.autoscaler_service.clone(),
                    self.autoscaler_lease.clone(),
                )
                .await
                .map_err(|e| StartError::Kube(e.to_string()))?;
                background.push(source);
            }
        }

        let proxy = TcpListener::bind(self.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.listen,
                source,
            })?;
        let admin = TcpListener::bind(self.admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.admin_listen,
                source,
            })?;
        tracing::info!(listen = %self.listen, admin = %self.admin_listen, "gateway listening");

        background.push(tokio::spawn(
            Arc::clone(&gateway.autoscaler)
                .report_loop(Arc::clone(&gateway.registry), Duration::from_secs(1)),
        ));
        let server_config = ServerConfig {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_header_bytes: self.max_header_bytes,
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            ..ServerConfig::default()
        };
        let admin_task = tokio::spawn(server::serve_admin(
            admin,
            Arc::clone(&gateway),
            Arc::clone(&ready),
            self.admin_routes,
            server_config.admin(self.admin_max_connections),
            shutdown.clone(),
        ));
        let signals = tokio::spawn(apiroutes_kit::cancel_on_signal(shutdown.clone()));
        server::serve_proxy(proxy, gateway, server_config, shutdown.clone()).await;
        shutdown.cancel();
        signals.abort();
        let _ = admin_task.await;
        for task in background {
            task.abort();
        }
        if let Some(log) = access_log {
            // The lines of the last requests; stdout may be blocked, so not forever.
            log.close(Duration::from_secs(5));
        }
        if let Some(t) = telemetry {
            // The spans of the last requests (bounded: the collector may be gone).
            t.shutdown().await;
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse_as_contracted() {
        let a = Args::try_parse_from([
            "apiroutes-gateway",
            "--static",
            "f.yaml",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--autoscaler-url",
            "http://127.0.0.1:8081",
            "--max-held-per-route",
            "5",
            "--log-format",
            "json",
            "--worker-threads",
            "1",
        ]);
        let a = a.map_err(|e| e.to_string());
        assert!(a.is_ok(), "{a:?}");
        if let Ok(a) = a {
            assert_eq!(a.namespaces, ["a", "b"]);
            assert_eq!(a.max_held_per_route, 5);
            assert_eq!(a.log_format, LogFormat::Json);
            assert_eq!(a.listen.port(), 8080);
            assert_eq!(a.preview_prefix, "/__apiroutes/preview");
            assert!(a.access_log_enabled(), "the access log is on by default");
            assert!((a.trace_sample_ratio - 1.0).abs() < f64::EPSILON);
            assert_eq!(a.preview_reload_interval, 10);
        }
    }

    #[test]
    fn access_log_switches() {
        let on = |args: &[&str]| {
            let mut all = vec!["apiroutes-gateway"];
            all.extend_from_slice(args);
            Args::try_parse_from(all)
                .map(|a| a.access_log_enabled())
                .map_err(|e| e.to_string())
        };
        assert_eq!(on(&[]), Ok(true));
        assert_eq!(on(&["--access-log"]), Ok(true));
        assert_eq!(on(&["--access-log=true"]), Ok(true));
        assert_eq!(on(&["--access-log=false"]), Ok(false));
        assert_eq!(on(&["--access-log=0"]), Ok(false));
        assert_eq!(on(&["--no-access-log"]), Ok(false));
        // The last one wins.
        assert_eq!(on(&["--no-access-log", "--access-log"]), Ok(true));
        assert_eq!(on(&["--access-log", "--no-access-log"]), Ok(false));
        assert_eq!(on(&["--access-log=false", "--access-log"]), Ok(true));
        // `--access-log false` is not `--access-log=false`: a stray argument, refused.
        assert!(on(&["--access-log", "false"]).is_err());
        assert!(on(&["--access-log=maybe"]).is_err());
    }

    #[test]
    fn trace_sample_ratio_is_a_ratio() {
        let ratio = |v: &str| {
            Args::try_parse_from(["apiroutes-gateway", "--trace-sample-ratio", v])
                .map(|a| a.trace_sample_ratio)
                .map_err(|e| e.to_string())
        };
        assert_eq!(ratio("0"), Ok(0.0));
        assert_eq!(ratio("0.25"), Ok(0.25));
        assert_eq!(ratio("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "x"] {
            assert!(ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preview_flags() {
        let dir =
            std::env::temp_dir().join(format!("apiroutes-preview-flags-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let token = dir.join("token");
        let keys = dir.join("signing-keys");
        let _ = std::fs::write(&token, "a-token-of-enough-bytes\n");
        let _ = std::fs::write(&keys, "key-two-of-enough-bytes\nkey-one-of-enough-bytes\n");
        let (token, keys) = (token.display().to_string(), keys.display().to_string());
        let preview = |extra: &[&str]| {
            let mut argv = vec!["apiroutes-gateway"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
                .map_err(|e| e.to_string())
                .and_then(|a| a.preview().map_err(|e| e.to_string()))
                .map(|p| p.map(|p| (p.keys.signing_keys(), p.keys.has_token())))
        };
        let on = preview(&["--preview-token-file", &token, "--preview-keys-file", &keys]);
        assert!(on == Ok(Some((2, true))), "{on:?}");
        let keys_only = preview(&["--preview-keys-file", &keys]);
        assert!(keys_only == Ok(Some((2, false))), "{keys_only:?}");
        let token_only = preview(&["--preview-token-file", &token]);
        assert!(
            matches!(&token_only, Err(e) if e.contains("needs --preview-keys-file")),
            "{token_only:?}"
        );
        let both = preview(&[
            "--preview-keys-file",
            &keys,
            "--preview-secret-file",
            &token,
        ]);
        assert!(
            matches!(&both, Err(e) if e.contains("replaces the deprecated")),
            "{both:?}"
        );
        let legacy = preview(&["--preview-secret-file", &token]);
        assert!(legacy == Ok(Some((1, true))), "{legacy:?}");
        let token_as_key = preview(&[
            "--preview-token-file",
            &token,
            "--preview-keys-file",
            &token,
        ]);
        assert!(
            matches!(&token_as_key, Err(e) if e.contains("also a signing key") && !e.contains("a-token")),
            "{token_as_key:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
