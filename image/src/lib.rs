//! Reproducible OCI images without a container engine.
//!
//! apiroutes builds every image it ships (the gateway, the operator, the echo function, the
//! Node runtime with an app's route files) with this crate: host files and ELF binaries are
//! laid out into a root filesystem, the binaries' shared libraries and program interpreter
//! are found and added, a non-root user (65532) is defined, and the result is written as an
//! [OCI image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
//! directory that [`push`] uploads to any registry speaking the distribution API (HTTPS,
//! with the credentials `docker login` wrote).
//!
//! The same inputs always give the same manifest digest: entries are sorted, every
//! timestamp is one fixed epoch (`SOURCE_DATE_EPOCH`, else 0), owners are root, and gzip
//! headers carry no name or time.
//!
//! Layers: the *base* layer holds what the binaries need (users, `/tmp`, the binaries, their
//! libraries), the *app* layer the other files. Two images of one runtime with different
//! apps (two Next.js apps on Node) share the base layer's blob.

mod auth;
mod docker_config;
mod elf;
mod error;
mod layer;
mod layout;
mod push;
mod reference;
mod rootfs;
mod transport;

pub use error::{Error, Result};
pub use layout::{BuiltImage, build};
pub use push::{PushOptions, Pushed, push};
pub use reference::Reference;
pub use rootfs::DEFAULT_LIBRARY_DIRS;

use std::{collections::BTreeMap, path::PathBuf};

/// The user every image runs as: distroless' `nonroot`.
pub const NONROOT: u32 = 65532;

/// One host file or directory tree placed at an absolute path in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub host: PathBuf,
    pub path: String,
}

impl Placement {
    /// Parses `HOST:IMAGE_PATH` (the image path absolute).
    pub fn parse(s: &str) -> Result<Self> {
        let (host, path) = s
            .rsplit_once(':')
            .ok_or_else(|| Error::Spec(format!("`{s}`: expected HOST:IMAGE_PATH")))?;
        if host.is_empty() || !path.starts_with('/') {
            return Err(Error::Spec(format!(
                "`{s}`: expected HOST:IMAGE_PATH with an absolute image path"
            )));
        }
        Ok(Placement {
            host: PathBuf::from(host),
            path: path.to_owned(),
        })
    }
}

/// Everything that defines an image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// ELF executables (mode 0755) with their shared libraries and interpreter; base layer.
    pub binaries: Vec<Placement>,
    /// Files or directory trees (executable bits kept); app layer.
    pub files: Vec<Placement>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `8080` or `8080/tcp`
    pub ports: Vec<String>,
    /// Image config labels, also the manifest's annotations
    /// (`org.opencontainers.image.source`, `.revision`, `.version`, ...).
    pub labels: BTreeMap<String, String>,
    /// Where shared libraries are looked up on the host, in order; the image keeps the
    /// directory a library was found in, which the dynamic loader also searches.
    pub library_dirs: Vec<PathBuf>,
    /// Modification time of every entry (seconds since the epoch).
    pub epoch: u64,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            binaries: Vec::new(),
            files: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: None,
            ports: Vec::new(),
            labels: BTreeMap::new(),
            library_dirs: DEFAULT_LIBRARY_DIRS.iter().map(PathBuf::from).collect(),
            epoch: 0,
        }
    }
}
