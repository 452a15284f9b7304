//! `apiroutes routes`: the live route table, in the order the gateway tries routes.
//!
//! [`table`] and [`render`] are pure; [`fetch`] reads the ApiRoutes from the cluster.
//! Who is routed is decided by `apiroutes_crds::conflict::admit` over every ApiRoute the
//! gateway sees (all namespaces when readable), exactly as the operator and the gateway
//! decide it; a namespace filter only narrows what is printed.

use apiroutes_crds::{
    ApiRoute, Pattern, RouteGrant,
    conflict::{Admission, admit_granted, age_key, serving_order},
};
use kube::{Api, Client, api::ListParams};

use crate::error::Result;

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub pattern: String,
    /// Comma-separated, or `*` for all methods.
    pub methods: String,
    /// `*` for any host.
    pub host: String,
    /// `namespace/name`.
    pub route: String,
    /// `Accepted`, `Conflict→ns/winner` or `Invalid: why`.
    pub status: String,
    /// `readyReplicas/replicas`, or `-` without a status.
    pub ready: String,
}

/// Rows for `routes`, sorted the way the gateway matches: routes with a host first (by
/// host), then hostless ones; within those, by Next.js precedence, greatest first; routes
/// with one pattern by age (the winner before the routes it beats); invalid ones last.
/// `show` picks which routes are printed (e.g. one namespace); all take part in `admit`.
pub fn table(
    routes: &[ApiRoute],
    grants: &[RouteGrant],
    show: impl Fn(&ApiRoute) -> bool,
) -> Vec<Row> {
    let admissions = admit_granted(routes, grants);
    let patterns: Vec<Option<Pattern>> = routes
        .iter()
        .map(|r| Pattern::parse(&r.spec.path).ok())
        .collect();
    let mut order: Vec<usize> = (0..routes.len()).filter(|&i| show(&routes[i])).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (routes[i].spec.host.as_deref(), patterns[i].as_ref());
        serving_order(key(a), key(b)).then_with(|| age_key(&routes[a]).cmp(&age_key(&routes[b])))
    });
    order
        .into_iter()
        .map(|i| {
            let r = &routes[i];
            Row {
                pattern: r.spec.path.clone(),
                methods: r
                    .spec
                    .methods
                    .as_ref()
                    .map_or_else(|| "*".to_owned(), |m| m.join(",")),
                host: r.spec.host.clone().unwrap_or_else(|| "*".to_owned()),
                route: r.key(),
                status: match &admissions[i] {
                    Admission::Accepted => "Accepted".to_owned(),
                    Admission::Conflict { winner } => format!("Conflict→{winner}"),
                    Admission::Invalid(e) => format!("Invalid: {e}"),
                    Admission::InvalidName(m) => format!("Invalid: {m}"),
                    Admission::NotGranted(d) => d.reason.to_owned(),
                },
                ready: r.status.as_ref().map_or_else(
                    || "-".to_owned(),
                    |s| format!("{}/{}", s.ready_replicas, s.replicas),
                ),
            }
        })
        .collect()
}

/// The rows as a kubectl-style table (columns padded, three spaces apart).
pub fn render(rows: &[Row]) -> String {
    const HEADER: [&str; 6] = ["PATTERN", "METHODS", "HOST", "ROUTE", "STATUS", "READY"];
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.pattern.as_str(),
                &r.methods,
                &r.host,
                &r.route,
                &r.status,
                &r.ready,
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&HEADER).chain(&cells) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Which routes to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespace(String),
}

