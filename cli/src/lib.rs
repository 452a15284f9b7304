//! The `apiroutes` command (also the kubectl plugin `kubectl apiroutes`):
//!
//! - [`import`]: a Next.js `pages/api` or `app` tree → ApiRoute manifests;
//! - [`check`]: ApiRoute manifests validated offline, conflicts included;
//! - [`routes`]: the live route table, in the gateway's order;
//! - [`deploy`]: a Next.js app folder → one image (no container engine) → served routes;
//! - [`image`]: reproducible OCI images built and pushed without a container engine
//!   (`apiroutes-image`).
//!
//! The path-pattern language, precedence and the conflict rule are `apiroutes-crds`'s;
//! this crate adds Next.js's file-system conventions and nothing about routing.

pub mod check;
mod cli;
pub mod deploy;
pub mod error;
pub mod image;
pub mod import;
pub mod routes;

pub use cli::{CheckArgs, Cli, Command, ImportArgs, RoutesArgs};
pub use error::{Error, Result};
