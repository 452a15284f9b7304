//! `--static FILE`: ApiRoute manifests with fixed backend URLs, no cluster needed (quick
//! local tries, benchmarks, the conformance suite). Format (CONTRACTS):
//!
//! ```yaml
//! routes:
//!   - route:            # an ApiRoute manifest (apiVersion/kind optional); namespace defaults to "default"
//!       metadata: { name: hello, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z" }
//!       spec: { path: /api/hello, image: unused }
//!     backends: ["http://127.0.0.1:9001"]          # main variant endpoints
//!     previewBackends: ["http://127.0.0.1:9002"]   # optional
//! ```

use std::collections::HashMap;

use apiroutes_crds::{ApiRoute, ApiRouteSpec, autoscale::RouteRef, labels::Variant};
use http::uri::Authority;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::table::{Registry, RouteTable};

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("route {route}: backend {url:?} is not http://HOST:PORT")]
    Backend { route: String, url: String },
    #[error("route #{index} has no metadata.name")]
    NoName { index: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    routes: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    route: Manifest,
    #[serde(default)]
    backends: Vec<String>,
    #[serde(default)]
    preview_backends: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: ApiRouteSpec,
}

/// The routes and backends of a static file.
#[derive(Debug, Default)]
pub struct StaticRoutes {
    pub routes: Vec<ApiRoute>,
    pub backends: HashMap<RouteRef, Vec<Authority>>,
}

/// `http://127.0.0.1:9001` (or `127.0.0.1:9001`) → its authority.
pub fn parse_backend(url: &str) -> Option<Authority> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let a: Authority = rest.parse().ok()?;
    a.port_u16()?;
    Some(a)
}

impl StaticRoutes {
    pub fn parse(text: &str, path: &str) -> Result<Self, StaticError> {
        let file: File = serde_yaml::from_str(text).map_err(|source| StaticError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut out = StaticRoutes::default();
        for (index, entry) in file.routes.into_iter().enumerate() {
            let mut metadata = entry.route.metadata;
            let Some(name) = metadata.name.clone() else {
                return Err(StaticError::NoName { index });
            };
            let namespace = metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned())
                .clone();
            for (variant, urls) in [
                (Variant::Main, &entry.backends),
                (Variant::Preview, &entry.preview_backends),
            ] {
                let mut addrs = Vec::with_capacity(urls.len());
                for url in urls {
                    addrs.push(parse_backend(url).ok_or_else(|| StaticError::Backend {
                        route: format!("{namespace}/{name}"),
                        url: url.clone(),
                    })?);
                }
                out.backends.insert(
                    RouteRef {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        variant,
                    },
                    addrs,
                );
            }
            out.routes.push(ApiRoute {
                metadata,
                spec: entry.route.spec,
                status: None,
            });
        }
        Ok(out)
    }

    pub fn load(path: &str) -> Result<Self, StaticError> {
        let text = std::fs::read_to_string(path).map_err(|source| StaticError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The route table of these routes.
    pub fn build(&self, registry: &Registry) -> RouteTable {
        registry.build(&self.routes, |k| {
            self.backends.get(k).cloned().unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        metrics::Metrics,
        table::{Lookup, split},
    };

    #[test]
    fn parses_the_contract_format() {
        let yaml = r#"
routes:
  - route:
      metadata: { name: hello, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z" }
      spec: { path: "/api/users/[id]", image: unused, methods: [GET], bodyLimit: 10Ki }
    backends: ["http://127.0.0.1:9001", "127.0.0.1:9003/"]
    previewBackends: ["http://127.0.0.1:9002"]
  - route:
      apiVersion: apiroutes.dev/v1alpha1
      kind: ApiRoute
      metadata: { name: other }
      spec: { path: /api/other, image: unused }
"#;
        let s = StaticRoutes::parse(yaml, "test.yaml").unwrap();
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[1].metadata.namespace.as_deref(), Some("default"));
        let main = RouteRef {
            namespace: "shop".into(),
            name: "hello".into(),
            variant: Variant::Main,
        };
        assert_eq!(s.backends[&main].len(), 2);
        let t = s.build(&Registry::new(Metrics::new()));
        let Lookup::Route(r) = t.lookup(None, &split("/api/users/1"), &http::Method::GET) else {
            panic!()
        };
        assert_eq!(&*r.key, "shop/hello");
        assert_eq!(r.body_limit, 10 * 1024);
        assert_eq!(r.main.endpoints.len(), 2);
    }

    #[test]
    fn bad_backends_and_unknown_fields_are_refused() {
        let bad = "routes:\n  - route: {metadata: {name: a}, spec: {path: /x, image: i}}\n    backends: [\"https://x:1/p\"]\n";
        assert!(matches!(
            StaticRoutes::parse(bad, "f"),
            Err(StaticError::Backend { .. })
        ));
        let typo = "routes:\n  - route: {metadata: {name: a}, spec: {path: /x, image: i}}\n    backend: []\n";
        assert!(StaticRoutes::parse(typo, "f").is_err());
        assert!(parse_backend("http://127.0.0.1").is_none());
    }
}
