//! Which ApiRoutes are routed: the conflict rule, shared by the operator (which reports
//! `Accepted=False, reason=Conflict` naming the winner) and the gateway (which routes only
//! the winners), so the two cannot disagree.
//!
//! Two ApiRoutes **conflict** when
//! - their patterns have the same canonical form (parameter names do not count),
//! - their hosts are the same (compared case-insensitively; two hostless routes count as
//!   the same; a route with a host does not conflict with a hostless one, it beats it for
//!   that host at the gateway), and
//! - their method sets overlap (an absent list is every method; `GET` implies `HEAD`).
//!
//! Of conflicting routes the **older** one wins (creation time, then namespace/name); a loser
//! is not routed and blocks nobody. Before that, a route its namespace may not claim (the
//! [`crate::grant`] rule, when RouteGrants exist) is not routed and blocks nobody either.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, HashMap},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    grant::{self, Denial, RouteGrant},
    labels,
    pattern::{Pattern, PatternError},
    types::ApiRoute,
};

/// What the conflict and grant rules read of a route: an [`ApiRoute`], or a consumer's
/// compact copy of one (the gateway keeps a small record per route, not the object), so the
/// rules have one home whatever holds the route.
pub trait Claimant {
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
    /// `metadata.creationTimestamp`.
    fn created(&self) -> Option<&Time>;
    /// `spec.path`.
    fn path(&self) -> &str;
    /// `spec.host`.
    fn host(&self) -> Option<&str>;
    /// `spec.methods`.
    fn methods(&self) -> Option<&[String]>;

    /// `namespace/name`.
    fn claimant_key(&self) -> String {
        format!("{}/{}", self.namespace(), self.name())
    }
}

impl Claimant for ApiRoute {
    fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
    fn created(&self) -> Option<&Time> {
        self.metadata.creation_timestamp.as_ref()
    }
    fn path(&self) -> &str {
        &self.spec.path
    }
    fn host(&self) -> Option<&str> {
        self.spec.host.as_deref()
    }
    fn methods(&self) -> Option<&[String]> {
        self.spec.methods.as_deref()
    }
}

/// The decision for one ApiRoute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Routed.
    Accepted,
    /// Not routed: `winner` (`namespace/name`) claims the same pattern, host and methods.
    Conflict { winner: String },
    /// Not routed: `spec.path` does not parse.
    Invalid(PatternError),
    /// Not routed: `metadata.name` cannot name the route's objects (stored before the CRD
    /// refused such names); the message is the rule's (`labels::ROUTE_NAME_RULES`).
    InvalidName(&'static str),
    /// Not routed: no RouteGrant lets the route's namespace claim its host or path.
    NotGranted(Denial),
}

/// The methods a route serves; `None` is all of them.
pub fn effective_methods(methods: Option<&[String]>) -> Option<BTreeSet<String>> {
    let methods = methods?;
    let mut set: BTreeSet<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
    if set.contains("GET") {
        set.insert("HEAD".to_owned());
    }
    Some(set)
}

/// Whether two method lists share a method.
pub fn methods_overlap(a: Option<&[String]>, b: Option<&[String]>) -> bool {
    match (effective_methods(a), effective_methods(b)) {
        (Some(a), Some(b)) => !a.is_disjoint(&b),
        _ => true,
    }
}

