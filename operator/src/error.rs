//! The operator's one error type.

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    #[error("{0} has no namespace")]
    MissingNamespace(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("prometheus: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("lost the leader lease")]
    LeaseLost,
    #[error("the leader lease attempt did not finish before the renew deadline")]
    LeaseTimeout,
    #[error("write fenced: not the leader, or the lease was not renewed in time")]
    Fenced,
    #[error(transparent)]
    Telemetry(#[from] apiroutes_kit::telemetry::TelemetryError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, bounded label for `reconcile_errors_total{reason}`.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => format!("api_{}", s.code),
            Error::Kube(_) => "kube".to_owned(),
            Error::Config(_) => "config".to_owned(),
            Error::MissingNamespace(_) => "missing_namespace".to_owned(),
            Error::Json(_) => "json".to_owned(),
            Error::Io(_) => "io".to_owned(),
            Error::Metrics(_) => "metrics".to_owned(),
            Error::LeaseLost => "lease_lost".to_owned(),
            Error::LeaseTimeout => "lease_timeout".to_owned(),
            Error::Fenced => "fenced".to_owned(),
            Error::Telemetry(_) => "telemetry".to_owned(),
        }
    }
}