/// Reads the ApiRoutes the gateway sees: every namespace when the credentials may list
/// them, else the one namespace asked for (conflicts with other namespaces then go unseen,
/// and the caller says so).
/// The cluster's RouteGrants (none when the CRD is not installed); `None` when they
/// cannot be read, so the table cannot say what the gateway decides.
pub async fn fetch_grants(client: Client) -> Option<Vec<RouteGrant>> {
    let api: Api<RouteGrant> = Api::all(client);
    match api.list(&ListParams::default()).await {
        Ok(list) => Some(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Some(vec![]),
        Err(_) => None,
    }
}

pub async fn fetch(client: Client, scope: &Scope) -> Result<(Vec<ApiRoute>, bool)> {
    let all: Api<ApiRoute> = Api::all(client.clone());
    match all.list(&ListParams::default()).await {
        Ok(list) => Ok((list.items, true)),
        Err(kube::Error::Api(status)) if status.code == 403 => match scope {
            Scope::Namespace(ns) => {
                let api: Api<ApiRoute> = Api::namespaced(client, ns);
                Ok((api.list(&ListParams::default()).await?.items, false))
            }
            Scope::All => Err(kube::Error::Api(status).into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use apiroutes_crds::{ApiRouteStatus, testing::route};

    fn ready(mut r: ApiRoute, ready: i32, replicas: i32) -> ApiRoute {
        r.status = Some(ApiRouteStatus {
            ready_replicas: ready,
            replicas,
            ..ApiRouteStatus::default()
        });
        r
    }

    #[test]
    fn sorted_as_the_gateway_matches() {
        let routes = vec![
            route("opt", "/api/shop/[[...path]]").created(1),
            route("hello", "/api/hello").created(2),
            ready(route("user", "/api/users/[id]").created(3), 2, 2),
            route("me", "/api/users/me").created(4).methods(&["GET"]),
            route("docs", "/api/[...slug]").created(5),
            route("user2", "/api/users/[slug]")
                .created(6)
                .namespace("b"),
            route("shop-host", "/api/hello")
                .created(7)
                .host("shop.example.com"),
            route("bad", "/api/[...x]/y").created(8),
            route("users", "/api/users").created(9),
        ];
        let rows = table(&routes, &[], |_| true);
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.route.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("default/shop-host", "Accepted"),
                ("default/hello", "Accepted"),
                // Static siblings in name order, a route before the routes under it.
                ("default/opt", "Accepted"),
                ("default/users", "Accepted"),
                ("default/me", "Accepted"),
                ("default/user", "Accepted"),
                ("b/user2", "Conflict→default/user"),
                ("default/docs", "Accepted"),
                (
                    "default/bad",
                    "Invalid: catch-all \"[...x]\" at byte 5 must be the last segment"
                ),
            ]
        );
        assert_eq!(rows[5].ready, "2/2");
        assert_eq!(rows[1].ready, "-");
        assert_eq!(rows[4].methods, "GET");
        assert_eq!(rows[1].methods, "*");
        assert_eq!(rows[0].host, "shop.example.com");
    }

    #[test]
    fn a_filter_narrows_the_rows_not_the_decision() {
        let routes = vec![
            route("a", "/api/x").created(1).namespace("one"),
            route("b", "/api/x").created(2).namespace("two"),
        ];
        let rows = table(&routes, &[], |r| {
            r.metadata.namespace.as_deref() == Some("two")
        });
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "Conflict→one/a");
    }

    #[test]
    fn routes_outside_their_grant_say_so() {
        use apiroutes_crds::grant::grant;
        let grants = [grant("shop", &["shop"], &["shop.example.com"], &["/"])];
        let routes = vec![
            route("grab", "/api/x")
                .namespace("blog")
                .host("shop.example.com")
                .created(1),
            route("mine", "/api/x")
                .namespace("shop")
                .host("shop.example.com")
                .created(2),
        ];
        let rows = table(&routes, &grants, |_| true);
        let status: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.route.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            status,
            [("blog/grab", "HostNotAllowed"), ("shop/mine", "Accepted")]
        );
    }

    #[test]
    fn renders_aligned_columns() {
        let rows = table(
            &[
                ready(route("hello", "/api/hello").created(1), 1, 1),
                route("u", "/api/users/[id]")
                    .created(2)
                    .methods(&["GET", "PUT"]),
            ],
            &[],
            |_| true,
        );
        assert_eq!(
            render(&rows),
            "PATTERN           METHODS   HOST   ROUTE           STATUS     READY\n\
             /api/hello        *         *      default/hello   Accepted   1/1\n\
             /api/users/[id]   GET,PUT   *      default/u       Accepted   -\n"
        );
    }
}
