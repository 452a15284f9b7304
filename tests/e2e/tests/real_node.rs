//! End to end on the real node (kubelet, containerd, runc): what only real containers show.
//! A function Deployment made by the operator runs as 65532, unable to write its image's
//! files, with a writable `/tmp` (the image's, or an emptyDir under a read-only root); `kubectl logs` shows what it printed; a container over its memory
//! limit is `OOMKilled`; a missing image and a crashing process reach the ApiRoute's
//! `Ready` condition as `ImagePullFailing` and `CrashLooping`.

use std::time::Duration;

use apiroutes_e2e::{Cluster, Http, eventually};

const FIXTURES: &str = "ghcr.io/apiroutes/e2e-fixtures:0.1.0";

/// An always-on (minReplicas 1) route of the fixtures image serving `handler`.
fn fixture_route(name: &str, ns: &str, path: &str, handler: &str, extra: &str) -> String {
    fixture_route_env(name, ns, path, handler, &[], extra)
}

/// The same, with more environment variables for the handler.
fn fixture_route_env(
    name: &str,
    ns: &str,
    path: &str,
    handler: &str,
    env: &[(&str, &str)],
    extra: &str,
) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!(", {{name: {k}, value: \"{v}\"}}"))
        .collect();
    format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  path: \"{path}\"\n  image: {FIXTURES}\n  readinessPath: /healthz\n  \
         env: [{{name: APIROUTES_HANDLER, value: \"{handler}\"}}{env}]\n  \
         scaling: {{minReplicas: 1, maxReplicas: 1}}\n{extra}\n"
    )
}

/// The ApiRoute's `Ready` condition as `(status, reason, message)`.
fn ready(cluster: &Cluster, ns: &str, name: &str) -> (String, String, String) {
    cluster.condition(ns, name, "Ready")
}

#[tokio::test]
async fn functions_run_as_nonroot_on_a_read_only_root_and_log_to_kubectl() {
    let Some(cluster) = Cluster::platform_from_env("real_node_whoami").await else {
        return;
    };
    let ns = cluster.namespace("e2e-node");
    let n = &ns.name;
    let manifests = [
        fixture_route(
            "whoami",
            n,
            &format!("/api/{n}/whoami"),
            "pages/api/whoami.mjs",
            "",
        ),
        fixture_route(
            "whoami-ro",
            n,
            &format!("/api/{n}/whoami-ro"),
            "pages/api/whoami.mjs",
            "  readOnlyRootFilesystem: true",
        ),
        fixture_route("log", n, &format!("/api/{n}/log"), "pages/api/log.mjs", ""),
    ]
    .join("---\n");
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&manifests));
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();

    for (route, root) in [("whoami", "EACCES"), ("whoami-ro", "EROFS")] {
        let who = eventually("GET whoami", Duration::from_secs(120), || async {
            let a = http.get(&format!("{gw}/api/{n}/{route}")).await.ok()?;
            (a.status == 200).then(|| a.json())
        })
        .await;
        assert_eq!(who["uid"], 65532, "{route}: {who}");
        assert_eq!(who["gid"], 65532, "{route}: {who}");
        // Writable root or not, uid 65532 cannot write what the image's root owns.
        assert_eq!(who["writeRoot"], root, "{route}: {who}");
        assert_eq!(who["writeTmp"], "ok", "{route}: /tmp is writable: {who}");
        assert!(
            who["node"].as_str().is_some_and(|v| v.starts_with("v24.")),
            "{who}"
        );
    }

    // What the function prints reaches `kubectl logs` (API server → kubelet → containerd).
    let token = format!("token-{n}");
    let logged = eventually("GET log", Duration::from_secs(120), || async {
        let a = http
            .get(&format!("{gw}/api/{n}/log?msg={token}"))
            .await
            .ok()?;
        (a.status == 200).then_some(())
    });
    logged.await;
    eventually(
        "kubectl logs shows the line",
        Duration::from_secs(30),
        || async {
            let out = cluster.kubectl(&["logs", "-n", n, "deploy/log", "--all-containers"], None);
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("fixture log: {token}"))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn pod_failures_reach_the_route_status() {
    let Some(cluster) = Cluster::platform_from_env("real_node_failures").await else {
        return;
    };
    let ns = cluster.namespace("e2e-fail");
    let n = &ns.name;
    let missing = format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: missing, namespace: {n}}}\n\
         spec:\n  path: \"/api/{n}/missing\"\n  image: ghcr.io/apiroutes/no-such-image:0.0.1\n  \
         scaling: {{minReplicas: 1, maxReplicas: 1}}\n"
    );
    let crash = fixture_route(
        "crash",
        n,
        &format!("/api/{n}/crash"),
        "pages/api/no-such-handler.mjs",
        "",
    );
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!("{missing}---\n{crash}")),
    );

    let (status, reason, message) = eventually(
        "missing image → ImagePullFailing",
        Duration::from_secs(120),
        || async {
            let r = ready(&cluster, n, "missing");
            (r.1 == "ImagePullFailing").then_some(r)
        },
    )
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("no-such-image"), "{reason}: {message}");

    let (status, _, message) = eventually(
        "crashing process → CrashLooping",
        Duration::from_secs(180),
        || async {
            let r = ready(&cluster, n, "crash");
            (r.1 == "CrashLooping").then_some(r)
        },
    )
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("restarts"), "{message}");
}

