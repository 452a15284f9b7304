//! The `apiroutes-gateway` binary in static mode: flags, admin endpoints, JSON logs, and a
//! graceful SIGTERM that finishes an in-flight request.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_mode_serves_admin_and_drains_on_sigterm() {
    let e = echo("bin");
    let dir = std::env::temp_dir().join(format!("apiroutes-gw-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    std::fs::write(
        &file,
        format!(
            "routes:\n{}",
            route_yaml("slow", "/api/slow/[[...rest]]", "", &[e.addr])
        ),
    )
    .unwrap();
    let static_file = file.to_str().unwrap();
    let (mut gw, admin) = gateway_bin(
        &[
            "--static",
            static_file,
            "--log-format",
            "json",
            "--worker-threads",
            "1",
        ],
        |cmd| {
            cmd.stdout(Stdio::piped());
        },
    );
    let listen = gw.addr;
    wait_listening(listen);

    let (status, _, body) = get_raw(admin, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, _, _) = get_raw(admin, "/healthz").await;
    assert_eq!(status, 200);

    let (status, _, body) = get_raw(listen, "/api/slow/a/b").await;
    assert_eq!(status, 200, "{body}");
    let (_, head, metrics) = get_raw(admin, "/metrics").await;
    assert!(head.contains("text/plain"));
    assert!(
        metrics.contains(
            r#"apiroutes_gateway_requests_total{code="200",method="GET",route="default/slow"} 1"#
        ),
        "{metrics}"
    );

    // An in-flight slow request survives SIGTERM; new connections are refused after.
    let slow = tokio::spawn(async move { get_raw(listen, "/api/slow?sleep_ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = gw.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let mut exited = None;
    for _ in 0..500 {
        if let Some(s) = gw.child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exited.expect("gateway exited after draining").success());
    assert!(std::net::TcpStream::connect(listen).is_err());

    // Logs were JSON lines.
    let mut out = String::new();
    use std::io::Read;
    gw.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let first = out.lines().next().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    assert!(v.get("level").is_some(), "{first}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_static_file_fails_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_apiroutes-gateway"))
        .args([
            "--static",
            "/nonexistent/routes.yaml",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/routes.yaml"));
}

/// `/routes` lists every team's routes and pod addresses: off (404) unless `--admin-routes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_view_only_with_its_flag() {
    let dir = std::env::temp_dir().join(format!("apiroutes-gw-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routes.yaml");
    let backend = SocketAddr::from(([127, 0, 0, 1], 9));
    std::fs::write(
        &file,
        routes_file(&[route_yaml("r", "/api/r", "", &[backend])]),
    )
    .unwrap();
    for (flag, want) in [(None, 404), (Some("--admin-routes"), 200)] {
        let mut args = vec!["--static", file.to_str().unwrap(), "--worker-threads", "1"];
        args.extend(flag);
        let (_gw, admin) = gateway_bin(&args, |_| {});
        let (status, _, body) = get_raw(admin, "/routes").await;
        assert_eq!(status, want, "{flag:?}: {body}");
        if want == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["routes"][0]["name"], "default/r", "{body}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
