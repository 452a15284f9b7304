//! No request lost when scaling, on the real node: a route taken N→0→N under a trickle of
//! traffic, a function container killed without warning (SIGKILL) under load, and a
//! rollout of the gateway itself under keep-alive load. Function pods keep serving for a
//! few seconds after deletion (a preStop sleep) while their endpoints turn `terminating`,
//! and the gateway holds a request whose endpoints all refuse, as for a route at zero.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use apiroutes_e2e::{Cluster, Http, LoadResult, echo_route, eventually, load, load_retrying};

const READY: Duration = Duration::from_secs(90);

/// Starts a bounded load loop on `url`; stop it with the returned flag. `retrying`: the
/// clients resend a GET whose kept-alive connection closed under it ([`load_retrying`]).
fn start_load(
    url: &str,
    clients: usize,
    pause: Duration,
    retrying: bool,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<LoadResult>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (url, max) = (url.to_owned(), Duration::from_secs(150));
    let task = if retrying {
        tokio::spawn(load_retrying(url, clients, pause, max, stop.clone()))
    } else {
        tokio::spawn(load(url, clients, pause, max, stop.clone()))
    };
    (stop, task)
}

async fn finish(stop: Arc<AtomicBool>, task: tokio::task::JoinHandle<LoadResult>) -> LoadResult {
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap_or_default()
}

