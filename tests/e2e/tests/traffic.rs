//! End to end: `kubectl apply` of ApiRoutes → the operator's Deployments → pods run by the
//! local node → the gateway (installed by the Helm chart) → the echo function, over real
//! sockets. The test runner (tests/run.sh) starts the cluster, installs the platform and
//! sets APIROUTES_CLUSTER_DIR / APIROUTES_GATEWAY_URL; without them these tests skip.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use apiroutes_e2e::{Cluster, Http, echo_route, eventually, load};

const READY: Duration = Duration::from_secs(90);

/// Waits until `path` answers 200 through the gateway and returns the echo's JSON.
async fn until_served(http: &Http, url: &str) -> serde_json::Value {
    eventually(&format!("200 from {url}"), READY, || async {
        match http.get(url).await {
            Ok(a) if a.status == 200 => Some(a.json()),
            _ => None,
        }
    })
    .await
}

#[tokio::test]
async fn routes_reach_the_function_with_nextjs_params() {
    let Some(cluster) = Cluster::platform_from_env("routes_reach_the_function").await else {
        return;
    };
    let ns = cluster.namespace("e2e-routing");
    let p = format!("/e2e/{}", ns.name);
    let keep = "  scaling: {minReplicas: 1, maxReplicas: 2}";
    let manifests = [
        echo_route("hello", &ns.name, &format!("{p}/hello"), keep),
        echo_route("user", &ns.name, &format!("{p}/users/[id]"), keep),
        echo_route("docs", &ns.name, &format!("{p}/docs/[...slug]"), keep),
        echo_route("shop", &ns.name, &format!("{p}/shop/[[...path]]"), keep),
    ]
    .join("---\n");
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&manifests));
    let gw = cluster.gateway_url();
    let http = Http::default();

    let v = until_served(&http, &format!("{gw}{p}/hello?x=1")).await;
    assert_eq!(v["path"], format!("{p}/hello"));
    assert_eq!(v["query"], "x=1");
    assert_eq!(
        v["apiroute"]["x-apiroute-name"],
        format!("{}/hello", ns.name)
    );

    let v = until_served(&http, &format!("{gw}{p}/users/a%20b")).await;
    assert_eq!(v["params"]["id"], "a b");
    assert_eq!(
        v["apiroute"]["x-apiroute-pattern"],
        format!("{p}/users/[id]")
    );

    let v = until_served(&http, &format!("{gw}{p}/docs/a/b/c")).await;
    assert_eq!(v["params"]["slug"], serde_json::json!(["a", "b", "c"]));

    let v = until_served(&http, &format!("{gw}{p}/shop")).await;
    assert_eq!(
        v["params"],
        serde_json::json!({"path": null}),
        "optional catch-all named without a value"
    );
    let v = until_served(&http, &format!("{gw}{p}/shop/x/y")).await;
    assert_eq!(v["params"]["path"], serde_json::json!(["x", "y"]));

    // A required catch-all never matches zero segments; unknown paths are 404 JSON.
    let a = http
        .get(&format!("{gw}{p}/docs"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 404);
    assert!(
        a.header("content-type")
            .unwrap_or_default()
            .contains("json")
    );
    // Trailing slash: Next's 308 to the cleaned path.
    let a = http
        .get(&format!("{gw}{p}/hello/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 308);
    assert_eq!(a.header("location"), Some(format!("{p}/hello").as_str()));

    // The status tells the user it is served.
    let status = cluster.kubectl_ok(
        &[
            "get",
            "ar",
            "user",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Accepted\")].status}",
        ],
        None,
    );
    assert_eq!(status, "True");
}

#[tokio::test]
async fn deleting_a_route_gives_404_and_removes_its_objects() {
    let Some(cluster) = Cluster::platform_from_env("deleting_a_route").await else {
        return;
    };
    let ns = cluster.namespace("e2e-delete");
    let path = format!("/e2e/{}/gone", ns.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "gone",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 1}",
        )),
    );
    let http = Http::default();
    let url = format!("{}{path}", cluster.gateway_url());
    until_served(&http, &url).await;
    cluster.kubectl_ok(&["delete", "ar", "gone", "-n", &ns.name], None);
    eventually("404 after delete", Duration::from_secs(20), || async {
        matches!(http.get(&url).await, Ok(a) if a.status == 404).then_some(())
    })
    .await;
    eventually(
        "Deployment garbage-collected",
        Duration::from_secs(60),
        || async {
            cluster
                .deployment_replicas(&ns.name, "gone")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_route_scaled_to_zero_wakes_on_the_first_request() {
    let Some(cluster) = Cluster::platform_from_env("scaled_to_zero_wakes").await else {
        return;
    };
    let ns = cluster.namespace("e2e-zero");
    let path = format!("/e2e/{}/sleepy", ns.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "sleepy",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 0, maxReplicas: 2, scaleToZeroAfterSeconds: 1}",
        )),
    );
    eventually(
        "scaled to zero with no pods",
        Duration::from_secs(120),
        || async {
            let replicas = cluster.deployment_replicas(&ns.name, "sleepy").await;
            (replicas.map(|r| r.0) == Some(0) && cluster.route_pods(&ns.name, "sleepy").await == 0)
                .then_some(())
        },
    )
    .await;
    let http = Http::default();
    let a = http
        .get(&format!(
            "{}{path}/../sleepy?first=1",
            cluster.gateway_url()
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.status, 200,
        "first request to a sleeping route: {:?}",
        a.body
    );
    assert_eq!(
        a.json()["path"],
        path,
        "the function sees the normalized path"
    );
    let timing = a.header("server-timing").unwrap_or_default().to_owned();
    assert!(
        timing.contains("activation;dur="),
        "Server-Timing says it waited: {timing:?}"
    );
}

