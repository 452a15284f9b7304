//! The CRD YAML, generated from the Rust types.

use kube::CustomResourceExt;

use crate::types::ApiRoute;

/// File name of the CRD, in `crds/` and in the chart's `crds/`.
pub const FILE_NAME: &str = "apiroutes.dev_apiroutes.yaml";

/// The CustomResourceDefinition as YAML, with a header saying where it comes from.
pub fn yaml() -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&ApiRoute::crd())?;
    Ok(format!(
        "# Generated from crds/src/types.rs by `cargo run -p apiroutes-crds --bin crdgen`. Do not edit.\n{body}"
    ))
}
