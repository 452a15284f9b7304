//! The one error type of the image builder.

use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image's description is wrong (a flag, a path, a reference).
    #[error("{0}")]
    Spec(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not an ELF file this builder can read: {reason}", path.display())]
    Elf { path: PathBuf, reason: String },
    #[error("{}: needs shared library {library}, not found in {searched}", binary.display())]
    MissingLibrary {
        binary: PathBuf,
        library: String,
        searched: String,
    },
    #[error("{}: not an OCI image layout: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    /// A registry (or its token server) refused, failed or was not reached; `reason` says
    /// why, with what to do about it for credentials and certificates. Never a secret.
    #[error("registry {registry}: {step}: {reason}")]
    Registry {
        registry: String,
        step: String,
        reason: String,
    },
    /// The Docker config file that holds registry credentials is unreadable or malformed
    /// (the reason names the field and position, never a value).
    #[error("{}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },
    /// The credential helper the Docker config file names for a registry is missing,
    /// failed, timed out or answered nonsense. `named`: which entry of which file named it.
    #[error(
        "registry {registry}: credential helper `docker-credential-{helper}` ({named}) {reason}"
    )]
    CredentialHelper {
        registry: String,
        helper: String,
        named: String,
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
