//! Process plumbing shared by the gateway and the operator, so both start, log and stop
//! the same way: one log format (JSON lines on stdout, the event's fields at the top level
//! beside `timestamp`, `level`, `target` and `message`), and shutdown on SIGTERM or SIGINT;
//! and both watch their namespaces through one reflector ([`reflect`]).

pub mod admin;
pub mod cluster;
pub mod reflect;
pub mod telemetry;

use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log collectors).
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the process's logger: `level` is an `EnvFilter` directive (`info`,
/// `info,apiroutes_operator=debug`); a directive that does not parse means `info`. Logs go
/// to stdout, where container runtimes collect them. A second call does nothing.
pub fn init_logging(format: LogFormat, level: &str) {
    init_logging_with(format, level, None);
}

/// [`init_logging`], and with `telemetry` the process's `tracing` spans (those the filter
/// lets through) are exported as OTel spans too.
pub fn init_logging_with(format: LogFormat, level: &str, telemetry: Option<&telemetry::Telemetry>) {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let spans = telemetry.map(|t| t.layer("apiroutes"));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(spans)
        .with(filter)
        .try_init();
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT (logging which). Without signal
/// handlers (they could not be installed) it waits for ever.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("signal handlers could not be installed; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}