#[tokio::test]
async fn a_function_over_its_memory_limit_is_oom_killed_and_restarted() {
    let Some(cluster) = Cluster::platform_from_env("real_node_oom").await else {
        return;
    };
    let ns = cluster.namespace("e2e-oom");
    let n = &ns.name;
    let hog = fixture_route(
        "hog",
        n,
        &format!("/api/{n}/hog"),
        "pages/api/hog.mjs",
        "  resources: {limits: {memory: 128Mi}}\n",
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&hog));
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();
    eventually("the hog is Ready", Duration::from_secs(120), || async {
        let (s, _, _) = ready(&cluster, n, "hog");
        (s == "True").then_some(())
    })
    .await;
    // The request dies with its process: the gateway answers 502 (or 504), never 200.
    let a = http.get(&format!("{gw}/api/{n}/hog")).await;
    assert!(
        a.as_ref().map_or(true, |a| a.status >= 500),
        "{:?}",
        a.map(|a| a.status)
    );

    let reason = eventually(
        "the container was OOMKilled",
        Duration::from_secs(60),
        || async {
            let out = cluster.kubectl_ok(
                &[
                    "get",
                    "pods",
                    "-n",
                    n,
                    "-l",
                    "apiroutes.dev/route=hog",
                    "-o",
                    "jsonpath={.items[*].status.containerStatuses[*].lastState.terminated.reason}",
                ],
                None,
            );
            out.contains("OOMKilled").then_some(out)
        },
    )
    .await;
    assert!(reason.contains("OOMKilled"));
    // Restarted: the route serves again (the healthz probe passes after the restart).
    eventually(
        "the hog is Ready again",
        Duration::from_secs(120),
        || async {
            let (s, _, _) = ready(&cluster, n, "hog");
            (s == "True").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_team_pod_cannot_push_load_to_the_autoscaler() {
    let Some(cluster) = Cluster::platform_from_env("autoscaler_auth").await else {
        return;
    };
    let ns = cluster.namespace("e2e-intruder");
    let n = &ns.name;
    // The operator's autoscaler Service, as any pod reaches it (by its cluster IP).
    let svc = cluster.kubectl_ok(
        &[
            "get",
            "service",
            "-n",
            "apiroutes-system",
            "apiroutes-autoscaler",
            "-o",
            "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}",
        ],
        None,
    );
    let target = format!("http://{}/v1/load", svc.trim());
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&fixture_route_env(
            "push",
            n,
            &format!("/api/{n}/push"),
            "pages/api/push.mjs",
            &[("TARGET", &target)],
            "",
        )),
    );
    let url = format!("{}/api/{n}/push", cluster.gateway_url());
    let http = Http::default();
    let push = |token: Option<String>| {
        let (http, url) = (&http, &url);
        async move {
            let headers: Vec<(&str, &str)> = token
                .as_deref()
                .map(|t| vec![("x-token", t)])
                .unwrap_or_default();
            let a = http.request("GET", url, &headers, "").await.ok()?;
            (a.status == 200).then(|| a.json())
        }
    };
    let without = eventually("the function answers", Duration::from_secs(120), || {
        push(None)
    })
    .await;
    assert_eq!(without["status"], 401, "no token: {without}");
    // A real token of this namespace's ServiceAccount, for the autoscaler's audience: the
    // identity is not the gateways'.
    let token = cluster.kubectl_ok(
        &[
            "create",
            "token",
            "default",
            "-n",
            n,
            "--audience",
            "apiroutes-autoscaler",
        ],
        None,
    );
    let other = push(Some(token.trim().to_owned()))
        .await
        .unwrap_or_default();
    assert_eq!(
        other["status"], 403,
        "another ServiceAccount's token: {other}"
    );
    assert!(
        other["body"]
            .as_str()
            .unwrap_or_default()
            .contains("may not push"),
        "{other}"
    );
}
