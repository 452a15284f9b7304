//! The Kubernetes route source against the real local control plane (tests/cluster): the
//! gateway binary watches ApiRoutes and operator-owned Services and EndpointSlices, turns
//! ready after the initial sync, routes a new ApiRoute, maps slices with the operator's
//! owner chain to endpoints (ignoring forged ones), and forgets a deleted one.
//!
//! It starts its own control plane (no node) with `tests/cluster/cluster.sh up`, which needs
//! the cluster binaries (`tests/cluster/build.sh`): it runs when the test runner exported
//! the cluster environment (`APIROUTES_CLUSTER_BIN`, as `tests/run.sh` does, which also sets
//! `APIROUTES_REQUIRE_CLUSTER=1`) and says it skipped otherwise. It sends no traffic to the
//! (made-up) endpoint addresses: it reads them back from the admin `/routes` view
//! (enabled with `--admin-routes`).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `script` with the cluster's environment (KUBECONFIG, kubectl on PATH).
fn sh(dir: &Path, script: &str) -> String {
    let full = format!(
        "set -euo pipefail; eval \"$(tests/cluster/cluster.sh env {})\"; {script}",
        dir.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&full)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("tests/cluster/cluster.sh")
            .arg("down")
            .arg(&self.0)
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn routes_json(admin: SocketAddr) -> serde_json::Value {
    let (_, _, body) = get_raw(admin, "/routes").await;
    serde_json::from_str(&body).unwrap_or_default()
}

async fn eventually<F: Fn(&serde_json::Value) -> bool>(admin: SocketAddr, what: &str, f: F) {
    for _ in 0..300 {
        if f(&routes_json(admin).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}; last /routes: {}", routes_json(admin).await);
}

fn endpoints_of(v: &serde_json::Value, name: &str) -> Option<Vec<String>> {
    v["routes"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| {
            r["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_apiroutes_and_endpointslices() {
    if apiroutes_testkit::from_env("APIROUTES_CLUSTER_BIN", "gateway k8s watches").is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("apiroutes-gw-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let up = Command::new("bash")
        .arg("tests/cluster/cluster.sh")
        .arg("up")
        .arg(&dir)
        .current_dir(repo())
        .status()
        .unwrap();
    let cluster = Cluster(dir.clone());
    assert!(up.success(), "cluster.sh up failed");
    sh(
        &dir,
        "kubectl apply --server-side -f crds/ >/dev/null
         kubectl wait --for condition=established --timeout=60s crd/apiroutes.apiroutes.dev crd/routegrants.apiroutes.dev >/dev/null
         kubectl create namespace shop >/dev/null
         kubectl create namespace other >/dev/null",
    );
    let kubeconfig = dir.join("kubeconfig");

    // The test reads endpoints back from `/routes`, which is off by default.
    let (gw, admin) = gateway_bin(&["--namespace", "shop", "--admin-routes"], |cmd| {
        cmd.env("KUBECONFIG", &kubeconfig).stderr(Stdio::inherit());
    });
    let listen = gw.addr;
    let mut ready = false;
    for _ in 0..300 {
        if get_raw(admin, "/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "gateway never became ready");
    assert_eq!(get_raw(listen, "/api/hello/x").await.0, 404);

    // A new ApiRoute is routed (held, then 503 at its 1 s deadline: it has no endpoints).
    sh(
        &dir,
        r#"cat <<'EOF' | kubectl apply -f - >/dev/null
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: { name: hello, namespace: shop }
spec: { path: "/api/hello/[name]", image: ghcr.io/apiroutes/echo:test, timeoutSeconds: 1 }
---
apiVersion: apiroutes.dev/v1alpha1
kind: ApiRoute
metadata: { name: elsewhere, namespace: other }
spec: { path: "/api/elsewhere", image: ghcr.io/apiroutes/echo:test }
EOF"#,
    );
    eventually(admin, "shop/hello routed", |v| {
        endpoints_of(v, "shop/hello").is_some()
    })
    .await;
    let (status, head, body) = get_raw(listen, "/api/hello/x").await;
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(body.contains("activation_timeout"), "{body}");
    // Only the watched namespace is routed.
    assert_eq!(get_raw(listen, "/api/elsewhere").await.0, 404);

    // Slices whose owner chain is the operator's (slice -> the variant's Service -> the
    // ApiRoute, by uid, as the operator and the EndpointSlice controller set it; made by
    // hand here) give endpoints (ready, not terminating, port `http`); slices with only
    // the labels are ignored; unlabelled ones are not even watched.
    sh(
        &dir,
        r#"route_uid=$(kubectl -n shop get apiroute hello -o jsonpath='{.metadata.uid}')
cat <<EOF | kubectl apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: apiroutes-operator
    apiroutes.dev/route: hello
    apiroutes.dev/variant: main
  ownerReferences:
    - { apiVersion: apiroutes.dev/v1alpha1, kind: ApiRoute, name: hello, uid: "$route_uid", controller: true }
spec: { clusterIP: None, ports: [{ name: http, port: 8080 }] }
EOF
svc_uid=$(kubectl -n shop get service hello -o jsonpath='{.metadata.uid}')
cat <<EOF | kubectl apply -f - >/dev/null
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hello-main-1
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: apiroutes-operator
    apiroutes.dev/route: hello
    apiroutes.dev/variant: main
  ownerReferences:
    - { apiVersion: v1, kind: Service, name: hello, uid: "$svc_uid", controller: true }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - addresses: ["10.244.0.9"]
    conditions: { ready: true }
  - addresses: ["10.244.0.10"]
    conditions: { ready: false }
  - addresses: ["10.244.0.11"]
    conditions: { ready: true, terminating: true }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hello-forged
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: apiroutes-operator
    apiroutes.dev/route: hello
    apiroutes.dev/variant: main
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - addresses: ["10.244.0.66"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hello-foreign
  namespace: shop
  labels:
    apiroutes.dev/route: hello
    apiroutes.dev/variant: main
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - addresses: ["10.244.0.99"]
EOF"#,
    );
    eventually(admin, "slice endpoints mapped", |v| {
        endpoints_of(v, "shop/hello") == Some(vec!["10.244.0.9:8080".to_owned()])
    })
    .await;
    let (_, _, metrics) = get_raw(admin, "/metrics").await;
    assert!(
        metrics.contains(r#"apiroutes_gateway_untrusted_endpointslices{namespace="shop"} 1"#),
        "{metrics}"
    );

    // Deleting the slice empties the route; deleting the route unroutes it.
    sh(
        &dir,
        "kubectl -n shop delete endpointslice hello-main-1 >/dev/null",
    );
    eventually(admin, "endpoints gone", |v| {
        endpoints_of(v, "shop/hello") == Some(vec![])
    })
    .await;
    sh(&dir, "kubectl -n shop delete apiroute hello >/dev/null");
    eventually(admin, "route gone", |v| {
        endpoints_of(v, "shop/hello").is_none()
    })
    .await;
    assert_eq!(get_raw(listen, "/api/hello/x").await.0, 404);
    drop(cluster);
}