/// Whether two routes' hosts claim the same requests in the conflict sense.
pub fn hosts_overlap(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Which of two routes that both match a request serves it, as the gateway decides (its
/// host tries first, then the hostless one; in each, the trie's precedence): `Less` when
/// `a` does. A route with a host goes before one without (hosts by name, lower case, only
/// to keep listings stable: two routes of different hosts never match one request); then
/// the more specific pattern; a pattern that does not parse goes last. `apiroutes routes`
/// lists in this order, then by [`age_key`].
pub fn serving_order(
    a: (Option<&str>, Option<&Pattern>),
    b: (Option<&str>, Option<&Pattern>),
) -> Ordering {
    let by_host = match (a.0, b.0) {
        (Some(x), Some(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let by_pattern = match (a.1, b.1) {
        (Some(x), Some(y)) => y.precedence().cmp(&x.precedence()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_host.then(by_pattern)
}

/// Age order: older first; ties by namespace, then name. A missing creation time (an
/// object not yet stored) counts as newest.
pub fn age_key<R: Claimant + ?Sized>(route: &R) -> (bool, Option<&Time>, &str, &str) {
    let created = route.created();
    (created.is_none(), created, route.namespace(), route.name())
}

/// Decides, for every route, whether it is routed, with no RouteGrants (single-tenant).
pub fn admit<'a, R: Claimant + 'a>(routes: impl IntoIterator<Item = &'a R>) -> Vec<Admission> {
    admit_granted::<R, RouteGrant>(routes, &[])
}

/// Decides, for every route, whether it is routed under `grants` (empty: isolation off).
/// The result is in input order.
pub fn admit_granted<'a, R: Claimant + 'a, G: std::borrow::Borrow<RouteGrant>>(
    routes: impl IntoIterator<Item = &'a R>,
    grants: &[G],
) -> Vec<Admission> {
    let routes: Vec<&R> = routes.into_iter().collect();
    let grants = grant::GrantIndex::new(grants);
    let mut out = vec![Admission::Accepted; routes.len()];
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by(|&a, &b| age_key(routes[a]).cmp(&age_key(routes[b])));
    // Accepted routes so far, grouped by canonical pattern: conflicts only happen inside
    // a group, which keeps this near-linear for many routes.
    let mut accepted: HashMap<String, Vec<usize>> = HashMap::new();
    for i in order {
        let route = routes[i];
        if let Some(problem) = labels::route_name_problem(route.name()) {
            out[i] = Admission::InvalidName(problem);
            continue;
        }
        let canonical = match Pattern::parse(route.path()) {
            Ok(p) => {
                if let Some(d) = grant::denial(route, &p, &grants) {
                    out[i] = Admission::NotGranted(d);
                    continue;
                }
                p.canonical()
            }
            Err(e) => {
                out[i] = Admission::Invalid(e);
                continue;
            }
        };
        let group = accepted.entry(canonical).or_default();
        let winner = group.iter().copied().find(|&j| {
            let other = routes[j];
            hosts_overlap(route.host(), other.host())
                && methods_overlap(route.methods(), other.methods())
        });
        match winner {
            Some(j) => {
                out[i] = Admission::Conflict {
                    winner: routes[j].claimant_key(),
                }
            }
            None => group.push(i),
        }
    }
    out
}

#[cfg(test)]
mod serving_order_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_routes_first_then_the_more_specific_pattern() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        let (fixed, dynamic) = (p("/api/users/me"), p("/api/users/[id]"));
        assert_eq!(
            serving_order((None, Some(&fixed)), (None, Some(&dynamic))),
            Ordering::Less
        );
        assert_eq!(
            serving_order((Some("Shop.example"), Some(&dynamic)), (None, Some(&fixed))),
            Ordering::Less
        );
        assert_eq!(
            serving_order((None, None), (None, Some(&dynamic))),
            Ordering::Greater
        );
        assert_eq!(
            serving_order(
                (Some("a.example"), Some(&fixed)),
                (Some("A.EXAMPLE"), Some(&fixed))
            ),
            Ordering::Equal
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::route;

    #[test]
    fn a_route_whose_name_cannot_name_its_objects_is_not_routed_and_blocks_nobody() {
        let bad = route("shop-preview", "/api/x");
        let good = route("shop", "/api/x");
        let out = admit([&bad, &good]);
        assert!(matches!(out[0], Admission::InvalidName(m) if m.contains("-preview")));
        assert_eq!(out[1], Admission::Accepted);
    }

    #[test]
    fn a_route_outside_its_grant_is_not_routed_and_blocks_nobody() {
        use crate::grant::grant;
        let grants = [
            grant("shop", &["shop"], &["shop.example.com"], &["/"]),
            grant("blog", &["blog"], &["*"], &["/api/blog"]),
        ];
        // The older hijacker claims the shop's host: denied, so the shop's route wins.
        let hijack = route("grab", "/api/[[...x]]")
            .namespace("blog")
            .host("shop.example.com")
            .created(1);
        let shop = route("shop", "/api/[[...y]]")
            .namespace("shop")
            .host("shop.example.com")
            .created(5);
        let out = admit_granted([&hijack, &shop], &grants);
        assert!(
            matches!(&out[0], Admission::NotGranted(d) if d.reason == "HostNotAllowed"),
            "{out:?}"
        );
        assert_eq!(out[1], Admission::Accepted);
        // Without grants, today's rule: the older route wins.
        assert!(matches!(
            &admit([&hijack, &shop])[1],
            Admission::Conflict { .. }
        ));
    }

    #[test]
    fn older_route_wins_same_canonical_pattern() {
        let a = route("a", "/api/users/[id]").created(10);
        let b = route("b", "/api/users/[slug]").created(5);
        assert_eq!(
            admit([&a, &b]),
            vec![
                Admission::Conflict {
                    winner: "default/b".into()
                },
                Admission::Accepted
            ]
        );
    }

    #[test]
    fn same_age_breaks_ties_by_namespace_then_name() {
        let a = route("zed", "/api/x").created(1).namespace("a");
        let b = route("abc", "/api/x").created(1).namespace("b");
        let c = route("abc", "/api/x").created(1).namespace("a");
        assert_eq!(
            admit([&a, &b, &c]),
            vec![
                Admission::Conflict {
                    winner: "a/abc".into()
                },
                Admission::Conflict {
                    winner: "a/abc".into()
                },
                Admission::Accepted
            ]
        );
    }

    #[test]
    fn disjoint_methods_and_hosts_share_a_pattern() {
        let get = route("get", "/api/x").created(1).methods(&["GET"]);
        let post = route("post", "/api/x").created(2).methods(&["POST"]);
        let head = route("head", "/api/x").created(3).methods(&["HEAD"]);
        let host = route("host", "/api/x").created(4).host("Shop.Example.com");
        let host2 = route("host2", "/api/x").created(5).host("shop.example.COM");
        assert_eq!(
            admit([&get, &post, &head, &host, &host2]),
            vec![
                Admission::Accepted,
                Admission::Accepted,
                Admission::Conflict {
                    winner: "default/get".into()
                },
                Admission::Accepted,
                Admission::Conflict {
                    winner: "default/host".into()
                },
            ]
        );
    }

    #[test]
    fn a_loser_blocks_nobody_and_invalid_routes_are_reported() {
        let a = route("a", "/api/x").created(1).methods(&["GET"]);
        let b = route("b", "/api/x").created(2).methods(&["GET", "PUT"]);
        let c = route("c", "/api/x").created(3).methods(&["PUT"]);
        let bad = route("bad", "/api/[...x]/y").created(0);
        let got = admit([&a, &b, &c, &bad]);
        assert_eq!(got[0], Admission::Accepted);
        assert_eq!(
            got[1],
            Admission::Conflict {
                winner: "default/a".into()
            }
        );
        assert_eq!(got[2], Admission::Accepted);
        assert!(matches!(
            got[3],
            Admission::Invalid(PatternError::CatchAllNotLast { .. })
        ));
    }

    #[test]
    fn winner_going_away_promotes_the_next_oldest() {
        let a = route("a", "/api/x").created(1);
        let b = route("b", "/api/x").created(2);
        let c = route("c", "/api/x").created(3);
        assert_eq!(
            admit([&b, &c]),
            vec![
                Admission::Accepted,
                Admission::Conflict {
                    winner: "default/b".into()
                }
            ]
        );
        assert_eq!(
            admit([&a, &b])[1],
            Admission::Conflict {
                winner: "default/a".into()
            }
        );
    }

    #[test]
    fn method_overlap_rules() {
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert!(methods_overlap(None, Some(&s(&["GET"]))));
        assert!(methods_overlap(Some(&s(&["GET"])), Some(&s(&["HEAD"]))));
        assert!(!methods_overlap(Some(&s(&["POST"])), Some(&s(&["HEAD"]))));
        assert!(!hosts_overlap(Some("a.com"), None));
    }
}
