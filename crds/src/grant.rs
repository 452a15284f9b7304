//! Which namespaces may claim which hosts and paths: the `RouteGrant` resource and the one
//! rule that reads it, applied by [`crate::conflict::admit`] and so by the operator (status
//! `Accepted=False`), the gateway (not routed) and `apiroutes routes` alike.
//!
//! - **No RouteGrant in the cluster**: every route may claim anything (one team per
//!   cluster, the behaviour before grants existed).
//! - **At least one RouteGrant**: isolation is on. A route is routed only when a grant that
//!   lists its namespace allows its host and its path:
//!   - host: a route with `host: shop.example.com` needs the host in the grant's `hosts`,
//!     exactly (case-insensitive) or under a `*.example.com` wildcard (one or more labels);
//!     a route without a host answers every host, and needs `*` in `hosts`;
//!   - path: the route's pattern must begin with one of the grant's `pathPrefixes`, segment
//!     by segment, with static segments only up to the prefix's length — `/api/shop/[id]`
//!     is inside `/api/shop`, `/api/[...all]` is not (it would also match `/api/other`).
//!
//! A route that is not granted is not routed and blocks nobody (as a conflict's loser).

use std::{borrow::Borrow, collections::HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{
    conflict::Claimant,
    pattern::{Pattern, Segment},
};

/// Lets the listed namespaces claim the listed hosts and path prefixes (cluster-scoped;
/// created by a platform admin). With no RouteGrant at all, every namespace may claim
/// anything.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "apiroutes.dev",
    version = "v1alpha1",
    kind = "RouteGrant",
    plural = "routegrants",
    singular = "routegrant",
    shortname = "rg",
    category = "apiroutes",
    doc = "Which namespaces may claim which hosts and path prefixes for their ApiRoutes.",
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Paths","type":"string","jsonPath":".spec.pathPrefixes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RouteGrantSpec {
    /// Namespaces whose ApiRoutes this grant covers.
    #[schemars(
        length(min = 1, max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub namespaces: Vec<String>,

    /// Hosts the namespaces may claim: `shop.example.com`, `*.example.com` (any subdomain),
    /// or `*` for routes without a host (they answer every host).
    #[schemars(
        length(min = 1, max = 256),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)$"
            )
        )
    )]
    pub hosts: Vec<String>,

    /// Path prefixes the namespaces may claim, whole segments: `/api/shop` allows
    /// `/api/shop` and `/api/shop/[id]`, not `/api/shopping`. Default `/`: any path.
    #[serde(default = "default_prefixes")]
    #[schemars(
        length(min = 1, max = 256),
        inner(length(min = 1, max = 1024), regex(pattern = r"^(/|(/[^/\[\]?#]+)+)$"))
    )]
    pub path_prefixes: Vec<String>,
}

fn default_prefixes() -> Vec<String> {
    vec!["/".to_owned()]
}

/// Condition reason (and Event reason) of a route whose host its namespace may not claim.
pub const REASON_HOST_NOT_ALLOWED: &str = "HostNotAllowed";
/// Condition reason (and Event reason) of a route whose path its namespace may not claim.
pub const REASON_PATH_NOT_ALLOWED: &str = "PathNotAllowed";

/// Why a route is not granted: a condition reason and a message naming what is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// `HostNotAllowed` or `PathNotAllowed`.
    pub reason: &'static str,
    pub message: String,
}

/// Whether `pattern` lies inside `prefix` (whole static segments).
fn path_inside(pattern: &Pattern, prefix: &str) -> bool {
    let wanted: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let segments = pattern.segments();
    segments.len() >= wanted.len()
        && wanted
            .iter()
            .zip(segments)
            .all(|(w, s)| matches!(s, Segment::Static(t) if t == w))
}

/// Whether a grant's host entry allows a route's host (`None`: no host, any host).
fn host_allowed(entry: &str, host: Option<&str>) -> bool {
    match host {
        None => entry == "*",
        Some(h) => match entry.strip_prefix("*.") {
            Some(suffix) => {
                h.len() > suffix.len() + 1
                    && h[h.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            }
            None => entry != "*" && entry.eq_ignore_ascii_case(h),
        },
    }
}

/// The grants by the namespaces they list, built once for a pass over many routes (so
/// each route looks at its own namespace's grants only).
pub struct GrantIndex<'a> {
    any: bool,
    by_namespace: HashMap<&'a str, Vec<&'a RouteGrant>>,
}

impl<'a> GrantIndex<'a> {
    pub fn new<G: Borrow<RouteGrant>>(grants: &'a [G]) -> Self {
        let mut by_namespace: HashMap<&str, Vec<&RouteGrant>> = HashMap::new();
        for g in grants {
            let g = g.borrow();
            for n in &g.spec.namespaces {
                let list = by_namespace.entry(n.as_str()).or_default();
                // A grant listing a namespace twice counts once.
                if !list.iter().any(|x| std::ptr::eq(*x, g)) {
                    list.push(g);
                }
            }
        }
        GrantIndex {
            any: !grants.is_empty(),
            by_namespace,
        }
    }

    fn covering(&self, namespace: &str) -> &[&'a RouteGrant] {
        self.by_namespace.get(namespace).map_or(&[], Vec::as_slice)
    }
}

