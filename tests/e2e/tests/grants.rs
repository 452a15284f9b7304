//! Isolation between teams (issue 13): with RouteGrants in the cluster, a namespace routes
//! only the hosts and paths it is granted. The attack: a team with `edit` in its own
//! namespace claims another team's host with a catch-all, created first, so that without
//! grants it wins the conflict and receives that host's requests.

use std::time::Duration;

use apiroutes_e2e::{Cluster, Http, echo_route, eventually};

/// Cluster-scoped RouteGrants for one test, deleted when dropped: while any exists,
/// isolation is on for the whole cluster.
struct Grants<'a> {
    cluster: &'a Cluster,
    names: Vec<String>,
}

impl Drop for Grants<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self
                .cluster
                .kubectl(&["delete", "routegrant", name, "--wait=false"], None);
        }
    }
}

/// The route's `Accepted` condition as `status|reason`.
fn accepted(cluster: &Cluster, ns: &str, name: &str) -> String {
    let (status, reason, _) = cluster.condition(ns, name, "Accepted");
    format!("{status}|{reason}")
}

#[tokio::test]
async fn a_namespace_cannot_take_a_host_or_path_it_is_not_granted() {
    let Some(cluster) = Cluster::platform_from_env("route_grants").await else {
        return;
    };
    let shop = cluster.namespace("e2e-shop");
    let blog = cluster.namespace("e2e-blog");
    let host = format!("{}.example.com", shop.name);
    let keep = "  scaling: {minReplicas: 1, maxReplicas: 1}";
    // Paths unique to this run (a previous run's namespaces may still be terminating).
    let (granted, other) = (
        format!("/{}-api", blog.name),
        format!("/{}-other", blog.name),
    );

    // The hijack, first: the blog team claims the shop's host with a catch-all.
    let hijack = echo_route(
        "grab",
        &blog.name,
        "/api/[[...all]]",
        &format!("  host: {host}\n{keep}"),
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&hijack));
    let grants = Grants {
        cluster: &cluster,
        names: vec![
            format!("{}-grant", shop.name),
            format!("{}-grant", blog.name),
        ],
    };
    let manifest = format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: RouteGrant\nmetadata: {{name: {}}}\n\
         spec: {{namespaces: [{}], hosts: [\"{host}\"]}}\n---\n\
         apiVersion: apiroutes.dev/v1alpha1\nkind: RouteGrant\nmetadata: {{name: {}}}\n\
         spec: {{namespaces: [{}], hosts: [\"*\"], pathPrefixes: [{granted}]}}\n",
        grants.names[0], shop.name, grants.names[1], blog.name
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    let ours = echo_route(
        "mine",
        &shop.name,
        "/api/[[...rest]]",
        &format!("  host: {host}\n{keep}"),
    ) + "---\n"
        + &echo_route("inside", &blog.name, &format!("{granted}/[id]"), keep)
        + "---\n"
        + &echo_route("outside", &blog.name, &format!("{other}/[id]"), keep);
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&ours));

    // The operator says why, on the route and in an Event.
    let wait = Duration::from_secs(120);
    eventually("grab: HostNotAllowed", wait, || async {
        (accepted(&cluster, &blog.name, "grab") == "False|HostNotAllowed").then_some(())
    })
    .await;
    eventually("outside: PathNotAllowed", wait, || async {
        (accepted(&cluster, &blog.name, "outside") == "False|PathNotAllowed").then_some(())
    })
    .await;
    for (ns, name) in [(&shop.name, "mine"), (&blog.name, "inside")] {
        eventually(&format!("{name}: Accepted"), wait, || async {
            (accepted(&cluster, ns, name) == "True|Accepted").then_some(())
        })
        .await;
    }
    let events = cluster.kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            &blog.name,
            "--field-selector",
            "reason=HostNotAllowed",
            "-o",
            "name",
        ],
        None,
    );
    assert!(!events.trim().is_empty(), "a HostNotAllowed Event for grab");

    // The gateway agrees: the shop's host reaches the shop, the granted path the blog,
    // and the path outside the blog's grant nobody.
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();
    let v = eventually("the shop's host served by the shop", wait, || async {
        let a = http
            .request("GET", &format!("{gw}/api/cart"), &[("host", &host)], "")
            .await
            .ok()?;
        (a.status == 200).then(|| a.json())
    })
    .await;
    assert_eq!(
        v["apiroute"]["x-apiroute-name"],
        format!("{}/mine", shop.name),
        "the older hijack must not win the shop's host"
    );
    let v = eventually("the blog's granted path", wait, || async {
        let a = http.get(&format!("{gw}{granted}/7")).await.ok()?;
        (a.status == 200).then(|| a.json())
    })
    .await;
    assert_eq!(v["params"]["id"], "7");
    let a = http
        .get(&format!("{gw}{other}/7"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 404, "a path outside the grant is not routed");
    drop(grants);
}
