//! The one error type of the CLI.

use std::{io, path::PathBuf};

/// What can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag or argument that clap could not catch.
    #[error("{0}")]
    Usage(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("writing YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// `import` found what Next.js would refuse; every reason, one per line.
    #[error("refusing to import:\n{}", .0.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
    /// Route files that did not build; each with its file and reason.
    #[error("route files did not build (nothing was pushed or applied):\n{}", .0.iter().map(|r| format!("  - {}", r.replace('\n', "\n    "))).collect::<Vec<_>>().join("\n"))]
    Build(Vec<String>),
    /// `check` found problems (already printed).
    #[error("{0} problem(s) found")]
    CheckFailed(usize),
    #[error("reading kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no usable kubeconfig or in-cluster config: {0}")]
    InferConfig(#[from] kube::config::InferConfigError),
    #[error("talking to the API server: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Image(#[from] apiroutes_image::Error),
}

impl Error {
    /// The process exit code for this error: 2 for a usage error (as clap's own), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