/// The grant rule for one route whose pattern parsed; `None`: the route may be routed.
pub fn denial<R: Claimant + ?Sized>(
    route: &R,
    pattern: &Pattern,
    grants: &GrantIndex<'_>,
) -> Option<Denial> {
    if !grants.any {
        return None;
    }
    let namespace = route.namespace();
    let host = route.host();
    let covering = grants.covering(namespace);
    let for_host: Vec<&RouteGrant> = covering
        .iter()
        .copied()
        .filter(|g| g.spec.hosts.iter().any(|e| host_allowed(e, host)))
        .collect();
    let what_host = host.map_or_else(
        || "routes without a host (`*`)".to_owned(),
        |h| format!("host {h}"),
    );
    if for_host.is_empty() {
        let message = if covering.is_empty() {
            format!(
                "no RouteGrant covers namespace {namespace}, and RouteGrants exist (isolation is on)"
            )
        } else {
            format!(
                "the RouteGrants of namespace {namespace} ({}) do not allow {what_host}",
                names(covering)
            )
        };
        return Some(Denial {
            reason: REASON_HOST_NOT_ALLOWED,
            message,
        });
    }
    let inside = for_host
        .iter()
        .any(|g| g.spec.path_prefixes.iter().any(|p| path_inside(pattern, p)));
    (!inside).then(|| Denial {
        reason: REASON_PATH_NOT_ALLOWED,
        message: format!(
            "path {} is outside the path prefixes the RouteGrants {} allow namespace {namespace} for {what_host}",
            route.path(),
            names(&for_host)
        ),
    })
}

fn names(grants: &[&RouteGrant]) -> String {
    grants
        .iter()
        .map(|g| g.metadata.name.as_deref().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A RouteGrant value (tests, examples).
pub fn grant(name: &str, namespaces: &[&str], hosts: &[&str], prefixes: &[&str]) -> RouteGrant {
    RouteGrant {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: RouteGrantSpec {
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            path_prefixes: prefixes.iter().map(|s| (*s).to_owned()).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::route;

    fn check(
        ns: &str,
        host: Option<&str>,
        path: &str,
        grants: &[RouteGrant],
    ) -> Option<&'static str> {
        let mut r = route("r", path).namespace(ns);
        if let Some(h) = host {
            r = r.host(h);
        }
        denial(&r, &Pattern::parse(path).unwrap(), &GrantIndex::new(grants)).map(|d| d.reason)
    }

    #[test]
    fn without_grants_everything_is_allowed() {
        assert_eq!(
            check("a", Some("x.example.com"), "/api/[...all]", &[]),
            None
        );
    }

    #[test]
    fn hosts_exact_wildcard_and_hostless() {
        let g = [grant(
            "shop",
            &["shop"],
            &["shop.example.com", "*.shop.example.com"],
            &["/"],
        )];
        assert_eq!(check("shop", Some("SHOP.example.com"), "/api/x", &g), None);
        assert_eq!(
            check("shop", Some("eu.shop.example.com"), "/api/x", &g),
            None
        );
        assert_eq!(
            check("shop", Some("a.b.shop.example.com"), "/api/x", &g),
            None
        );
        assert_eq!(
            check("shop", Some("evilshop.example.com"), "/api/x", &g),
            Some("HostNotAllowed")
        );
        assert_eq!(
            check("shop", Some("blog.example.com"), "/api/x", &g),
            Some("HostNotAllowed")
        );
        // No host answers every host: only with `*`.
        assert_eq!(check("shop", None, "/api/x", &g), Some("HostNotAllowed"));
        let any = [grant("shop", &["shop"], &["*"], &["/"])];
        assert_eq!(check("shop", None, "/api/x", &any), None);
        assert_eq!(
            check("shop", Some("x.example.com"), "/api/x", &any),
            Some("HostNotAllowed")
        );
    }

    #[test]
    fn namespaces_not_covered_are_denied_once_isolation_is_on() {
        let g = [grant("shop", &["shop"], &["*"], &["/"])];
        assert_eq!(check("blog", None, "/api/x", &g), Some("HostNotAllowed"));
    }

    #[test]
    fn paths_must_lie_inside_a_prefix_by_whole_static_segments() {
        let g = [grant("shop", &["shop"], &["*"], &["/api/shop"])];
        for inside in [
            "/api/shop",
            "/api/shop/[id]",
            "/api/shop/[[...rest]]",
            "/api/shop/a/b",
        ] {
            assert_eq!(check("shop", None, inside, &g), None, "{inside}");
        }
        for outside in [
            "/api/shopping",
            "/api",
            "/api/[x]",
            "/api/[...all]",
            "/api/[[...all]]",
            "/",
        ] {
            assert_eq!(
                check("shop", None, outside, &g),
                Some("PathNotAllowed"),
                "{outside}"
            );
        }
    }

    #[test]
    fn grants_add_up_but_host_and_path_come_from_one_grant() {
        let g = [
            grant("shop-api", &["shop"], &["shop.example.com"], &["/api/shop"]),
            grant("shared", &["shop", "blog"], &["*"], &["/api/public"]),
        ];
        assert_eq!(
            check("shop", Some("shop.example.com"), "/api/shop/x", &g),
            None
        );
        assert_eq!(check("shop", None, "/api/public/x", &g), None);
        // The host of one grant and the path of the other do not combine.
        assert_eq!(
            check("shop", Some("shop.example.com"), "/api/public/x", &g),
            Some("PathNotAllowed")
        );
        assert_eq!(
            check("shop", None, "/api/shop/x", &g),
            Some("PathNotAllowed")
        );
        assert_eq!(check("blog", None, "/api/public/y", &g), None);
    }
}