#[tokio::test]
async fn a_burst_scales_up_and_idleness_scales_back_to_zero() {
    let Some(cluster) = Cluster::platform_from_env("burst_scales").await else {
        return;
    };
    let ns = cluster.namespace("e2e-burst");
    let path = format!("/e2e/{}/busy", ns.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "busy",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 0, maxReplicas: 4, targetConcurrency: 1, scaleToZeroAfterSeconds: 5}",
        )),
    );
    let url = format!("{}{path}?sleep_ms=300", cluster.gateway_url());
    let http = Http::default();
    until_served(&http, &url).await;

    let stop = Arc::new(AtomicBool::new(false));
    let burst = tokio::spawn(load(
        url,
        6,
        Duration::ZERO,
        Duration::from_secs(60),
        stop.clone(),
    ));
    let peak = eventually(
        "scale-up under a burst",
        Duration::from_secs(60),
        || async {
            let (spec, _) = cluster.deployment_replicas(&ns.name, "busy").await?;
            (spec >= 2).then_some(spec)
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = burst.await.unwrap_or_default();
    assert!(peak >= 2);
    assert_eq!(
        result.failed, 0,
        "requests failed during the burst: {:?}",
        result.failures
    );
    eventually(
        "back to zero when idle",
        Duration::from_secs(180),
        || async { (cluster.deployment_replicas(&ns.name, "busy").await?.0 == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn an_image_change_under_steady_load_fails_no_request() {
    let Some(cluster) = Cluster::platform_from_env("image_change_under_load").await else {
        return;
    };
    let ns = cluster.namespace("e2e-rollout");
    let path = format!("/e2e/{}/roll", ns.name);
    let v1 = "  env: [{name: ECHO_NAME, value: v1}]\n  scaling: {minReplicas: 2, maxReplicas: 2}";
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route("roll", &ns.name, &path, v1)),
    );
    let url = format!("{}{path}", cluster.gateway_url());
    let http = Http::default();
    eventually("v1 served by 2 ready replicas", READY, || async {
        let ready = cluster.deployment_replicas(&ns.name, "roll").await?.1 == 2;
        let served = matches!(http.get(&url).await, Ok(a) if a.status == 200);
        (ready && served).then_some(())
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn(load(
        url.clone(),
        2,
        Duration::from_millis(20),
        Duration::from_secs(120),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v2 = echo_route(
        "roll",
        &ns.name,
        &path,
        &v1.replace("value: v1", "value: v2"),
    )
    .replace("echo:0.1.0", "echo:0.1.1");
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&v2));
    eventually("only v2 answers", Duration::from_secs(120), || async {
        let a = http.get(&url).await.ok()?;
        (a.json()["server"] == "v2" && cluster.route_pods(&ns.name, "roll").await == 2)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = steady.await.unwrap_or_default();
    assert_eq!(
        result.failed, 0,
        "failed during the rollout: {:?}",
        result.failures
    );
    assert!(
        result.servers.contains_key("v1") && result.servers.contains_key("v2"),
        "{:?}",
        result.servers
    );
}

#[tokio::test]
async fn restarting_the_operator_mid_load_fails_no_request() {
    let Some(cluster) = Cluster::platform_from_env("operator_restart").await else {
        return;
    };
    let ns = cluster.namespace("e2e-restart");
    let path = format!("/e2e/{}/steady", ns.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "steady",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 1, maxReplicas: 3}",
        )),
    );
    let url = format!("{}{path}", cluster.gateway_url());
    let http = Http::default();
    until_served(&http, &url).await;
    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn(load(
        url,
        2,
        Duration::from_millis(20),
        Duration::from_secs(90),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every operator pod goes (leader included); the Deployment brings them back.
    cluster.kubectl_ok(
        &[
            "delete",
            "pod",
            "-n",
            "apiroutes-system",
            "-l",
            "app.kubernetes.io/component=operator",
            "--wait=false",
        ],
        None,
    );
    eventually(
        "operator back and leading",
        Duration::from_secs(90),
        || async {
            let out = cluster.kubectl(
                &[
                    "get",
                    "pod",
                    "-n",
                    "apiroutes-system",
                    "-l",
                    "apiroutes.dev/leader=true",
                    "-o",
                    "name",
                ],
                None,
            );
            (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = steady.await.unwrap_or_default();
    assert!(result.ok > 10, "{result:?}");
    assert_eq!(
        result.failed, 0,
        "failed while the operator restarted: {:?}",
        result.failures
    );
}

#[tokio::test]
async fn a_forged_endpointslice_with_the_operators_labels_gets_no_traffic() {
    let Some(cluster) = Cluster::platform_from_env("forged_endpointslice").await else {
        return;
    };
    let ns = cluster.namespace("e2e-forged");
    let p = format!("/e2e/{}", ns.name);
    // A real listener to point the forged slice at: another route's running pod.
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "decoy",
            &ns.name,
            &format!("{p}/decoy"),
            "  env: [{name: ECHO_NAME, value: decoy}]\n  scaling: {minReplicas: 1, maxReplicas: 1}",
        )),
    );
    let http = Http::default();
    let gw = cluster.gateway_url();
    until_served(&http, &format!("{gw}{p}/decoy")).await;
    let jsonpath = |field: &str| {
        cluster.kubectl_ok(
            &[
                "get",
                "endpointslices",
                "-n",
                &ns.name,
                "-l",
                "apiroutes.dev/route=decoy",
                "-o",
                &format!("jsonpath={{.items[0].{field}}}"),
            ],
            None,
        )
    };
    let (ip, port) = (
        jsonpath("endpoints[0].addresses[0]"),
        jsonpath("ports[0].port"),
    );
    assert!(
        !ip.is_empty() && !port.is_empty(),
        "decoy endpoint {ip}:{port}"
    );

    // The victim sleeps (no endpoints of its own) ...
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "victim",
            &ns.name,
            &format!("{p}/victim"),
            "  env: [{name: ECHO_NAME, value: victim}]\n  scaling: {minReplicas: 0, maxReplicas: 1, scaleToZeroAfterSeconds: 1}",
        )),
    );
    eventually("victim at zero", Duration::from_secs(120), || async {
        let replicas = cluster.deployment_replicas(&ns.name, "victim").await;
        (replicas.map(|r| r.0) == Some(0) && cluster.route_pods(&ns.name, "victim").await == 0)
            .then_some(())
    })
    .await;
    // ... and someone who may create EndpointSlices copies the operator's labels onto one
    // pointing at the decoy. Labels alone must not be trusted: no owner chain, no traffic.
    let forged = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: victim-forged\n  namespace: {ns}\n  labels:\n    \
         app.kubernetes.io/managed-by: apiroutes-operator\n    apiroutes.dev/route: victim\n    \
         apiroutes.dev/variant: main\n    kubernetes.io/service-name: victim\n\
         addressType: IPv4\nports: [{{name: http, port: {port}, protocol: TCP}}]\n\
         endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n",
        ns = ns.name
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&forged));
    // Give the gateways time to see it (they watch; well under this).
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The request is held for activation and answered by the victim's own pod.
    let a = http
        .get(&format!("{gw}{p}/victim"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.json()["server"],
        "victim",
        "proxied to the forged address"
    );
    let timing = a.header("server-timing").unwrap_or_default().to_owned();
    assert!(
        timing.contains("activation;dur="),
        "held for activation, not sent to the forged endpoint: {timing:?}"
    );
    // And while the victim is up, the forged endpoint stays out of its rotation.
    for _ in 0..20 {
        let a = http
            .get(&format!("{gw}{p}/victim"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.json()["server"],
            "victim",
            "proxied to the forged address"
        );
    }
}
