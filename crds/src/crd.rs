//! The CRD YAML, generated from the Rust types.

use kube::CustomResourceExt;
use serde_json::Value;

use crate::{grant::RouteGrant, types::ApiRoute};

/// File name of the ApiRoute CRD, in `crds/` and in the chart's `crds/`.
pub const FILE_NAME: &str = "apiroutes.dev_apiroutes.yaml";
/// File name of the RouteGrant CRD, beside it.
pub const GRANT_FILE_NAME: &str = "apiroutes.dev_routegrants.yaml";

/// The ApiRoute CustomResourceDefinition as YAML, with a header saying where it comes from.
pub fn yaml() -> Result<String, serde_yaml::Error> {
    render(ApiRoute::crd(), "crds/src/types.rs")
}

/// Every CRD file: `(file name, YAML)`.
pub fn files() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        (FILE_NAME, yaml()?),
        (
            GRANT_FILE_NAME,
            render(RouteGrant::crd(), "crds/src/grant.rs")?,
        ),
    ])
}

fn render(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    source: &str,
) -> Result<String, serde_yaml::Error> {
    let mut crd =
        serde_json::to_value(crd).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    unwrap_descriptions(&mut crd);
    let body = serde_yaml::to_string(&crd)?;
    Ok(format!(
        "# Generated from {source} by `cargo run -p apiroutes-crds --bin crdgen`. Do not edit.\n{body}"
    ))
}

/// Doc comments arrive hard-wrapped; `kubectl explain` wraps again, so join the lines of
/// each paragraph (a blank line still separates paragraphs).
fn unwrap_descriptions(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "description"
                    && let Value::String(s) = child
                {
                    *s = s
                        .split("\n\n")
                        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join("\n\n");
                } else {
                    unwrap_descriptions(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn descriptions_are_unwrapped_paragraphs() {
        let yaml = super::yaml().unwrap();
        assert!(yaml.contains("Fewest replicas. 0 lets the route scale to zero when idle; the gateway holds the next request while it wakes."));
        assert!(yaml.contains("shortNames:\n    - ar"));
    }
}