/// `kubectl get pods -n NS -l SELECTOR -o jsonpath=...` (empty when that fails).
fn pods_jsonpath(cluster: &Cluster, ns: &str, selector: &str, jsonpath: &str) -> String {
    let jsonpath = format!("jsonpath={jsonpath}");
    let out = cluster.kubectl(
        &["get", "pods", "-n", ns, "-l", selector, "-o", &jsonpath],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until no pod matching `selector` is terminating (the old ones have drained).
async fn until_none_terminating(
    cluster: &Cluster,
    ns: &str,
    selector: &str,
    what: &str,
    timeout: Duration,
) {
    eventually(what, timeout, || async {
        pods_jsonpath(
            cluster,
            ns,
            selector,
            "{.items[*].metadata.deletionTimestamp}",
        )
        .is_empty()
        .then_some(())
    })
    .await;
}

/// Waits until the route's Deployment has `n` ready replicas and the gateway serves it.
async fn ready_replicas(cluster: &Cluster, ns: &str, name: &str, url: &str, n: i32) {
    let http = Http::default();
    eventually(&format!("{n} ready replicas of {name}"), READY, || async {
        let ready = cluster.deployment_replicas(ns, name).await? == (n, n);
        let served = matches!(http.get(url).await, Ok(a) if a.status == 200);
        (ready && served).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_route_taken_to_zero_and_back_under_trickle_traffic_fails_no_request() {
    let Some(cluster) = Cluster::platform_from_env("scale_n_0_n").await else {
        return;
    };
    let ns = cluster.namespace("e2e-n0n");
    let path = format!("/e2e/{}/trickle", ns.name);
    let url = format!("{}{path}", cluster.gateway_url());
    let apply = |min: u32, max: u32| {
        cluster.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&echo_route(
                "trickle",
                &ns.name,
                &path,
                &format!("  scaling: {{minReplicas: {min}, maxReplicas: {max}}}"),
            )),
        );
    };
    apply(3, 3);
    ready_replicas(&cluster, &ns.name, "trickle", &url, 3).await;

    let (stop, task) = start_load(&url, 2, Duration::from_millis(25), false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // N→0 behind the autoscaler's back: every pod is deleted at once. The held requests'
    // demand (and the route's minimum) bring it back to N.
    cluster.kubectl_ok(
        &[
            "scale",
            "deployment",
            "trickle",
            "-n",
            &ns.name,
            "--replicas=0",
        ],
        None,
    );
    until_none_terminating(
        &cluster,
        &ns.name,
        "apiroutes.dev/route=trickle",
        "the old pods gone",
        READY,
    )
    .await;
    ready_replicas(&cluster, &ns.name, "trickle", &url, 3).await;
    // And a scale-down through the spec (3→1): the two pods that go drain.
    apply(1, 1);
    ready_replicas(&cluster, &ns.name, "trickle", &url, 1).await;
    eventually("scaled down to one pod", READY, || async {
        (cluster.route_pods(&ns.name, "trickle").await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = finish(stop, task).await;
    eprintln!("N→0→N and 3→1: {} ok, {} failed", result.ok, result.failed);
    assert!(result.ok > 20, "{result:?}");
    assert_eq!(
        result.failed, 0,
        "failed while scaling: {:?}",
        result.failures
    );
}

/// The containerd socket of the cluster's node (`CONTAINERD_ADDRESS` in the cluster's env).
fn containerd_address(cluster: &Cluster) -> String {
    if let Ok(a) = std::env::var("CONTAINERD_ADDRESS") {
        return a;
    }
    let env = std::fs::read_to_string(cluster.dir.join("env")).unwrap_or_default();
    env.lines()
        .find_map(|l| {
            l.trim_start_matches("export ")
                .strip_prefix("CONTAINERD_ADDRESS=")
        })
        .map(|v| v.trim_matches('"').to_owned())
        .expect("CONTAINERD_ADDRESS in the cluster's env")
}

#[tokio::test]
async fn a_function_killed_without_warning_fails_only_requests_it_had() {
    let Some(cluster) = Cluster::platform_from_env("sigkill").await else {
        return;
    };
    let ns = cluster.namespace("e2e-kill");
    let path = format!("/e2e/{}/victim", ns.name);
    // Each answer takes 40 ms, so a kill finds requests in flight on the victim.
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "victim",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 2, maxReplicas: 2}\n  env: [{name: ECHO_DELAY_MS, value: \"40\"}]",
        )),
    );
    let url = format!("{}{path}", cluster.gateway_url());
    ready_replicas(&cluster, &ns.name, "victim", &url, 2).await;
    let clients = 4;
    let (stop, task) = start_load(&url, clients, Duration::from_millis(5), false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let id = pods_jsonpath(
        &cluster,
        &ns.name,
        "apiroutes.dev/route=victim",
        "{.items[0].status.containerStatuses[0].containerID}",
    );
    let id = id.trim().trim_start_matches("containerd://").to_owned();
    assert!(!id.is_empty(), "no container id");
    let ctr = cluster.bin.join("ctr");
    let killed = std::process::Command::new(&ctr)
        .args(["--address", &containerd_address(&cluster), "-n", "k8s.io"])
        .args(["task", "kill", "--signal", "SIGKILL", &id])
        .output()
        .expect("run ctr");
    assert!(
        killed.status.success(),
        "ctr task kill: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    // Through the restart: the kubelet starts the container again and it turns ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ready_replicas(&cluster, &ns.name, "victim", &url, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = finish(stop, task).await;
    eprintln!(
        "SIGKILL under load: {} ok, {} failed {:?}",
        result.ok, result.failed, result.failures
    );
    assert!(result.ok > 50, "{result:?}");
    // Only the requests that were on the victim when it died may fail (at most one per
    // client), and each of those had reached it: none failed for want of a connection.
    assert!(
        result.failed <= clients as u64,
        "more failures than requests in flight: {result:?}"
    );
    for f in &result.failures {
        assert!(
            !f.contains("upstream_connect") && !f.contains("no_route"),
            "a request that never reached the victim failed: {f}"
        );
    }
}

#[tokio::test]
async fn a_gateway_rollout_under_keep_alive_load_fails_no_request() {
    let Some(cluster) = Cluster::platform_from_env("gateway_rollout").await else {
        return;
    };
    let ns = cluster.namespace("e2e-gwroll");
    let path = format!("/e2e/{}/steady", ns.name);
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&echo_route(
            "steady",
            &ns.name,
            &path,
            "  scaling: {minReplicas: 1, maxReplicas: 1}",
        )),
    );
    let url = format!("{}{path}", cluster.gateway_url());
    ready_replicas(&cluster, &ns.name, "steady", &url, 1).await;
    let gw = ["-n", "apiroutes-system", "deployment/apiroutes-gateway"];
    // An HTTP/1 connection the old gateway closes after its quiet period can cross a
    // request already sent on it; clients resend such a GET (RFC 9112 §9.3.1), as browsers
    // and hyper's own pool (for requests not yet written) do. Retries are counted.
    let (stop, task) = start_load(&url, 4, Duration::from_millis(10), true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kubectl_ok(&["rollout", "restart", gw[2], gw[0], gw[1]], None);
    cluster.kubectl_ok(
        &["rollout", "status", gw[2], gw[0], gw[1], "--timeout=120s"],
        None,
    );
    // The old pods are gone only after their drain; keep the load on until then.
    until_none_terminating(
        &cluster,
        "apiroutes-system",
        "app.kubernetes.io/component=gateway",
        "old gateway pods gone",
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = finish(stop, task).await;
    eprintln!(
        "gateway rollout: {} ok, {} failed, {} resent on a new connection",
        result.ok, result.failed, result.retried
    );
    assert!(result.ok > 50, "{result:?}");
    assert_eq!(
        result.failed, 0,
        "failed during the gateway rollout: {:?}",
        result.failures
    );
}
